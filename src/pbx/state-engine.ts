/**
 * The live PBX state engine (README "Live PBX state"): loads the state through AMI at every login,
 * follows events, reconciles every minute, and publishes `users-state` and `active-calls` when they
 * change. Implements the cache the routes read (PbxStateView).
 */
import type { AmiLink, AmiMessage, AmiStatus } from './ami/ami-link'
import { loadPbxSnapshot, type PbxSnapshot } from './ami-snapshot'
import { buildActiveCalls, type NameOf } from './calls'
import { ChannelTable, snapshotOf, type Channel, type ChannelSnapshot } from './channel-table'
import { derivedDeviceState, deviceStateText, endpointOfChannel, userStateOfHint } from './device-state'
import type { ContactDetail, EndpointState, OutboundRegistration, PbxStateView } from './pbx-state'
import { buildUsersState, type EndpointRecord, type HintState } from './users-state'
import { systemClock, type Clock } from '../clock'

export const ENGINE_CHANNELS = ['users-state', 'active-calls'] as const
export type EngineChannel = (typeof ENGINE_CHANNELS)[number]

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const systemTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

export interface StateEngineOptions {
  link: AmiLink
  /** The directory's display name of a user extension; null for anything that is not a user. */
  nameOf: NameOf
  publish: (channel: EngineChannel, body: string) => void
  clock?: Clock
  timers?: Timers
  log?: (line: string) => void
  reconcileMs?: number
  debounceMs?: number
  maxChannels?: number
  actionTimeoutMs?: number
}

export const RECONCILE_MS = 60_000
export const DEBOUNCE_MS = 100
/** The first change after a quiet window is published this soon: long enough to gather one AMI read's events. */
export const COALESCE_MS = 10
export const MAX_CHANNELS = 10_000
const ACTION_TIMEOUT_MS = 10_000
const PUBLISH_RETRY_MS = 1_000

interface LiveEndpoint extends EndpointRecord {
  contacts: Map<string, ContactDetail>
}

/**
 * What events changed while a load was under way. Events and list replies share one ordered
 * connection, so for these the engine already holds something at least as new as the lists.
 */
interface Touched {
  endpoints: Set<string>
  channels: Set<string>
}

export interface Drift {
  endpoints: number
  registrations: number
  channels: number
}

const contactsKey = (contacts: ReadonlyMap<string, ContactDetail>): string =>
  JSON.stringify([...contacts.values()].map((contact) => [contact.URI, contact.Status]).sort())

function countDiffering<A, B>(current: ReadonlyMap<string, A>, loaded: ReadonlyMap<string, B>, same: (a: A, b: B) => boolean): number {
  let differing = 0
  for (const [key, value] of current) {
    const other = loaded.get(key)
    if (other === undefined || !same(value, other)) differing++
  }
  for (const key of loaded.keys()) if (!current.has(key)) differing++
  return differing
}

/** `Timestamp: 1795435200.123456` when MikoPBX's `timestampevents=yes` is on. */
const eventSeconds = (event: AmiMessage, clock: Clock): number => {
  const stamp = Number(event.get('Timestamp'))
  return Number.isFinite(stamp) && stamp > 0 ? Math.floor(stamp) : Math.floor(clock.now() / 1000)
}

/** The endpoints and channels an event may change: its device, endpoint and channels, and theirs as callee (DialBegin's Dest*). */
function noteTouched(touched: Touched, event: AmiMessage): void {
  const device = event.get('Device')
  if (device?.startsWith('PJSIP/')) touched.endpoints.add(device.slice('PJSIP/'.length))
  for (const key of ['EndpointName', 'AOR']) {
    const name = event.get(key)
    if (name) touched.endpoints.add(name)
  }
  for (const prefix of ['', 'Dest']) {
    const name = endpointOfChannel(event.get(`${prefix}Channel`) ?? '')
    if (name !== null) touched.endpoints.add(name)
    const uniqueid = event.get(`${prefix}Uniqueid`)
    if (uniqueid) touched.channels.add(uniqueid)
  }
}

/**
 * The snapshot with what events touched during the load taken from the live state instead: a
 * channel hung up meanwhile stays gone, one created after the list stays (README "Live PBX state").
 */
