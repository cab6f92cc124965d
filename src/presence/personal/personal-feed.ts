/**
 * The personalised channels `sub/me/users-state` and `sub/me/active-calls`
 * (README "Personalised presence"). Every full snapshot, whoever produced it, travels on the
 * shared channel of its kind, through the bus (presence/bus.ts), so with several nodes every
 * node gets it with the same message id (README "Several nodes"); each node's feed reads it there
 * and gives each user's channel the snapshot cut to its scope. Subscribing to the shared channel
 * itself is allowed only while the legacy channels are on.
 *
 * One channel per kind and user, keeping only its last body. A snapshot is personalised at once
 * only for channels someone listens to; the others are marked stale and personalised when someone
 * subscribes. A body is published only when its payload differs from the last one sent, so a user
 * whose view didn't change gets nothing, and `sequence` may skip: what it skipped held nothing new
 * for that user.
 */
import * as v from 'valibot'
import type { Clock } from '../../clock'
import type { Directory } from '../../directory/directory'
import { Channel } from '../channel'
import type { ChannelFamily, PresenceHub } from '../hub'
import type { PresenceBus } from '../bus'
import { ActiveCallsSnapshot, SNAPSHOT_KINDS, SnapshotStamper, UsersStateSnapshot, type SnapshotBody, type SnapshotKind, type SnapshotOf, type SnapshotSink } from '../snapshot'
import { bodyOf, personalPayload, prepare, type Prepared } from './personalise'
import { scopeOf, type Scope, type ScopeRules } from './scope'

const CONTENT_TYPE = 'application/json'

export const PERSONAL_CHANNEL_NAMES: Record<SnapshotKind, string> = {
  'users-state': 'me/users-state',
  'active-calls': 'me/active-calls',
}

const SNAPSHOT_SCHEMAS = { 'users-state': UsersStateSnapshot, 'active-calls': ActiveCallsSnapshot } as const
/** A version 1 body: the snapshot without its envelope, which the feed then stamps itself. */
const UNSTAMPED_SCHEMAS = {
  'users-state': v.object({ states: UsersStateSnapshot.entries.states }),
  'active-calls': v.object({ calls: ActiveCallsSnapshot.entries.calls }),
} as const

export interface PersonalFeedOptions {
  hub: PresenceHub
  clock: Clock
  directory: Pick<Directory, 'findByUsername'>
  rules: ScopeRules
  /** presence_legacy_channels = "on": the shared channels may be subscribed to as well. */
  legacy: boolean
  /** Carries snapshots to every node's shared channels. */
  bus: PresenceBus
  log?: (line: string) => void
}

interface PersonalChannel {
  readonly kind: SnapshotKind
  readonly username: string
  readonly channel: Channel
  /** The scope its last body was computed for; null before the first. */
  scopeKey: string | null
  /** The last payload published (the body without its envelope). */
  payload: string | null
  /** A snapshot arrived while nobody listened: personalise it at the next subscription. */
  stale: boolean
}

export class PersonalFeed implements SnapshotSink, ChannelFamily {
  readonly names = Object.values(PERSONAL_CHANNEL_NAMES)
  readonly legacy: boolean
  private rules: ScopeRules
  private readonly last = new Map<SnapshotKind, Prepared>()
  private readonly personal = new Map<string, PersonalChannel>()
  private readonly stamper: SnapshotStamper
  private publishFailing = false

  constructor(private readonly options: PersonalFeedOptions) {
    this.legacy = options.legacy
    this.rules = options.rules
    this.stamper = new SnapshotStamper(options.clock)
    options.hub.addFamily(this)
    for (const kind of SNAPSHOT_KINDS) options.hub.channel(kind)!.observe((message) => this.published(kind, message.body))
  }

  /**
   * A producer's full snapshot (the AMI engine, the ingest route), published on the shared channel;
   * the channel's observer above personalises it. One the store can't take now is said; the
   * producer's next snapshot supersedes it (the AMI engine reconciles every 20 s).
   */
  full<K extends SnapshotKind>(kind: K, snapshot: SnapshotOf<K>): void {
    const { hub, bus, log = console.error } = this.options
    bus.publish(hub.channel(kind)!, JSON.stringify(snapshot), CONTENT_TYPE).then(
      () => (this.publishFailing = false),
      (error: Error) => {
        // One line per outage, not one per snapshot.
        if (!this.publishFailing) log(`presence: snapshots not published until the store is back: ${error.message}`)
        this.publishFailing = true
      },
    )
  }

