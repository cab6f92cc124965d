/**
 * The `users-state` snapshot body (README "Presence snapshots, schema version 2"): per user
 * extension its name, aggregate state and channels (`<ext>-WS` and mobile legs merged into
 * `<ext>`), then the queues.
 */
import { betterState, extensionOfEndpoint, userStateOfDevice, type UserState } from './device-state'
import { compareUniqueids, knownNumber, type CallGraph, type Channel } from './call-graph'
import { numberOfChannel, userOfChannel, type NameOf, type UserOfMobile } from './calls'
import { channelIdOf, type ChannelEntry, type EmployeeEntry } from '../presence/snapshot'

export interface EndpointRecord {
  name: string
  deviceState: string
  /** When deviceState last changed, on the engine's sequence: the newer of it and the hint wins. */
  stateSeq: number
  /** Contact statuses (`Reachable`, `Unreachable`, `NonQualified`, …). */
  contactStatuses: readonly string[]
}

export interface HintState {
  state: UserState
  seq: number
}

interface DeviceSide {
  state: UserState
  seq: number
  reachable: boolean
}

const reachable = (statuses: readonly string[]): boolean => statuses.some((status) => status !== 'Unreachable' && status !== 'Removed' && status !== '')

export function channelEntry(channel: Channel, graph: CallGraph, nameOf: NameOf, owner: string | null): ChannelEntry {
  const direction = graph.directionOf(channel)
  const answerState = graph.answerStateOf(channel)
  const peer = graph.peerOf(channel)
  const [peerName, number] = peer.kind === 'one' ? [peer.channel.name, numberOfChannel(peer.channel, nameOf)] : ['', knownNumber(channel.connectedNum)]
  const ownPjsip = owner !== null && userOfChannel(channel.name, nameOf) === owner && channelIdOf(channel.name) !== ''
  return {
    channel: peerName,
    number,
    direction,
    linkedid: graph.canonical(channel.linkedid),
    uniqueid: channel.uniqueid,
    channelId: channelIdOf(channel.name),
    answerState,
    pickupAvailable: ownPjsip && direction === 'incoming' && answerState === 'ringing',
  }
}

/** The user a channel belongs to: its endpoint's extension, or for a leg to a mobile, the user whose mobile was dialed. */
export function ownerOfChannel(channel: Channel, nameOf: NameOf, userOfMobile: UserOfMobile): string | null {
  const user = userOfChannel(channel.name, nameOf)
  if (user !== null) return user
  if (!channel.dialDestination || !channel.dialedNumber) return null
  const mobileOwner = userOfMobile(channel.dialedNumber)
  return mobileOwner !== null && nameOf(mobileOwner) !== null ? mobileOwner : null
}

/**
 * README "Presence snapshots, schema version 2": Up if a channel is answered, bridged, held or
 * dialing; else Ringing if an incoming leg rings; else null (the devices decide).
 */
export function stateOfChannels(entries: readonly ChannelEntry[]): UserState | null {
  if (entries.some((entry) => ['answered', 'bridged', 'held', 'dialing'].includes(entry.answerState))) return 'Up'
  if (entries.some((entry) => entry.direction === 'incoming' && entry.answerState === 'ringing')) return 'Ringing'
  return null
}

function deviceSides(endpoints: Iterable<EndpointRecord>, nameOf: NameOf): Map<string, DeviceSide> {
  const sides = new Map<string, DeviceSide>()
  for (const endpoint of endpoints) {
    const ext = extensionOfEndpoint(endpoint.name)
    if (nameOf(ext) === null) continue
    const state = userStateOfDevice(endpoint.deviceState)
    const known = sides.get(ext)
    const side = { state, seq: endpoint.stateSeq, reachable: reachable(endpoint.contactStatuses) }
    sides.set(ext, known ? { state: betterState(known.state, state), seq: Math.max(known.seq, side.seq), reachable: known.reachable || side.reachable } : side)
  }
  return sides
}

/**
 * Without channels the device state or hint, whichever changed last, decides (it is the only
 * source for hold); with channels that decide nothing (cancelled, ended), the contacts do.
 */
function aggregateState(channels: readonly ChannelEntry[], device: DeviceSide, hint: HintState | undefined): UserState {
  const fromChannels = stateOfChannels(channels)
  if (fromChannels !== null) return fromChannels
  if (channels.length > 0) return device.reachable ? 'Idle' : 'Unavailable'
  return hint && hint.seq > device.seq ? hint.state : device.state
}

/** The schema's cap per entry; beyond it the live legs are kept over the finished ones, then the newest. */
export const MAX_CHANNELS_PER_ENTRY = 100
const FINISHED: ReadonlySet<string> = new Set(['cancelled', 'ended'])

function mostRelevant(channels: Array<[string, ChannelEntry]>): Array<[string, ChannelEntry]> {
  if (channels.length <= MAX_CHANNELS_PER_ENTRY) return channels
  const rank = ([, entry]: [string, ChannelEntry]) => (FINISHED.has(entry.answerState) ? 1 : 0)
  return [...channels].sort((a, b) => rank(a) - rank(b) || compareUniqueids(b[1].uniqueid, a[1].uniqueid)).slice(0, MAX_CHANNELS_PER_ENTRY)
}

/** Object keys in sorted order, so equal entries give equal JSON. */
const sortedRecord = <T>(pairs: Array<[string, T]>): Record<string, T> => Object.fromEntries(pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

export interface UsersStateInput {
  endpoints: Iterable<EndpointRecord>
  hints: ReadonlyMap<string, HintState>
  graph: CallGraph
  queues: ReadonlyMap<string, EmployeeEntry>
  nameOf: NameOf
  userOfMobile: UserOfMobile
}

export function buildUsersState(input: UsersStateInput): Map<string, EmployeeEntry> {
  const { graph, nameOf } = input
  const channelsOf = new Map<string, Array<[string, ChannelEntry]>>()
  for (const channel of graph.channels.values()) {
    const owner = ownerOfChannel(channel, nameOf, input.userOfMobile)
    if (owner === null) continue
    const list = channelsOf.get(owner) ?? []
    list.push([channel.name, channelEntry(channel, graph, nameOf, owner)])
    channelsOf.set(owner, list)
  }
  const states = new Map<string, EmployeeEntry>()
  for (const [ext, device] of deviceSides(input.endpoints, nameOf)) {
    const channels = channelsOf.get(ext) ?? []
    const state = aggregateState(
      channels.map(([, entry]) => entry),
      device,
      input.hints.get(ext),
    )
    states.set(ext, { name: nameOf(ext)!, state, channels: sortedRecord(mostRelevant(channels)) })
  }
  for (const [name, queue] of input.queues) if (!states.has(name)) states.set(name, queue)
  return states
}