function withoutTouched(snapshot: PbxSnapshot, touched: Touched, live: ReadonlyMap<string, LiveEndpoint>, channels: ReadonlyMap<string, Channel>): PbxSnapshot {
  if (touched.endpoints.size === 0 && touched.channels.size === 0) return snapshot
  const endpoints = new Map(snapshot.endpoints)
  for (const name of touched.endpoints) {
    const known = live.get(name)
    if (known && endpoints.has(name)) endpoints.set(name, { ...endpoints.get(name)!, deviceState: known.deviceState, contacts: new Map(known.contacts) })
  }
  const kept = snapshot.channels.filter((loaded) => !touched.channels.has(loaded.snapshot.uniqueid))
  const fromEvents = [...touched.channels].flatMap((uniqueid) => {
    const channel = channels.get(uniqueid)
    return channel ? [{ snapshot: channel, bridge: channel.bridge }] : []
  })
  return { ...snapshot, endpoints, channels: [...kept, ...fromEvents] }
}

export class StateEngine implements PbxStateView {
  /** `eventsReceived` counts every AMI event the link delivered, handled or not (README "Metrics"). */
  readonly counters = { reconciliations: 0, driftCorrected: 0, ignoredEvents: 0, eventsReceived: 0 }
  private readonly live = new Map<string, LiveEndpoint>()
  private liveRegistrations = new Map<string, OutboundRegistration>()
  private readonly hints = new Map<string, HintState>()
  private readonly table: ChannelTable
  private readonly lastPublished = new Map<EngineChannel, string>()
  private readonly clock: Clock
  private readonly timers: Timers
  private readonly log: (line: string) => void
  private seq = 0
  /** Set by the first DeviceStateChange: MikoPBX runs without res_manager_devicestate, so none may ever come. */
  private deviceEventsSeen = false
  private everUp = false
  private loadedOnce = false
  private capLogged = false
  private publishFailing = false
  private flushTimer: unknown = null
  /** Runs for a debounce window after each publication; changes meanwhile wait for its end. */
  private windowTimer: unknown = null
  private changedInWindow = false
  private reconcileTimer: unknown = null
  private reconciling: Promise<void> | null = null
  private touched: Touched | null = null
  private readonly handlers: Readonly<Record<string, (event: AmiMessage) => void>> = {
    DeviceStateChange: (event) => this.onDeviceState(event),
    ContactStatus: (event) => this.onContactStatus(event),
    ExtensionStatus: (event) => this.onExtensionStatus(event),
    Registry: (event) => this.onRegistry(event),
    Newchannel: (event) => this.onChannelUpdate(event),
    Newstate: (event) => this.onChannelUpdate(event),
    NewCallerid: (event) => this.onChannelUpdate(event),
    NewConnectedLine: (event) => this.onChannelUpdate(event),
    Hangup: (event) => this.onHangup(event),
    DialBegin: (event) => this.onDialBegin(event),
    DialEnd: (event) => this.onChannelUpdate(event),
    BridgeEnter: (event) => this.onBridge(event, true),
    BridgeLeave: (event) => this.onBridge(event, false),
  }

  constructor(private readonly options: StateEngineOptions) {
    this.clock = options.clock ?? systemClock
    this.timers = options.timers ?? systemTimers
    this.log = options.log ?? ((line) => console.log(line))
    this.table = new ChannelTable(options.maxChannels ?? MAX_CHANNELS)
  }

  /** Subscribes to the link; loads at once when it is already up. */
  start(): void {
    this.options.link.onStatus((status) => this.onStatus(status))
    this.options.link.onEvent((event) => this.onEvent(event))
    if (this.options.link.status === 'up') this.onStatus('up')
  }

  stop(): void {
    this.clearTimers()
  }

  get ami(): AmiStatus {
    return this.options.link.status
  }

  get stale(): boolean {
    return this.everUp && this.options.link.status !== 'up'
  }

  /** How many channels are in memory (README "Live PBX state": they leave with their Hangup). */
  get trackedChannels(): number {
    return this.table.size
  }

