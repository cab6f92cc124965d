/**
 * All channels and every open subscription (README "Presence: publish and subscribe"). The hub
 * enforces the per-user cap and re-checks each subscription's token every second, so a stream ends
 * within seconds of its token expiring or its session being revoked.
 */
import type { AccessGuard, AccessOutcome } from '../auth/access-guard'
import { unixSeconds, type Clock } from '../clock'
import { Channel, type Message, type Subscriber } from './channel'

/** `unavailable`: the token can't be judged now, the revocation copy is stale (README "Several nodes"). */
export type CloseReason = 'token_expired' | 'auth_failed' | 'overflow' | 'shutdown' | 'protocol_error' | 'unavailable'

/** Why a stream whose token no longer passes is closed. */
export function closeReasonOf(outcome: Extract<AccessOutcome, { ok: false }>): CloseReason {
  if (outcome.failure === 'unavailable') return 'unavailable'
  return outcome.reason === 'TokenExpiredError' ? 'token_expired' : 'auth_failed'
}

export const TRANSPORTS = ['eventsource', 'longpoll', 'websocket'] as const
export type Transport = (typeof TRANSPORTS)[number]

/** One subscriber on one channel, over any transport. */
export interface Subscription extends Subscriber {
  readonly username: string
  readonly transport: Transport
  /** The access token it was opened with; WebSocket clients may replace it in-band. */
  token: string
  /** Ends the subscription: a final event or close frame, then release. Idempotent. */
  close(reason: CloseReason): void
}

export interface ChannelSpec {
  name: string
  capacity: number
}

/** The channels MikoPBX producers use; `users-state` and `active-calls` keep only the last snapshot. */
const STANDARD_CHANNELS: readonly ChannelSpec[] = [
  { name: 'users-state', capacity: 1 },
  { name: 'active-calls', capacity: 1 },
  { name: 'contacts', capacity: 200 },
]

/** `name` or `name:<capacity>`, as the extra_channels setting writes them (validated by the config schema). */
export function channelSpecs(extra: readonly string[]): ChannelSpec[] {
  const conflict = extraChannelConflict(extra)
  if (conflict) throw new Error(`extra channels ${conflict}`)
  return [
    ...STANDARD_CHANNELS,
    ...extra.map((entry) => {
      const [name, capacity] = entry.split(':') as [string, string | undefined]
      return { name, capacity: Math.max(1, Number(capacity ?? 1)) }
    }),
  ]
}

/** Why these extra channels can't be used, or null: they may neither redefine a standard channel nor repeat a name. */
export function extraChannelConflict(extra: readonly string[]): string | null {
  const seen = new Set<string>()
  for (const entry of extra) {
    const name = entry.split(':')[0]!
    if (STANDARD_CHANNELS.some((spec) => spec.name === name)) return `must not redefine the built-in channel ${name}`
    if (seen.has(name)) return `must not name the channel ${name} twice`
    seen.add(name)
  }
  return null
}

/**
 * Channels kept outside the hub's own map, one per user (README "Personalised presence"): the hub
 * counts them in the metrics under their shared names and lets them re-check their users in its sweep.
 */
export interface ChannelFamily {
  /** The names its channels share, e.g. `me/users-state`: one metrics label each. */
  readonly names: readonly string[]
  channels(): Iterable<Channel>
  /** Called after the token sweep, every sweep. */
  sweep(): void
}

export interface HubSettings {
  channels: readonly ChannelSpec[]
  maxPerUser: number
  /** How often tokens of open subscriptions are re-checked. */
  sweepMs: number
}

export class PresenceHub {
  private readonly channels = new Map<string, Channel>()
  private readonly open = new Map<Subscription, Channel>()
  private readonly perUser = new Map<string, number>()
  private readonly maxPerUser: number
  private readonly families: ChannelFamily[] = []
  private readonly sweeper: ReturnType<typeof setInterval>

  constructor(
    settings: HubSettings,
    private readonly guard: AccessGuard,
    private readonly clock: Clock,
  ) {
    for (const { name, capacity } of settings.channels) this.channels.set(name, new Channel(name, capacity))
    this.maxPerUser = settings.maxPerUser
    this.sweeper = setInterval(() => this.sweep(), settings.sweepMs)
    this.sweeper.unref()
  }

