/**
 * The `active-calls` snapshot (README "Live PBX state"): one entry per Linkedid, in the shape
 * ModuleMonitorActiveCalls published.
 */
import { endpointOfChannel, extensionOfEndpoint } from './device-state'
import { knownNumber, type CallRecord, type Channel, type ChannelTable } from './channel-table'

export type NameOf = (ext: string) => string | null

export interface Leg {
  channel: string
  number: string
}

export interface ActiveCall {
  start: number
  answer: number | ''
  typeCall: 'inner' | 'outgoing' | 'incoming'
  src_chan: string
  src_num: string
  dst_chan: string
  dst_num: string
  did: string
  linkedid: string
  calledChannels: Leg[]
  bridgeChannels: Leg[]
}

/** The user extension a channel belongs to (`PJSIP/201-WS-…` → `201`), or null for providers, unknown endpoints and Local channels. */
export function userOfChannel(name: string, nameOf: NameOf): string | null {
  const endpoint = endpointOfChannel(name)
  if (endpoint === null) return null
  const ext = extensionOfEndpoint(endpoint)
  return nameOf(ext) === null ? null : ext
}

/** A user's extension; for anyone else the number dialed to reach them, or their caller id. */
export function numberOfChannel(channel: Channel, nameOf: NameOf): string {
  const user = userOfChannel(channel.name, nameOf)
  if (user !== null) return user
  if (channel.dialedBy !== null && channel.dialedNumber) return channel.dialedNumber
  return knownNumber(channel.callerNum)
}

/** Numbers of up to 4 digits are extensions on MikoPBX, as the legacy producer assumed for a call with no leg yet. */
const looksInternal = (exten: string, nameOf: NameOf): boolean => nameOf(exten) !== null || /^\d{1,4}$/.test(exten)

function typeOfCall(src: string | null, others: readonly Channel[], srcExten: string, nameOf: NameOf): ActiveCall['typeCall'] {
  if (src === null) return 'incoming'
  if (others.some((leg) => userOfChannel(leg.name, nameOf) === null)) return 'outgoing'
  if (others.length > 0) return 'inner'
  return looksInternal(srcExten, nameOf) ? 'inner' : 'outgoing'
}

function buildCall(call: CallRecord, table: ChannelTable, nameOf: NameOf): ActiveCall | null {
  const legs = [...call.members].map((uniqueid) => table.channels.get(uniqueid)).filter((leg): leg is Channel => leg !== undefined && !table.isLocal(leg))
  if (legs.length === 0) return null
  const source = table.channels.get(call.srcUniqueid)
  const others = legs.filter((leg) => leg.uniqueid !== call.srcUniqueid)
  const srcUser = userOfChannel(call.srcName, nameOf)
  const dst = source ? table.talkingTo(source) : null
  const asLeg = (leg: Channel): Leg => ({ channel: leg.name, number: numberOfChannel(leg, nameOf) })
  const typeCall = typeOfCall(srcUser, others, call.srcExten, nameOf)
  return {
    start: call.start,
    answer: call.answer ?? '',
    typeCall,
    src_chan: call.srcName,
    src_num: source ? numberOfChannel(source, nameOf) : (srcUser ?? ''),
    dst_chan: dst?.name ?? '',
    dst_num: dst ? numberOfChannel(dst, nameOf) : '',
    did: typeCall === 'incoming' ? call.srcExten : '',
    linkedid: call.linkedid,
    calledChannels: others.filter((leg) => table.talkingTo(leg) === null).map(asLeg),
    bridgeChannels: legs.filter((leg) => table.talkingTo(leg) !== null).map(asLeg),
  }
}

export function buildActiveCalls(table: ChannelTable, nameOf: NameOf): { calls: ActiveCall[] } {
  const calls: ActiveCall[] = []
  for (const call of table.calls.values()) {
    const built = buildCall(call, table, nameOf)
    if (built) calls.push(built)
  }
  return { calls }
}
