/**
 * The live PBX state engine (README "Live PBX state"): loads the state through AMI at every login,
 * follows events in a call graph, reconciles every 20 s, and hands full `users-state` and
 * `active-calls` snapshots (schema version 2) to a sink when an entry changed. Implements the
 * cache the routes read (PbxStateView).
 */
import type { AmiLink, AmiMessage, AmiStatus } from './ami/ami-link'
import { loadPbxSnapshot, type PbxSnapshot } from './ami-snapshot'
import { buildActiveCalls, type NameOf, type UserOfMobile } from './calls'
import { CallGraph, snapshotOf, type Channel, type ChannelSnapshot } from './call-graph'
import { derivedDeviceState, deviceStateText, endpointOfChannel, userStateOfHint } from './device-state'
import type { ContactDetail, EndpointState, OutboundRegistration, PbxStateView } from './pbx-state'
import { QueueTable } from './queues'
import { buildUsersState, type EndpointRecord, type HintState } from './users-state'
import { systemClock, type Clock } from '../clock'
import { isStrictChannelName, SnapshotStamper, type ActiveCall, type EmployeeEntry, type SnapshotSink } from '../presence/snapshot'

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
  /** The user whose mobile number this is: a leg dialed to it belongs to that user's entry. */
  userOfMobile?: UserOfMobile
  /** Where full snapshots go (README "Presence snapshots, schema version 2"). */
  sink: SnapshotSink
  clock?: Clock
  timers?: Timers
  log?: (line: string) => void
  reconcileMs?: number
  debounceMs?: number
  maxChannels?: number
  actionTimeoutMs?: number
}

export const RECONCILE_MS = 20_000
export const DEBOUNCE_MS = 100
/** The first change after a quiet window is published this soon: long enough to gather one AMI read's events. */
export const COALESCE_MS = 10
export const MAX_CHANNELS = 10_000
const MAX_QUEUES = 1_000
/** Events a load may have to apply again after its lists; more means a PBX far too busy to list consistently. */
const MAX_REPLAY = 50_000
const ACTION_TIMEOUT_MS = 10_000
const PUBLISH_RETRY_MS = 1_000

interface LiveEndpoint extends Omit<EndpointRecord, 'contactStatuses'> {
  contacts: Map<string, ContactDetail>
}

export interface Drift {
  endpoints: number
  registrations: number
  channels: number
}

/** What a reconciliation compares: one text per endpoint, registration and channel. */
interface StateSummary {
  endpoints: Map<string, string>
  registrations: Map<string, string>
  channels: Map<string, string>
}

const contactsKey = (contacts: ReadonlyMap<string, ContactDetail>): string =>
  JSON.stringify([...contacts.values()].map((contact) => [contact.URI, contact.Status]).sort())

function countDiffering(current: ReadonlyMap<string, string>, rebuilt: ReadonlyMap<string, string>): number {
  let differing = 0
  for (const [key, value] of current) if (rebuilt.get(key) !== value) differing++
  for (const key of rebuilt.keys()) if (!current.has(key)) differing++
  return differing
}

/** `Timestamp: 1795435200.123456` when MikoPBX's `timestampevents=yes` is on. */
const eventSeconds = (event: AmiMessage, clock: Clock): number => {
  const stamp = Number(event.get('Timestamp'))
  return Number.isFinite(stamp) && stamp > 0 ? Math.floor(stamp) : Math.floor(clock.now() / 1000)
}

/** Longest Uniqueid or Linkedid kept (the snapshot schema's limit); Asterisk's are about 25 characters. */
const MAX_ID_LENGTH = 80

/** A channel the snapshots may name: a strict channel name and ids within the schema's limits. */
const isTrackable = (snapshot: ChannelSnapshot): boolean =>
  isStrictChannelName(snapshot.name) && snapshot.uniqueid.length <= MAX_ID_LENGTH && snapshot.linkedid.length <= MAX_ID_LENGTH