  /**
   * A body stored on a shared snapshot channel: a producer's, or one POSTed to pub/. One that isn't
   * a valid snapshot leaves the personalised channels as they were (false); one without the
   * envelope is stamped here.
   */
  private published(kind: SnapshotKind, text: string): boolean {
    const snapshot = this.parsePublished(kind, text)
    if (snapshot) this.personalise(kind, snapshot)
    return snapshot !== null
  }

  /** The user's channel of this kind, its body brought up to date. */
  channelFor(kind: SnapshotKind, username: string): Channel {
    const key = `${kind}\n${username}`
    let personal = this.personal.get(key)
    if (!personal) {
      personal = { kind, username, channel: new Channel(PERSONAL_CHANNEL_NAMES[kind], 1), scopeKey: null, payload: null, stale: true }
      this.personal.set(key, personal)
    }
    if (personal.stale) this.refresh(personal, this.scopeFor(username))
    return personal.channel
  }

  /** The user's last personalised snapshot of this kind, parsed; null before any full snapshot arrived. */
  snapshotFor(kind: SnapshotKind, username: string): unknown {
    const body = this.channelFor(kind, username).last()?.body
    return body === undefined ? null : JSON.parse(body)
  }

  /** SIGHUP: new groups or scopes; every listened channel is personalised again at once. */
  replaceRules(rules: ScopeRules): void {
    this.rules = rules
    for (const personal of this.personal.values()) {
      if (personal.channel.subscribers.size > 0) this.refresh(personal, this.scopeFor(personal.username))
      else personal.stale = true
    }
  }

  /**
   * The hub's sweep, after it closed the subscriptions of disabled and removed users: a listened
   * channel whose user's scope changed (role, groups, a group-mate's mobile) is personalised again.
   */
  sweep(): void {
    for (const personal of this.personal.values()) {
      if (personal.channel.subscribers.size === 0) continue
      const scope = this.scopeFor(personal.username)
      if (scope && scope.key !== personal.scopeKey) this.refresh(personal, scope)
    }
  }

  *channels(): Iterable<Channel> {
    for (const personal of this.personal.values()) yield personal.channel
  }

  private personalise<K extends SnapshotKind>(kind: K, snapshot: SnapshotOf<K>): void {
    this.last.set(kind, prepare(kind, snapshot))
    for (const personal of this.personal.values()) {
      if (personal.kind !== kind) continue
      if (personal.channel.subscribers.size > 0) this.refresh(personal, this.scopeFor(personal.username))
      else personal.stale = true
    }
  }

  private refresh(personal: PersonalChannel, scope: Scope | null): void {
    const prepared = this.last.get(personal.kind)
    // No user (removed, disabled): nothing to show; the hub's token sweep closes its streams.
    if (!scope || !prepared) return
    personal.scopeKey = scope.key
    personal.stale = false
    const payload = personalPayload(prepared, scope)
    if (payload === personal.payload) return
    personal.payload = payload
    this.options.hub.publish(personal.channel, bodyOf(prepared, payload), CONTENT_TYPE)
  }

  private scopeFor(username: string): Scope | null {
    const { directory } = this.options
    const user = directory.findByUsername(username)
    if (!user || user.disabled) return null
    return scopeOf(user, this.rules, (name) => directory.findByUsername(name))
  }

  private parsePublished<K extends SnapshotKind>(kind: K, text: string): SnapshotOf<K> | null {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      return null
    }
    if (typeof json === 'object' && json !== null && 'schemaVersion' in json) {
      const result = v.safeParse(SNAPSHOT_SCHEMAS[kind], json)
      return result.success ? (result.output as SnapshotOf<K>) : null
    }
    const result = v.safeParse(UNSTAMPED_SCHEMAS[kind], json)
    return result.success ? this.stamper.stamp<K>(result.output as SnapshotBody<K>) : null
  }
}
