/**
 * A full snapshot cut down to what one user may see (README "Personalised presence", the scope
 * rules). Pure. The envelope (schemaVersion, instanceId, sequence, generatedAt) is kept as is.
 * Only the schema's fields are copied (src/presence/snapshot.ts), whatever else a producer put in.
 *
 * The feed personalises the same snapshot for many users, so `prepare` makes each entry's JSON
 * once, and a user's body is assembled from those fragments; `personalise` is the same selection
 * as objects.
 */
import {
  PJSIP_CHANNEL,
  type ActiveCall,
  type ActiveCallsSnapshot,
  type CallLeg,
  type ChannelEntry,
  type EmployeeEntry,
  type SnapshotKind,
  type SnapshotOf,
  type UsersStateSnapshot,
} from '../snapshot'
import type { Scope, UserScope } from './scope'

type Envelope = Pick<UsersStateSnapshot, 'schemaVersion' | 'instanceId' | 'sequence' | 'generatedAt'>

interface PreparedEntry {
  key: string
  entry: EmployeeEntry
  /** `"201":{…}`, the whole entry. */
  json: string
  /** The entry with only some of its channels, by their names: many users share one view. */
  views: Map<string, string>
}

interface PreparedCall {
  call: ActiveCall
  json: string
}

interface PreparedBase {
  envelope: Envelope
  /** `{"schemaVersion":2,…,"generatedAt":…,`: a body is this and a payload. */
  envelopeText: string
  /** The unfiltered payload, as admins get it. */
  fullPayload: string
}

export interface PreparedStates extends PreparedBase {
  kind: 'users-state'
  entries: PreparedEntry[]
}

export interface PreparedCalls extends PreparedBase {
  kind: 'active-calls'
  calls: PreparedCall[]
}

export type Prepared = PreparedStates | PreparedCalls

export function prepare<K extends SnapshotKind>(kind: K, snapshot: SnapshotOf<K>): Prepared {
  const envelope = envelopeOf(snapshot)
  const envelopeText = JSON.stringify(envelope).slice(0, -1) + ','
  if (kind === 'users-state') {
    const entries = Object.entries((snapshot as UsersStateSnapshot).states).map(([key, entry]) => {
      const clean = cleanEntry(entry)
      return { key, entry: clean, json: `${JSON.stringify(key)}:${JSON.stringify(clean)}`, views: new Map() }
    })
    return { kind, envelope, envelopeText, entries, fullPayload: statesPayload(entries.map((entry) => entry.json)) }
  }
  const calls = (snapshot as ActiveCallsSnapshot).calls.map((call) => {
    const clean = cleanCall(call)
    return { call: clean, json: JSON.stringify(clean) }
  })
  return { kind: 'active-calls', envelope, envelopeText, calls, fullPayload: callsPayload(calls.map((call) => call.json)) }
}

/** The user's payload (the body without its envelope): what the feed compares to the last one it sent. */
export function personalPayload(prepared: Prepared, scope: Scope): string {
  if (scope.admin) return prepared.fullPayload
  if (prepared.kind === 'active-calls') return callsPayload(visibleCalls(prepared.calls, scope).map((call) => call.json))
  return statesPayload(visibleStates(prepared.entries, scope).map(viewJson))
}

export const bodyOf = (prepared: Prepared, payload: string): string => prepared.envelopeText + payload

/** The personalised snapshot as an object: the same selection as personalPayload. */
export function personalise<K extends SnapshotKind>(kind: K, snapshot: SnapshotOf<K>, scope: Scope): SnapshotOf<K> {
  const prepared = prepare(kind, snapshot)
  return JSON.parse(bodyOf(prepared, personalPayload(prepared, scope))) as SnapshotOf<K>
}

function envelopeOf({ schemaVersion, instanceId, sequence, generatedAt }: Envelope): Envelope {
  return { schemaVersion, instanceId, sequence, generatedAt }
}

const statesPayload = (fragments: string[]) => `"states":{${fragments.join(',')}}}`
const callsPayload = (fragments: string[]) => `"calls":[${fragments.join(',')}]}`

/** An entry shown whole, or with only the channels in a call with the user. */
interface StateView {
  entry: PreparedEntry
  channels: 'all' | string[]
}

function viewJson({ entry, channels }: StateView): string {
  if (channels === 'all') return entry.json
  const viewKey = channels.join('\n')
  let json = entry.views.get(viewKey)
  if (json === undefined) {
    const shown = Object.fromEntries(channels.map((name) => [name, entry.entry.channels[name]]))
    json = `${JSON.stringify(entry.key)}:${JSON.stringify({ ...entry.entry, channels: shown })}`
    entry.views.set(viewKey, json)
  }
  return json
}