  /** Channels the hub doesn't own but counts and sweeps (the personalised feed's). */
  addFamily(family: ChannelFamily): void {
    this.families.push(family)
  }

  /** The channels every node shares (presence/bus.ts): the standard ones and extra_channels. */
  sharedChannels(): Channel[] {
    return [...this.channels.values()]
  }

  channel(name: string): Channel | undefined {
    return this.channels.get(name)
  }

  publish(channel: Channel, body: string, contentType: string): Message {
    return channel.publish(body, contentType, unixSeconds(this.clock))
  }

  /** Takes one of the user's subscription slots; false at the cap (then 429). */
  acquire(username: string): boolean {
    const count = this.perUser.get(username) ?? 0
    if (count >= this.maxPerUser) return false
    this.perUser.set(username, count + 1)
    return true
  }

  /** Gives back a slot taken by acquire() that never became a subscription. */
  release(username: string): void {
    const count = (this.perUser.get(username) ?? 1) - 1
    if (count > 0) this.perUser.set(username, count)
    else this.perUser.delete(username)
  }

  /** Starts delivery; the slot from acquire() now belongs to the subscription. */
  subscribe(channel: Channel, subscription: Subscription): void {
    this.open.set(subscription, channel)
    channel.subscribers.add(subscription)
  }

  /** A message this subscription could not take (its queue is full); it is closed with `overflow` next. */
  dropped(subscription: Subscription): void {
    const channel = this.open.get(subscription)
    if (channel) channel.dropped++
  }

  /** Stops delivery and frees the slot. Safe to call more than once. */
  unsubscribe(subscription: Subscription): void {
    const channel = this.open.get(subscription)
    if (!channel) return
    this.open.delete(subscription)
    channel.subscribers.delete(subscription)
    this.release(subscription.username)
  }

  /** The last message of a JSON channel, parsed: `users` returns the last users-state snapshot. */
  lastSnapshot(name: string): unknown {
    const body = this.channels.get(name)?.last()?.body
    if (body === undefined) return null
    try {
      return JSON.parse(body)
    } catch {
      return null
    }
  }

  get subscriptionCount(): number {
    return this.open.size
  }

  /** Every channel's names, each with the messages published and dropped on all its channels (README "Metrics"). */
  channelTotals(): Map<string, { published: number; dropped: number }> {
    const totals = new Map<string, { published: number; dropped: number }>()
    for (const name of this.channelNames()) totals.set(name, { published: 0, dropped: 0 })
    for (const channel of this.everyChannel()) {
      const total = totals.get(channel.name)!
      total.published += channel.published
      total.dropped += channel.dropped
    }
    return totals
  }

  /** Open subscriptions per channel name and transport, counted when scraped (README "Metrics"). */
  subscriberCounts(): Map<string, Record<Transport, number>> {
    const counts = new Map<string, Record<Transport, number>>()
    for (const name of this.channelNames()) counts.set(name, { eventsource: 0, longpoll: 0, websocket: 0 })
    for (const [subscription, channel] of this.open) counts.get(channel.name)![subscription.transport]++
    return counts
  }

  private channelNames(): string[] {
    return [...this.channels.keys(), ...this.families.flatMap((family) => family.names)]
  }

  private *everyChannel(): Iterable<Channel> {
    yield* this.channels.values()
    for (const family of this.families) yield* family.channels()
  }

  /** Closes every subscription whose token no longer grants access, then lets the families re-check their users. */
  sweep(): void {
    for (const subscription of [...this.open.keys()]) {
      const outcome = this.guard.checkToken(subscription.token, 'access')
      if (!outcome.ok) subscription.close(closeReasonOf(outcome))
    }
    for (const family of this.families) family.sweep()
  }

  /** SIGTERM: every subscriber gets its final event or close frame (README "Command line", signals). */
  shutdown(): void {
    clearInterval(this.sweeper)
    for (const subscription of [...this.open.keys()]) subscription.close('shutdown')
  }
}