  /** With AMI on, these channels are the engine's: `pub/` refuses them (README "Live PBX state"). */
  owns(channel: string): boolean {
    return (ENGINE_CHANNELS as readonly string[]).includes(channel)
  }

  endpoints(): ReadonlyMap<string, EndpointState> {
    const view = new Map<string, EndpointState>()
    for (const [name, endpoint] of this.live) view.set(name, { name, deviceState: endpoint.deviceState, contacts: [...endpoint.contacts.values()] })
    return view
  }

  registrations(): ReadonlyMap<string, OutboundRegistration> {
    return this.liveRegistrations
  }

  usersState(): string {
    return JSON.stringify(buildUsersState(this.live.values(), this.hints, this.table, this.options.nameOf))
  }

  activeCalls(): string {
    return JSON.stringify(buildActiveCalls(this.table, this.options.nameOf))
  }

  /** Settles when the reconciliation under way, if any, has finished. */
  settled(): Promise<void> {
    return this.reconciling ?? Promise.resolve()
  }

  /** Loads the whole state, replaces the event-built one, and logs what it corrected; joins a load under way. */
  reconcile(): Promise<void> {
    return this.reconciling ?? this.loadAfterCurrent()
  }

  /** A load begun before a reconnect read the old connection, so a login queues a fresh one behind it. */
  private loadAfterCurrent(): Promise<void> {
    const load: Promise<void> = (this.reconciling ?? Promise.resolve())
      .then(() => this.loadAndReplace())
      .finally(() => {
        if (this.reconciling === load) this.reconciling = null
      })
    this.reconciling = load
    return load
  }

  private onStatus(status: AmiStatus): void {
    if (status === 'up') {
      this.everUp = true
      void this.loadAfterCurrent()
      this.armReconcileTimer()
      return
    }
    this.clearTimers()
  }

  private clearTimers(): void {
    for (const timer of [this.flushTimer, this.windowTimer, this.reconcileTimer]) this.timers.clearTimeout(timer)
    this.flushTimer = this.windowTimer = this.reconcileTimer = null
    this.changedInWindow = false
  }

  private armReconcileTimer(): void {
    this.timers.clearTimeout(this.reconcileTimer)
    this.reconcileTimer = this.timers.setTimeout(() => {
      this.reconcileTimer = null
      if (this.options.link.status !== 'up') return
      void this.reconcile()
      this.armReconcileTimer()
    }, this.options.reconcileMs ?? RECONCILE_MS)
  }

  private async loadAndReplace(): Promise<void> {
    let snapshot: PbxSnapshot
    const touched: Touched = { endpoints: new Set(), channels: new Set() }
    this.touched = touched
    try {
      snapshot = await loadPbxSnapshot(this.options.link, this.options.actionTimeoutMs ?? ACTION_TIMEOUT_MS)
    } catch (error) {
      this.log(`AMI_RECONCILE_FAILED ${(error as Error).name}: ${(error as Error).message}`)
      return
    } finally {
      this.touched = null
    }
    snapshot = withoutTouched(snapshot, touched, this.live, this.table.channels)
    const drift = this.loadedOnce ? this.driftFrom(snapshot) : null
    this.replaceWith(snapshot)
    this.loadedOnce = true
    this.counters.reconciliations++
    const total = drift ? drift.endpoints + drift.registrations + drift.channels : 0
    if (drift && total > 0) {
      this.counters.driftCorrected += total
      this.log(`AMI_RECONCILED drift=${total} endpoints=${drift.endpoints} registrations=${drift.registrations} channels=${drift.channels}`)
    }
    this.changed()
  }

  private driftFrom(snapshot: PbxSnapshot): Drift {
    return {
      endpoints: countDiffering(this.live, snapshot.endpoints, (a, b) => a.deviceState === b.deviceState && contactsKey(a.contacts) === contactsKey(b.contacts)),
      registrations: countDiffering(this.liveRegistrations, snapshot.registrations, (a, b) => a.status === b.status),
      channels: countDiffering(
        this.table.channels,
        new Map(snapshot.channels.map((loaded) => [loaded.snapshot.uniqueid, loaded])),
        (a, b) => a.state === b.snapshot.state && a.bridge === b.bridge && a.linkedid === b.snapshot.linkedid,
      ),
    }
  }