/** The user's own channels: their names, the peers they name, and their linkedids. */
interface OwnCalls {
  names: Set<string>
  peers: Set<string>
  linkedids: Set<string>
}

function ownCallsOf(entries: PreparedEntry[], extension: string): OwnCalls {
  const own: OwnCalls = { names: new Set(), peers: new Set(), linkedids: new Set() }
  const channels = entries.find((entry) => entry.key === extension)?.entry.channels ?? {}
  for (const [name, channel] of Object.entries(channels)) {
    own.names.add(name)
    if (channel.channel) own.peers.add(channel.channel)
    if (channel.linkedid) own.linkedids.add(channel.linkedid)
  }
  return own
}

/** A channel in a call with the user: same linkedid, or one names the other as its peer. */
const inCallWith = (own: OwnCalls, name: string, channel: ChannelEntry): boolean =>
  (channel.linkedid !== '' && own.linkedids.has(channel.linkedid)) || own.names.has(channel.channel) || own.peers.has(name)

function visibleStates(entries: PreparedEntry[], scope: UserScope): StateView[] {
  const own = ownCallsOf(entries, scope.extension)
  const views: StateView[] = []
  for (const entry of entries) {
    const { key } = entry
    if (entry.entry.isQueue) {
      if (entry.entry.members?.includes(scope.extension)) views.push({ entry, channels: 'all' })
      continue
    }
    if (key === scope.extension || scope.mates.has(key)) {
      views.push({ entry, channels: 'all' })
      continue
    }
    const shared = Object.entries(entry.entry.channels)
      .filter(([name, channel]) => inCallWith(own, name, channel))
      .map(([name]) => name)
    if (!scope.statesAll && shared.length === 0) continue
    views.push({ entry, channels: scope.callsAll ? 'all' : shared })
  }
  return views
}

function visibleCalls(calls: PreparedCall[], scope: UserScope): PreparedCall[] {
  if (scope.callsAll) return calls
  const parties = new Set([scope.extension, ...scope.mates])
  return calls.filter(({ call }) => takesPart(call, parties, scope.mobiles))
}

/** A leg, the source or the destination is a party's PJSIP channel (its `-WS` one too), or a leg dials a party's mobile. */
function takesPart(call: ActiveCall, parties: ReadonlySet<string>, mobiles: ReadonlySet<string>): boolean {
  const legs = [...call.calledChannels, ...call.bridgeChannels]
  const channels = [call.src_chan, call.dst_chan, ...legs.map((leg) => leg.channel)]
  return channels.some((name) => isPartyChannel(name, parties)) || legs.some((leg) => mobiles.has(leg.number))
}

function isPartyChannel(name: string, parties: ReadonlySet<string>): boolean {
  const endpoint = PJSIP_CHANNEL.exec(name)?.[1]
  if (endpoint === undefined) return false
  return parties.has(endpoint) || (endpoint.endsWith('-WS') && parties.has(endpoint.slice(0, -3)))
}

function cleanChannel(channel: ChannelEntry): ChannelEntry {
  const { channel: peer, number, direction, linkedid, uniqueid, channelId, answerState, pickupAvailable } = channel
  return { channel: peer, number, direction, linkedid, uniqueid, channelId, answerState, pickupAvailable }
}

function cleanEntry(entry: EmployeeEntry): EmployeeEntry {
  const channels = Object.fromEntries(Object.entries(entry.channels ?? {}).map(([name, channel]) => [name, cleanChannel(channel)]))
  const clean: EmployeeEntry = { name: entry.name, state: entry.state, channels }
  if (entry.isQueue) clean.isQueue = true
  if (entry.members) clean.members = [...entry.members]
  return clean
}

function cleanLeg({ channel, number, uniqueid, channelId, answerState }: CallLeg): CallLeg {
  return { channel, number, uniqueid, channelId, answerState }
}

function cleanCall(call: ActiveCall): ActiveCall {
  const { start, answer, typeCall, src_chan, src_num, dst_chan, dst_num, did, linkedid } = call
  return {
    start,
    answer,
    typeCall,
    src_chan,
    src_num,
    dst_chan,
    dst_num,
    did,
    linkedid,
    calledChannels: call.calledChannels.map(cleanLeg),
    bridgeChannels: call.bridgeChannels.map(cleanLeg),
  }
}
