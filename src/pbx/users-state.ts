/**
 * The `users-state` snapshot (README "Live PBX state"): per user extension its name, state and
 * open channels; `<ext>-WS` merged into `<ext>`.
 */
import { betterState, extensionOfEndpoint, userStateOfDevice, type UserState } from './device-state'
import { knownNumber, type Channel, type ChannelTable } from './channel-table'
import { numberOfChannel, userOfChannel, type NameOf } from './calls'

export interface EndpointRecord {
  name: string
  deviceState: string
  /** When deviceState last changed, on the engine's sequence: the newer of it and the hint wins. */
  stateSeq: number
}

export interface HintState {
  state: UserState
  seq: number
}

export interface ChannelPeer {
  channel: string
  number: string
  direction: 'incoming' | 'outgoing'
}

export interface UserEntry {
  name: string
  state: UserState
  channels?: Record<string, ChannelPeer>
}

interface DeviceSide {
  state: UserState
  seq: number
}

function peerEntry(channel: Channel, table: ChannelTable, nameOf: NameOf): ChannelPeer {
  const call = table.calls.get(channel.linkedid)
  const direction = call?.srcUniqueid === channel.uniqueid ? 'outgoing' : 'incoming'
  const peer = table.peerOf(channel)
  if (peer) return { channel: peer.name, number: numberOfChannel(peer, nameOf), direction }
  return { channel: '', number: knownNumber(channel.connectedNum), direction }
}

function deviceSides(endpoints: Iterable<EndpointRecord>, nameOf: NameOf): Map<string, DeviceSide> {
  const sides = new Map<string, DeviceSide>()
  for (const endpoint of endpoints) {
    const ext = extensionOfEndpoint(endpoint.name)
    if (nameOf(ext) === null) continue
    const state = userStateOfDevice(endpoint.deviceState)
    const known = sides.get(ext)
    sides.set(ext, known ? { state: betterState(known.state, state), seq: Math.max(known.seq, endpoint.stateSeq) } : { state, seq: endpoint.stateSeq })
  }
  return sides
}

export function buildUsersState(
  endpoints: Iterable<EndpointRecord>,
  hints: ReadonlyMap<string, HintState>,
  table: ChannelTable,
  nameOf: NameOf,
): { states: Record<string, UserEntry> } {
  const states: Record<string, UserEntry> = {}
  for (const [ext, device] of deviceSides(endpoints, nameOf)) {
    const hint = hints.get(ext)
    const state = hint && hint.seq > device.seq ? hint.state : device.state
    states[ext] = { name: nameOf(ext)!, state }
  }
  for (const channel of table.channels.values()) {
    const ext = userOfChannel(channel.name, nameOf)
    const entry = ext === null ? undefined : states[ext]
    if (!entry) continue
    entry.channels ??= {}
    entry.channels[channel.name] = peerEntry(channel, table, nameOf)
  }
  return { states }
}