  private replaceWith(snapshot: PbxSnapshot): void {
    for (const name of [...this.live.keys()]) if (!snapshot.endpoints.has(name)) this.live.delete(name)
    for (const [name, loaded] of snapshot.endpoints) {
      const known = this.live.get(name)
      const stateSeq = known && known.deviceState === loaded.deviceState ? known.stateSeq : ++this.seq
      this.live.set(name, { name, deviceState: loaded.deviceState, stateSeq, contacts: loaded.contacts })
    }
    this.liveRegistrations = snapshot.registrations
    const loadedIds = new Set(snapshot.channels.map((loaded) => loaded.snapshot.uniqueid))
    for (const uniqueid of [...this.table.channels.keys()]) if (!loadedIds.has(uniqueid)) this.table.remove(uniqueid)
    const now = Math.floor(this.clock.now() / 1000)
    for (const loaded of snapshot.channels) {
      const channel = this.track(loaded.snapshot, now)
      if (!channel) continue
      if (loaded.bridge) this.table.enterBridge(channel.uniqueid, loaded.bridge)
      else this.table.leaveBridge(channel.uniqueid)
    }
  }

  /** Nothing arrives while the link is down; whatever a dropping link still hands over is left to the next load. */
  private onEvent(event: AmiMessage): void {
    this.counters.eventsReceived++
    if (this.options.link.status !== 'up') return
    const handler = this.handlers[event.get('Event') ?? '']
    if (!handler) return
    if (this.touched) noteTouched(this.touched, event)
    handler(event)
    this.changed()
  }

  private ignored(): void {
    this.counters.ignoredEvents++
  }

  private track(snapshot: ChannelSnapshot, seconds: number): Channel | undefined {
    const channel = this.table.upsert(snapshot, seconds)
    if (!channel && !this.capLogged) {
      this.capLogged = true
      this.log(`AMI_CHANNEL_CAP channels=${this.table.size}: new channels are not tracked until some hang up`)
    }
    return channel
  }

  private onChannelUpdate(event: AmiMessage): void {
    const snapshot = snapshotOf(event)
    if (!snapshot) return this.ignored()
    if (this.track(snapshot, eventSeconds(event, this.clock))) this.rederive(snapshot.name)
  }

  private onHangup(event: AmiMessage): void {
    const uniqueid = event.get('Uniqueid') ?? ''
    if (!this.table.remove(uniqueid)) return this.ignored()
    this.rederive(event.get('Channel') ?? '')
  }

  private onDialBegin(event: AmiMessage): void {
    const destSnapshot = snapshotOf(event, 'Dest')
    if (!destSnapshot) return this.ignored()
    const seconds = eventSeconds(event, this.clock)
    const callerSnapshot = snapshotOf(event)
    const caller = callerSnapshot ? this.track(callerSnapshot, seconds) : undefined
    const dest = this.track(destSnapshot, seconds)
    if (dest) this.table.dial(caller, dest)
    this.rederive(destSnapshot.name)
  }

  private onBridge(event: AmiMessage, entering: boolean): void {
    const uniqueid = event.get('Uniqueid') ?? ''
    const bridge = event.get('BridgeUniqueid') ?? ''
    if (!this.table.channels.has(uniqueid) || !bridge) return this.ignored()
    if (entering) this.table.enterBridge(uniqueid, bridge)
    else this.table.leaveBridge(uniqueid)
  }

  private setDeviceState(endpoint: LiveEndpoint, text: string): void {
    if (endpoint.deviceState === text) return
    endpoint.deviceState = text
    endpoint.stateSeq = ++this.seq
  }

  /** Without DeviceStateChange, an endpoint's state follows its channels and contacts. */
  private rederive(channelName: string): void {
    if (this.deviceEventsSeen) return
    const name = endpointOfChannel(channelName)
    const endpoint = name === null ? undefined : this.live.get(name)
    if (endpoint) this.rederiveEndpoint(endpoint)
  }

  private rederiveEndpoint(endpoint: LiveEndpoint): void {
    const states = [...this.table.channels.values()].filter((channel) => endpointOfChannel(channel.name) === endpoint.name).map((channel) => channel.state)
    const contacts = [...endpoint.contacts.values()].map((contact) => contact.Status ?? '')
    this.setDeviceState(endpoint, derivedDeviceState(states, contacts))
  }

