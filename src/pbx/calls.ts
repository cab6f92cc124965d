/**
 * The `active-calls` snapshot body (README "Live PBX state"): one entry per call, its linkedid the
 * earliest of the linkedids pickups and transfers joined, in the shape ModuleMonitorActiveCalls
 * published plus the version 2 leg fields.
 */
import { endpointOfChannel, extensionOfEndpoint } from './device-state'
import { compareUniqueids, isLocalName, knownNumber, type CallGraph, type CallRecord, type Channel } from './call-graph'
import { channelIdOf, isStrictChannelName, type ActiveCall, type CallLeg } from '../presence/snapshot'

export type NameOf = (ext: string) => string | null
/** The user extension whose mobile number this is, or null. */
export type UserOfMobile = (number: string) => string | null

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

/** The schema's cap per list of legs (README "Presence snapshots, schema version 2"); the oldest legs are kept. */
const MAX_LEGS = 100

/** Numbers of up to 4 digits are extensions on MikoPBX, as the legacy producer assumed for a call with no leg yet. */
const looksInternal = (exten: string, nameOf: NameOf): boolean => nameOf(exten) !== null || /^\d{1,4}$/.test(exten)

function typeOfCall(src: string | null, others: readonly Channel[], srcExten: string, nameOf: NameOf): ActiveCall['typeCall'] {
  if (src === null) return 'incoming'
  if (others.some((leg) => userOfChannel(leg.name, nameOf) === null)) return 'outgoing'
  if (others.length > 0) return 'inner'
  return looksInternal(srcExten, nameOf) ? 'inner' : 'outgoing'
}

function buildCall(call: CallRecord, graph: CallGraph, nameOf: NameOf): ActiveCall | null {
  const legs = [...call.members]
    .map((uniqueid) => graph.channels.get(uniqueid))
    .filter((leg): leg is Channel => leg !== undefined && !isLocalName(leg.name))
    .sort((a, b) => compareUniqueids(a.uniqueid, b.uniqueid))
  if (legs.length === 0) return null
  const source = graph.channels.get(call.srcUniqueid)
  const others = legs.filter((leg) => leg.uniqueid !== call.srcUniqueid)
  const srcUser = userOfChannel(call.srcName, nameOf)
  const dst = source ? graph.talkingTo(source) : null
  const asLeg = (leg: Channel): CallLeg => ({ channel: leg.name, number: numberOfChannel(leg, nameOf), uniqueid: leg.uniqueid, channelId: channelIdOf(leg.name), answerState: graph.answerStateOf(leg) })
  const typeCall = typeOfCall(srcUser, others, call.srcExten, nameOf)
  return {
    start: call.start,
    answer: call.answer ?? '',
    typeCall,
    src_chan: isStrictChannelName(call.srcName) ? call.srcName : '',
    src_num: source ? numberOfChannel(source, nameOf) : (srcUser ?? ''),
    dst_chan: dst?.name ?? '',
    dst_num: dst ? numberOfChannel(dst, nameOf) : '',
    did: typeCall === 'incoming' ? call.srcExten : '',
    linkedid: call.linkedid,
    calledChannels: others.filter((leg) => graph.talkingTo(leg) === null).slice(0, MAX_LEGS).map(asLeg),
    bridgeChannels: legs.filter((leg) => graph.talkingTo(leg) !== null).slice(0, MAX_LEGS).map(asLeg),
  }
}

/** Oldest call first, so equal graphs give equal JSON. */
export function buildActiveCalls(graph: CallGraph, nameOf: NameOf): ActiveCall[] {
  const calls: ActiveCall[] = []
  for (const call of graph.calls.values()) {
    const built = buildCall(call, graph, nameOf)
    if (built) calls.push(built)
  }
  return calls.sort((a, b) => compareUniqueids(a.linkedid, b.linkedid))
}