/** Keys sorted, so equal entries give equal JSON whatever order they were built in. */
const sortedStates = (states: ReadonlyMap<string, EmployeeEntry>): Record<string, EmployeeEntry> =>
  Object.fromEntries([...states].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

export class StateEngine implements PbxStateView {
  /** `eventsReceived` counts every AMI event the link delivered, handled or not (README "Metrics"). */
  readonly counters = { reconciliations: 0, driftCorrected: 0, ignoredEvents: 0, eventsReceived: 0 }
  /** One boot UUID and one sequence for every snapshot this engine publishes. */
  readonly stamper: SnapshotStamper
  private readonly live = new Map<string, LiveEndpoint>()
  private liveRegistrations = new Map<string, OutboundRegistration>()
  private readonly hints = new Map<string, HintState>()
  /** Endpoints whose derived device state is due (rederive). */
  private readonly dirtyEndpoints = new Set<string>()
  private readonly graph: CallGraph
  private readonly queues = new QueueTable(MAX_QUEUES)
  /** The JSON of each users-state entry and of the calls, as last published. */
  private lastEntries: Map<string, string> | null = null
  private lastCalls: string | null = null
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
  /** The next publication goes out even if no entry changed: a login's load starts a new sequence. */
  private publishAll = false
  private flushTimer: unknown = null
  /** Runs for a debounce window after each publication; changes meanwhile wait for its end. */
  private windowTimer: unknown = null
  private changedInWindow = false
  private reconcileTimer: unknown = null
  private reconciling: Promise<void> | null = null
  /** Events that arrived while a load ran: applied live, and again on top of the load's lists. */
  private replay: AmiMessage[] | null = null
  private replayOverflow = false
  /** True while a login's load runs: nothing is published until the lists and the events meanwhile are in. */
  private bootstrapping = false
  /** True while replaying: the events were counted the first time. */
  private replaying = false
  private readonly handlers: Readonly<Record<string, (event: AmiMessage) => void>> = {
    DeviceStateChange: (event) => this.onDeviceState(event),
    ContactStatus: (event) => this.onContactStatus(event),
    ExtensionStatus: (event) => this.onExtensionStatus(event),
    Registry: (event) => this.onRegistry(event),
    Newchannel: (event) => this.onChannelUpdate(event),
    Newstate: (event) => this.onChannelUpdate(event),
    NewCallerid: (event) => this.onChannelUpdate(event),
    NewConnectedLine: (event) => this.onChannelUpdate(event),
    HangupRequest: (event) => this.onHangupRequest(event),
    SoftHangupRequest: (event) => this.onHangupRequest(event),
    Hangup: (event) => this.onHangup(event),
    DialBegin: (event) => this.onDialBegin(event),
    DialEnd: (event) => this.onDialEnd(event),
    Hold: (event) => this.onHold(event, true),
    Unhold: (event) => this.onHold(event, false),
    BridgeCreate: (event) => this.onBridgeCreate(event),
    BridgeDestroy: (event) => this.onBridgeDestroy(event),
    BridgeEnter: (event) => this.onBridge(event, true),
    BridgeLeave: (event) => this.onBridge(event, false),
    QueueCallerJoin: (event) => this.counted(this.queues.callerJoined(event)),
    QueueCallerLeave: (event) => this.counted(this.queues.callerLeft(event)),
    QueueCallerAbandon: (event) => this.counted(this.queues.callerLeft(event)),
    QueueMemberAdded: (event) => this.counted(this.queues.member(event)),
    QueueMemberStatus: (event) => this.counted(this.queues.member(event)),
    QueueMemberRemoved: (event) => this.counted(this.queues.memberRemoved(event)),
    AgentCalled: (event) => this.counted(this.queues.member(event)),
    AgentConnect: (event) => {
      this.queues.member(event)
      this.queues.callerLeft(event)
    },
    AgentComplete: (event) => this.counted(this.queues.member(event)),
  }

  constructor(private readonly options: StateEngineOptions) {
    this.clock = options.clock ?? systemClock
    this.timers = options.timers ?? systemTimers
    this.log = options.log ?? ((line) => console.log(line))
    this.graph = new CallGraph(options.maxChannels ?? MAX_CHANNELS)
    this.stamper = new SnapshotStamper(this.clock)
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
    return this.graph.size
  }

  /** With AMI on, these channels are the engine's: `pub/` refuses them (README "Live PBX state"). */
  owns(channel: string): boolean {
    return (ENGINE_CHANNELS as readonly string[]).includes(channel)
  }

  endpoints(): ReadonlyMap<string, EndpointState> {
    this.rederiveDirty()
    const view = new Map<string, EndpointState>()
    for (const [name, endpoint] of this.live) view.set(name, { name, deviceState: endpoint.deviceState, contacts: [...endpoint.contacts.values()] })
    return view
  }

  registrations(): ReadonlyMap<string, OutboundRegistration> {
    return this.liveRegistrations
  }

  /** The users-state body now: users by extension, then queues. */
  usersState(): Map<string, EmployeeEntry> {
    this.rederiveDirty()
    const endpoints = [...this.live.values()].map((endpoint) => ({ ...endpoint, contactStatuses: [...endpoint.contacts.values()].map((contact) => contact.Status ?? '') }))
    return buildUsersState({
      endpoints,
      hints: this.hints,
      graph: this.graph,
      queues: this.queues.entries(),
      nameOf: this.options.nameOf,
      userOfMobile: this.options.userOfMobile ?? (() => null),
    })
  }

  activeCalls(): ActiveCall[] {
    return buildActiveCalls(this.graph, this.options.nameOf)
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
  private loadAfterCurrent(fresh = false): Promise<void> {
    const load: Promise<void> = (this.reconciling ?? Promise.resolve())
      .then(() => this.loadAndReplace(fresh))
      .finally(() => {
        if (this.reconciling === load) this.reconciling = null
      })
    this.reconciling = load
    return load
  }

  private onStatus(status: AmiStatus): void {
    if (status === 'up') {
      this.everUp = true
      void this.loadAfterCurrent(true)
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

  /**
   * Lists everything while following events; then rebuilds from the lists and applies the events
   * that arrived meanwhile again, so nothing newer than a list is undone (README "Live PBX state").
   * A failed list changes nothing: it never means "all calls ended".
   */
  private async loadAndReplace(fresh: boolean): Promise<void> {
    this.replay = []
    this.replayOverflow = false
    this.bootstrapping = fresh
    const snapshot = await this.loadOrLog()
    this.bootstrapping = false
    const events = this.replay ?? []
    this.replay = null
    if (!snapshot) {
      // What the events built is all there is: publish it rather than nothing.
      if (fresh) this.changed()
      return
    }
    const before = this.loadedOnce ? this.summary() : null
    this.replaceWith(snapshot)
    this.replayEvents(events)
    this.loadedOnce = true
    this.counters.reconciliations++
    const drift = before ? this.driftFrom(before, this.summary()) : null
    const total = drift ? drift.endpoints + drift.registrations + drift.channels : 0
    if (drift && total > 0) {
      this.counters.driftCorrected += total
      this.log(`AMI_RECONCILED drift=${total} endpoints=${drift.endpoints} registrations=${drift.registrations} channels=${drift.channels}`)
    }
    if (fresh) this.publishAll = true
    this.changed()
  }

  private async loadOrLog(): Promise<PbxSnapshot | null> {
    try {
      const snapshot = await loadPbxSnapshot(this.options.link, this.options.actionTimeoutMs ?? ACTION_TIMEOUT_MS)
      if (this.replayOverflow) throw Object.assign(new Error(`more than ${MAX_REPLAY} events during the load`), { name: 'AmiLoadOverrun' })
      return snapshot
    } catch (error) {
      this.log(`AMI_RECONCILE_FAILED ${(error as Error).name}: ${(error as Error).message}`)
      return null
    }
  }

  private replayEvents(events: readonly AmiMessage[]): void {
    this.replaying = true
    try {
      for (const event of events) this.handlers[event.get('Event') ?? '']?.(event)
    } finally {
      this.replaying = false
    }
  }

  private summary(): StateSummary {
    this.rederiveDirty()
    const endpoints = new Map([...this.live].map(([name, endpoint]) => [name, `${endpoint.deviceState}|${contactsKey(endpoint.contacts)}`]))
    const registrations = new Map([...this.liveRegistrations].map(([name, registration]) => [name, registration.status]))
    const channels = new Map([...this.graph.channels].map(([uniqueid, channel]) => [uniqueid, `${channel.state}|${channel.bridge}|${channel.linkedid}`]))
    return { endpoints, registrations, channels }
  }

  private driftFrom(before: StateSummary, after: StateSummary): Drift {
    return {
      endpoints: countDiffering(before.endpoints, after.endpoints),
      registrations: countDiffering(before.registrations, after.registrations),
      channels: countDiffering(before.channels, after.channels),
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
    // A channel Asterisk no longer lists is gone, even if its Hangup was lost.
    const loadedIds = new Set(snapshot.channels.map((loaded) => loaded.snapshot.uniqueid))
    for (const uniqueid of [...this.graph.channels.keys()]) if (!loadedIds.has(uniqueid)) this.graph.remove(uniqueid, false)
    for (const bridge of snapshot.bridges) this.graph.createBridge(bridge)
    this.graph.keepBridges(snapshot.bridges)
    const now = Math.floor(this.clock.now() / 1000)
    for (const loaded of snapshot.channels) {
      if (!isTrackable(loaded.snapshot) || this.graph.hasEnded(loaded.snapshot.uniqueid)) continue
      const channel = this.track(loaded.snapshot, now)
      if (!channel) continue
      if (loaded.dialDestination) channel.dialDestination = true
      if (loaded.bridge) this.graph.enterBridge(channel.uniqueid, loaded.bridge)
      else this.graph.leaveBridge(channel.uniqueid)
    }
    this.queues.replaceWith(snapshot.queueEvents)
    if (!this.deviceEventsSeen) for (const endpoint of this.live.values()) if (this.graph.channelsOfEndpoint(endpoint.name).length > 0) this.dirtyEndpoints.add(endpoint.name)
  }

  /** Nothing arrives while the link is down; whatever a dropping link still hands over is left to the next load. */
  private onEvent(event: AmiMessage): void {
    this.counters.eventsReceived++
    if (this.options.link.status !== 'up') return
    const handler = this.handlers[event.get('Event') ?? '']
    if (!handler) return
    if (this.replay) {
      if (this.replay.length < MAX_REPLAY) this.replay.push(event)
      else this.replayOverflow = true
    }
    handler(event)
    this.changed()
  }

  private ignored(): void {
    if (!this.replaying) this.counters.ignoredEvents++
  }

  private counted(handled: boolean): void {
    if (!handled) this.ignored()
  }

  private track(snapshot: ChannelSnapshot, seconds: number): Channel | undefined {
    const channel = this.graph.upsert(snapshot, seconds)
    if (!channel && !this.capLogged) {
      this.capLogged = true
      this.log(`AMI_CHANNEL_CAP channels=${this.graph.size}: new channels are not tracked until some hang up`)
    }
    return channel
  }

  /** A channel an event may create or update: strict names only, and never one whose Hangup was seen. */
  private trackable(snapshot: ChannelSnapshot | null): snapshot is ChannelSnapshot {
    return snapshot !== null && isTrackable(snapshot) && !this.graph.hasEnded(snapshot.uniqueid)
  }

  private known(event: AmiMessage): Channel | undefined {
    return this.graph.channels.get(event.get('Uniqueid') ?? '')
  }

  private onChannelUpdate(event: AmiMessage): void {
    const snapshot = snapshotOf(event)
    if (!this.trackable(snapshot)) return this.ignored()
    if (this.track(snapshot, eventSeconds(event, this.clock))) this.rederive(snapshot.name)
  }

  private onHangupRequest(event: AmiMessage): void {
    const channel = this.known(event)
    if (!channel) return this.ignored()
    channel.ending = true
  }

  private onHangup(event: AmiMessage): void {
    const uniqueid = event.get('Uniqueid') ?? ''
    const name = event.get('Channel') ?? ''
    this.queues.channelGone(uniqueid, name)
    if (!this.graph.remove(uniqueid)) return this.ignored()
    this.rederive(name)
  }

  private onDialBegin(event: AmiMessage): void {
    const destSnapshot = snapshotOf(event, 'Dest')
    if (!this.trackable(destSnapshot)) return this.ignored()
    const seconds = eventSeconds(event, this.clock)
    const callerSnapshot = snapshotOf(event)
    const caller = this.trackable(callerSnapshot) ? this.track(callerSnapshot, seconds) : undefined
    const dest = this.track(destSnapshot, seconds)
    if (dest) this.graph.dialBegin(caller, dest)
    this.rederive(destSnapshot.name)
  }

  /** DialEnd closes the edge; a second one for the same destination changes nothing more. */
  private onDialEnd(event: AmiMessage): void {
    const destSnapshot = snapshotOf(event, 'Dest')
    const dest = destSnapshot ? this.graph.channels.get(destSnapshot.uniqueid) : undefined
    if (!destSnapshot || !dest) return this.ignored()
    this.track(destSnapshot, eventSeconds(event, this.clock))
    this.graph.dialEnd(dest, event.get('DialStatus') ?? '')
    this.rederive(destSnapshot.name)
  }

  private onHold(event: AmiMessage, held: boolean): void {
    const channel = this.known(event)
    if (!channel) return this.ignored()
    channel.held = held
  }

  private onBridgeCreate(event: AmiMessage): void {
    const bridge = event.get('BridgeUniqueid') ?? ''
    if (!bridge) return this.ignored()
    this.graph.createBridge(bridge)
  }

  private onBridgeDestroy(event: AmiMessage): void {
    if (!this.graph.destroyBridge(event.get('BridgeUniqueid') ?? '')) this.ignored()
  }

  private onBridge(event: AmiMessage, entering: boolean): void {
    const channel = this.known(event)
    const bridge = event.get('BridgeUniqueid') ?? ''
    if (!channel || !bridge) return this.ignored()
    if (entering) return this.graph.enterBridge(channel.uniqueid, bridge)
    if (channel.bridge !== bridge) return this.ignored()
    this.graph.leaveBridge(channel.uniqueid)
  }

  private setDeviceState(endpoint: LiveEndpoint, text: string): void {
    if (endpoint.deviceState === text) return
    endpoint.deviceState = text
    endpoint.stateSeq = ++this.seq
  }

  /**
   * Without DeviceStateChange, an endpoint's state follows its channels and contacts. Derived when
   * read, not per event: a trunk with thousands of channels costs one pass per publication.
   */
  private rederive(channelName: string): void {
    if (this.deviceEventsSeen) return
    const name = endpointOfChannel(channelName)
    if (name !== null && this.live.has(name)) this.dirtyEndpoints.add(name)
  }

  private rederiveDirty(): void {
    for (const name of this.dirtyEndpoints) {
      const endpoint = this.live.get(name)
      if (endpoint && !this.deviceEventsSeen) this.rederiveEndpoint(endpoint)
    }
    this.dirtyEndpoints.clear()
  }

  private rederiveEndpoint(endpoint: LiveEndpoint): void {
    const states = this.graph.channelsOfEndpoint(endpoint.name).map((channel) => channel.state)
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
    if (!this.deviceEventsSeen) this.dirtyEndpoints.add(endpoint.name)
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
    if (this.options.link.status !== 'up' || this.bootstrapping) return
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

  /** The directory (names) or the sink may fail for a while: log the first failure of a run and try again later. */
  private flush(): void {
    this.flushTimer = null
    if (this.options.link.status !== 'up') return
    this.openWindow()
    try {
      this.publishChanged()
      this.publishFailing = false
    } catch (error) {
      if (!this.publishFailing) this.log(`AMI_PUBLISH_FAILED ${(error as Error).name}: ${(error as Error).message}`)
      this.publishFailing = true
      this.flushTimer = this.timers.setTimeout(() => this.flush(), PUBLISH_RETRY_MS)
    }
  }

  /**
   * Each entry's JSON is compared with the one last published: a change that leaves every entry
   * the same publishes nothing and uses no sequence number (README "Presence snapshots, schema version 2").
   */
  private publishChanged(): void {
    const states = sortedStates(this.usersState())
    const entries = new Map(Object.entries(states).map(([key, entry]) => [key, JSON.stringify(entry)]))
    const calls = this.activeCalls()
    const callsJson = JSON.stringify(calls)
    const all = this.publishAll
    const statesChanged = all || !this.lastEntries || !sameEntries(this.lastEntries, entries)
    const callsChanged = all || callsJson !== this.lastCalls
    if (statesChanged) this.options.sink.full('users-state', this.stamper.stamp<'users-state'>({ states }))
    this.lastEntries = entries
    if (callsChanged) this.options.sink.full('active-calls', this.stamper.stamp<'active-calls'>({ calls }))
    this.lastCalls = callsJson
    this.publishAll = false
  }
}

function sameEntries(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false
  for (const [key, json] of a) if (b.get(key) !== json) return false
  return true
}