  private onDeviceState(event: AmiMessage): void {
    const device = event.get('Device') ?? ''
    if (!device.startsWith('PJSIP/')) return
    const endpoint = this.live.get(device.slice('PJSIP/'.length))
    if (!endpoint) return this.ignored()
    this.deviceEventsSeen = true
    this.setDeviceState(endpoint, deviceStateText(event.get('State') ?? ''))
  }

  private onContactStatus(event: AmiMessage): void {
    const endpoint = this.live.get(event.get('EndpointName') ?? event.get('AOR') ?? '')
    const uri = event.get('URI') ?? ''
    if (!endpoint || !uri) return this.ignored()
    const change = event.get('ContactStatus') ?? ''
    if (change === 'Removed') endpoint.contacts.delete(uri)
    else endpoint.contacts.set(uri, this.contactAfter(endpoint.contacts.get(uri), event, change))
    if (!this.deviceEventsSeen) this.rederiveEndpoint(endpoint)
  }

  /** `Created`/`Updated` change the registration, the others its status. */
  private contactAfter(known: ContactDetail | undefined, event: AmiMessage, change: string): ContactDetail {
    const contact: Record<string, string> = { ...known }
    for (const key of ['URI', 'AOR', 'EndpointName', 'UserAgent', 'RegExpire', 'ViaAddress', 'CallID', 'RoundtripUsec']) {
      const value = event.get(key)
      if (value !== undefined) contact[key] = value
    }
    if (change !== 'Created' && change !== 'Updated') contact.Status = change
    else contact.Status ??= 'Unknown'
    return contact
  }

  private onExtensionStatus(event: AmiMessage): void {
    const ext = event.get('Exten') ?? ''
    const state = userStateOfHint(event.get('StatusText'), event.get('Status'))
    // Every hint is kept (there are as many as the dialplan defines); only users' reach users-state.
    if (state === null || !ext) return
    this.hints.set(ext, { state, seq: ++this.seq })
  }

  /** PJSIP's Registry event: Username is the client URI, Domain the server URI. */
  private onRegistry(event: AmiMessage): void {
    const client = event.get('Username') ?? ''
    const server = event.get('Domain') ?? ''
    const registration = [...this.liveRegistrations.values()].find((known) => known.clientUri === client && known.serverUri === server)
    if (!registration) return this.ignored()
    registration.status = event.get('Status') ?? registration.status
  }

  /**
   * Publishes at most once per debounce window, and only what differs from the last publication:
   * a change after a quiet window goes out within COALESCE_MS, later ones at the window's end.
   */
  private changed(): void {
    if (this.options.link.status !== 'up') return
    if (this.windowTimer !== null) this.changedInWindow = true
    else if (this.flushTimer === null) this.flushTimer = this.timers.setTimeout(() => this.flush(), COALESCE_MS)
  }

  private openWindow(): void {
    this.changedInWindow = false
    this.windowTimer = this.timers.setTimeout(() => {
      this.windowTimer = null
      if (this.changedInWindow) this.flush()
    }, this.options.debounceMs ?? DEBOUNCE_MS)
  }

  /** The directory (names) or the hub may fail for a while: log the first failure of a run and try again later. */
  private flush(): void {
    this.flushTimer = null
    if (this.options.link.status !== 'up') return
    this.openWindow()
    try {
      this.publishIfChanged('users-state', this.usersState())
      this.publishIfChanged('active-calls', this.activeCalls())
      this.publishFailing = false
    } catch (error) {
      if (!this.publishFailing) this.log(`AMI_PUBLISH_FAILED ${(error as Error).name}: ${(error as Error).message}`)
      this.publishFailing = true
      this.flushTimer = this.timers.setTimeout(() => this.flush(), PUBLISH_RETRY_MS)
    }
  }

  private publishIfChanged(channel: EngineChannel, body: string): void {
    if (this.lastPublished.get(channel) === body) return
    this.lastPublished.set(channel, body)
    this.options.publish(channel, body)
  }
}
