/**
 * The call graph (README "Live PBX state"): the channels Asterisk has open, indexed by uniqueid,
 * full channel name, linkedid and endpoint, with the Dial edges between them, bridge membership
 * and `Local/…;1 ↔ ;2` pairs. Every operation is idempotent, so a repeated or late event changes
 * nothing it should not; every walk carries a visited set, so a bridge cycle through Local pairs
 * ends.
 */
import type { AmiMessage } from './ami/ami-link'
import { endpointOfChannel } from './device-state'
import type { AnswerState } from '../presence/snapshot'

export interface ChannelSnapshot {
  uniqueid: string
  name: string
  linkedid: string
  /** ChannelStateDesc: `Down`, `Ring`, `Ringing`, `Up`, `Busy`, … */
  state: string
  callerNum: string
  connectedNum: string
  exten: string
}

export interface Channel extends ChannelSnapshot {
  bridge: string | null
  /** Uniqueid of the channel whose Dial created this one. */
  dialedBy: string | null
  /** What the dialing channel had dialed (its Exten at DialBegin). */
  dialedNumber: string
  /** True once this channel is the destination of a Dial (DialBegin's Dest, or `AppDial` in a load). */
  dialDestination: boolean
  /** This destination's DialEnd DialStatus; '' while its Dial is open. */
  dialStatus: string
  /** Uniqueids this channel dialed, in order. */
  dialed: string[]
  held: boolean
  /** A HangupRequest or SoftHangupRequest was seen: the Hangup follows. */
  ending: boolean
}

export interface CallRecord {
  /** The earliest linkedid of the call; later ones are its aliases. */
  linkedid: string
  /** Unix seconds. */
  start: number
  answer: number | null
  srcUniqueid: string
  srcName: string
  /** The originating channel's Exten when it arrived: the DID of a call from a provider. */
  srcExten: string
  members: Set<string>
  aliases: Set<string>
}

/** A CallerIDNum/ConnectedLineNum Asterisk really knows, not `<unknown>`. */
export const knownNumber = (value: string | undefined): string => (value && !value.startsWith('<') ? value : '')

const MAX_NUMBER_LENGTH = 80

export function snapshotOf(message: AmiMessage, prefix = ''): ChannelSnapshot | null {
  const field = (key: string) => message.get(prefix + key) ?? ''
  const uniqueid = field('Uniqueid')
  const name = field('Channel')
  if (!uniqueid || !name) return null
  return {
    uniqueid,
    name,
    linkedid: field('Linkedid') || uniqueid,
    state: field('ChannelStateDesc'),
    // Numbers end up in snapshots, whose schema caps them (README "Presence snapshots, schema version 2").
    callerNum: field('CallerIDNum').slice(0, MAX_NUMBER_LENGTH),
    connectedNum: field('ConnectedLineNum').slice(0, MAX_NUMBER_LENGTH),
    exten: field('Exten').slice(0, MAX_NUMBER_LENGTH),
  }
}

const UNIQUEID = /(\d{9,})\.(\d+)$/

/** Asterisk's uniqueids are `[<system name>-]<unix seconds>.<sequence>`: the seconds are when the channel was created. */
export function secondsOfUniqueid(uniqueid: string): number | null {
  const match = UNIQUEID.exec(uniqueid)
  return match ? Number(match[1]) : null
}

/** Older first: by the seconds, then the sequence, then the text. */
export function compareUniqueids(a: string, b: string): number {
  const [ma, mb] = [UNIQUEID.exec(a), UNIQUEID.exec(b)]
  if (ma && mb) return Number(ma[1]) - Number(mb[1]) || Number(ma[2]) - Number(mb[2])
  return a < b ? -1 : a > b ? 1 : 0
}

export const isLocalName = (name: string): boolean => name.startsWith('Local/')
const otherLocalHalf = (name: string): string => name.replace(/;([12])$/, (_, half: string) => (half === '1' ? ';2' : ';1'))
/** Uniqueids of channels that hung up are remembered this long (in count), so their late events are dropped. */
const ENDED_MEMORY = 4096

/** The other party of a channel: one channel, none, or several at the same distance (ambiguous). */
export type Peer = { kind: 'one'; channel: Channel } | { kind: 'none' } | { kind: 'ambiguous' }

export class CallGraph {
  readonly channels = new Map<string, Channel>()
  readonly calls = new Map<string, CallRecord>()
  private readonly byName = new Map<string, string>()
  private readonly byEndpoint = new Map<string, Set<string>>()
  private readonly bridges = new Map<string, Set<string>>()
  /** A later linkedid → the earlier one its call was merged into. */
  private readonly aliasOf = new Map<string, string>()
  private readonly ended = new Set<string>()

  constructor(private readonly maxChannels: number) {}

  get size(): number {
    return this.channels.size
  }

  get full(): boolean {
    return this.channels.size >= this.maxChannels
  }

  get bridgeCount(): number {
    return this.bridges.size
  }

  byChannelName(name: string): Channel | undefined {
    const uniqueid = this.byName.get(name)
    return uniqueid === undefined ? undefined : this.channels.get(uniqueid)
  }

  /** The uniqueids of an endpoint's channels (`201-WS`). */
  channelsOfEndpoint(endpoint: string): Channel[] {
    return [...(this.byEndpoint.get(endpoint) ?? [])].flatMap((uniqueid) => this.channels.get(uniqueid) ?? [])
  }

  /** True for a uniqueid whose Hangup was seen: a late event must not bring it back. */
  hasEnded(uniqueid: string): boolean {
    return this.ended.has(uniqueid)
  }

  /** The call's first linkedid, through the aliases pickups and transfers made. */
  canonical(linkedid: string): string {
    let current = linkedid
    for (let hop = 0; hop < 64; hop++) {
      const next = this.aliasOf.get(current)
      if (next === undefined) return current
      current = next
    }
    return current
  }

  /** Creates or updates a channel; undefined when the graph is full and the channel is new. */
  upsert(snapshot: ChannelSnapshot, eventSeconds: number): Channel | undefined {
    let channel = this.channels.get(snapshot.uniqueid)
    if (!channel) {
      if (this.full) return undefined
      channel = { ...snapshot, bridge: null, dialedBy: null, dialedNumber: '', dialDestination: false, dialStatus: '', dialed: [], held: false, ending: false }
      this.channels.set(snapshot.uniqueid, channel)
      this.index(channel)
      this.joinCall(channel, eventSeconds)
    } else {
      const previousLinkedid = channel.linkedid
      if (channel.name !== snapshot.name) this.unindex(channel)
      Object.assign(channel, snapshot)
      this.index(channel)
      // A changed Linkedid: the later one becomes an alias of the earlier, the call stays one.
      if (previousLinkedid !== snapshot.linkedid) this.mergeCalls(previousLinkedid, snapshot.linkedid)
    }
    this.noteAnswer(channel, eventSeconds)
    return channel
  }

  /** `hungUp`: a Hangup said so, and late events for it are dropped; a load's removal may be undone by newer events. */
  remove(uniqueid: string, hungUp = true): boolean {
    if (hungUp) this.rememberEnded(uniqueid)
    const channel = this.channels.get(uniqueid)
    if (!channel) return false
    this.leaveBridge(uniqueid)
    const dialer = channel.dialedBy === null ? undefined : this.channels.get(channel.dialedBy)
    if (dialer) dialer.dialed = dialer.dialed.filter((dialed) => dialed !== uniqueid)
    this.channels.delete(uniqueid)
    this.unindex(channel)
    this.leaveCall(uniqueid, channel.linkedid)
    return true
  }

  dialBegin(caller: Channel | undefined, dest: Channel): void {
    dest.dialDestination = true
    dest.dialStatus = ''
    if (!caller || caller.uniqueid === dest.uniqueid) return
    dest.dialedBy = caller.uniqueid
    dest.dialedNumber = caller.exten
    if (!caller.dialed.includes(dest.uniqueid)) caller.dialed.push(dest.uniqueid)
  }

  dialEnd(dest: Channel, status: string): void {
    dest.dialDestination = true
    dest.dialStatus = status || 'UNKNOWN'
  }

  /** A bridge seen by BridgeCreate or a load, possibly still empty. */
  createBridge(bridge: string): void {
    if (!this.bridges.has(bridge) && this.bridges.size < this.maxChannels) this.bridges.set(bridge, new Set())
  }

  hasBridge(bridge: string): boolean {
    return this.bridges.has(bridge)
  }

  /** Every member leaves; the bridge is forgotten. */
  destroyBridge(bridge: string): boolean {
    const members = this.bridges.get(bridge)
    if (!members) return false
    for (const uniqueid of members) {
      const channel = this.channels.get(uniqueid)
      if (channel?.bridge === bridge) channel.bridge = null
    }
    this.bridges.delete(bridge)
    return true
  }

  /** Joins a bridge; channels of two calls in one bridge (a pickup, an attended transfer) make one call. */
  enterBridge(uniqueid: string, bridge: string): void {
    const channel = this.channels.get(uniqueid)
    if (!channel) return
    if (channel.bridge !== bridge) this.leaveBridge(uniqueid)
    channel.bridge = bridge
    const members = this.bridges.get(bridge) ?? new Set<string>()
    members.add(uniqueid)
    this.bridges.set(bridge, members)
    for (const member of members) {
      const other = this.channels.get(member)
      if (other && other !== channel) this.mergeCalls(other.linkedid, channel.linkedid)
    }
  }

  leaveBridge(uniqueid: string): void {
    const channel = this.channels.get(uniqueid)
    if (!channel?.bridge) return
    this.bridges.get(channel.bridge)?.delete(uniqueid)
    channel.bridge = null
  }

  /** Drops the empty bridges a load did not list. */
  keepBridges(listed: ReadonlySet<string>): void {
    for (const [bridge, members] of this.bridges) if (members.size === 0 && !listed.has(bridge)) this.bridges.delete(bridge)
  }

  localPartner(channel: Channel): Channel | undefined {
    return isLocalName(channel.name) ? this.byChannelName(otherLocalHalf(channel.name)) : undefined
  }

  /** The other live members of the channel's bridge. */
  bridgedWith(channel: Channel): Channel[] {
    if (!channel.bridge) return []
    return [...(this.bridges.get(channel.bridge) ?? [])].flatMap((uniqueid) => {
      const other = this.channels.get(uniqueid)
      return other && other !== channel && !other.ending ? [other] : []
    })
  }

  /** Destinations of this channel's Dials that are still ringing or answered. */
  liveDestinations(channel: Channel): Channel[] {
    return channel.dialed.flatMap((uniqueid) => {
      const dest = this.channels.get(uniqueid)
      return dest && (dest.dialStatus === '' || dest.dialStatus === 'ANSWER') ? [dest] : []
    })
  }

  /**
   * Another fork of the same Dial answered (DialEnd ANSWER or Up), this one's Dial ended without
   * an answer, or, through a Local pair, the fork that created it was cancelled.
   */
  isCancelled(channel: Channel, visited = new Set<string>()): boolean {
    if (channel.state === 'Up' || visited.has(channel.uniqueid)) return false
    visited.add(channel.uniqueid)
    if (channel.dialStatus !== '' && channel.dialStatus !== 'ANSWER') return true
    const dialer = channel.dialedBy === null ? undefined : this.channels.get(channel.dialedBy)
    if (!dialer) return false
    const siblingAnswered = dialer.dialed.some((uniqueid) => {
      const sibling = this.channels.get(uniqueid)
      return sibling !== undefined && sibling !== channel && (sibling.dialStatus === 'ANSWER' || sibling.state === 'Up')
    })
    if (siblingAnswered) return true
    const partner = this.localPartner(dialer)
    return partner !== undefined && this.isCancelled(partner, visited)
  }

  /** The first rule that holds, in README order (Presence snapshots, schema version 2). */
  answerStateOf(channel: Channel): AnswerState {
    if (channel.ending) return 'ended'
    if (this.isCancelled(channel)) return 'cancelled'
    if (channel.held) return 'held'
    if (this.bridgedWith(channel).length > 0) return 'bridged'
    if (channel.dialed.some((uniqueid) => this.channels.get(uniqueid)?.dialStatus === '')) return 'dialing'
    if (channel.state === 'Up') return 'answered'
    if (channel.state === 'Ringing' || (channel.dialDestination && channel.state === 'Ring')) return 'ringing'
    return 'new'
  }

  /** From the Dial edge, never from CallerID; a channel with none is outgoing if it started its call. */
  directionOf(channel: Channel): 'incoming' | 'outgoing' {
    if (channel.dialDestination) return 'incoming'
    if (channel.dialed.length > 0) return 'outgoing'
    return channel.uniqueid === channel.linkedid ? 'outgoing' : 'incoming'
  }

  /**
   * The party at the other end: through bridge members and Local pairs to the nearest live
   * non-Local channels; without a bridge, along the Dial edges. Two at the same distance is
   * ambiguous (a conference, parallel forks); member order never decides.
   */
  peerOf(channel: Channel): Peer {
    const visited = new Set([channel.uniqueid])
    const partner = this.localPartner(channel)
    if (partner) visited.add(partner.uniqueid)
    let frontier = this.linksOf(channel, visited)
    while (frontier.length > 0) {
      const physical = frontier.filter((candidate) => !isLocalName(candidate.name))
      if (physical.length === 1) return { kind: 'one', channel: physical[0]! }
      if (physical.length > 1) return { kind: 'ambiguous' }
      frontier = frontier.flatMap((local) => {
        const half = this.localPartner(local)
        if (!half || visited.has(half.uniqueid)) return []
        visited.add(half.uniqueid)
        return this.linksOf(half, visited)
      })
    }
    return { kind: 'none' }
  }

  /** The bridged peer only, through Local pairs: who this channel is talking to. */
  talkingTo(channel: Channel): Channel | null {
    if (this.bridgedWith(channel).length === 0) return null
    const peer = this.peerOf(channel)
    return peer.kind === 'one' ? peer.channel : null
  }

  /** One step from a channel: its bridge's other members, else who dialed it, else what it dials. */
  private linksOf(channel: Channel, visited: Set<string>): Channel[] {
    const bridged = this.bridgedWith(channel)
    const dialer = channel.dialedBy === null ? undefined : this.channels.get(channel.dialedBy)
    const next = bridged.length > 0 ? bridged : dialer ? [dialer] : this.liveDestinations(channel)
    const fresh = next.filter((candidate) => !visited.has(candidate.uniqueid))
    for (const candidate of fresh) visited.add(candidate.uniqueid)
    return fresh
  }

  private index(channel: Channel): void {
    this.byName.set(channel.name, channel.uniqueid)
    const endpoint = endpointOfChannel(channel.name)
    if (endpoint === null) return
    const set = this.byEndpoint.get(endpoint) ?? new Set<string>()
    set.add(channel.uniqueid)
    this.byEndpoint.set(endpoint, set)
  }

  private unindex(channel: Channel): void {
    if (this.byName.get(channel.name) === channel.uniqueid) this.byName.delete(channel.name)
    const endpoint = endpointOfChannel(channel.name)
    const set = endpoint === null ? undefined : this.byEndpoint.get(endpoint)
    if (!set) return
    set.delete(channel.uniqueid)
    if (set.size === 0) this.byEndpoint.delete(endpoint!)
  }

  private rememberEnded(uniqueid: string): void {
    this.ended.delete(uniqueid)
    this.ended.add(uniqueid)
    if (this.ended.size > ENDED_MEMORY) this.ended.delete(this.ended.values().next().value!)
  }

  private mergeCalls(a: string, b: string): void {
    const [ca, cb] = [this.canonical(a), this.canonical(b)]
    if (ca === cb) return
    const [earlier, later] = compareUniqueids(ca, cb) <= 0 ? [ca, cb] : [cb, ca]
    const kept = this.calls.get(earlier)
    const merged = this.calls.get(later)
    this.aliasOf.set(later, earlier)
    if (!kept || !merged) {
      if (merged && !kept) this.calls.set(earlier, { ...merged, linkedid: earlier, aliases: new Set([...merged.aliases, later]) })
      else kept?.aliases.add(later)
      this.calls.delete(later)
      return
    }
    for (const member of merged.members) kept.members.add(member)
    for (const alias of merged.aliases) kept.aliases.add(alias)
    kept.aliases.add(later)
    kept.start = Math.min(kept.start, merged.start)
    if (merged.answer !== null) kept.answer = kept.answer === null ? merged.answer : Math.min(kept.answer, merged.answer)
    if (!this.channels.has(kept.srcUniqueid) && this.channels.has(merged.srcUniqueid)) Object.assign(kept, { srcUniqueid: merged.srcUniqueid, srcName: merged.srcName, srcExten: merged.srcExten })
    this.calls.delete(later)
  }

  private joinCall(channel: Channel, eventSeconds: number): void {
    const linkedid = this.canonical(channel.linkedid)
    const existing = this.calls.get(linkedid)
    if (existing) {
      existing.members.add(channel.uniqueid)
      // The originating channel (Uniqueid = Linkedid) may show up after a leg it created.
      if (channel.uniqueid === linkedid) this.makeSource(existing, channel)
      return
    }
    const call: CallRecord = {
      linkedid,
      start: secondsOfUniqueid(linkedid) ?? eventSeconds,
      answer: null,
      srcUniqueid: '',
      srcName: '',
      srcExten: '',
      members: new Set([channel.uniqueid]),
      aliases: new Set(),
    }
    this.makeSource(call, channel)
    this.calls.set(linkedid, call)
  }

  private makeSource(call: CallRecord, channel: Channel): void {
    call.srcUniqueid = channel.uniqueid
    call.srcName = channel.name
    call.srcExten = channel.exten
  }

  /** The last member gone, the call and its aliases are forgotten. */
  private leaveCall(uniqueid: string, linkedid: string): void {
    const key = this.canonical(linkedid)
    const call = this.calls.get(key)
    if (!call) return
    call.members.delete(uniqueid)
    if (call.members.size > 0) return
    this.calls.delete(key)
    for (const alias of call.aliases) this.aliasOf.delete(alias)
  }

  private noteAnswer(channel: Channel, eventSeconds: number): void {
    const call = this.calls.get(this.canonical(channel.linkedid))
    if (call && call.answer === null && channel.state === 'Up' && channel.uniqueid !== call.srcUniqueid) call.answer = eventSeconds
  }
}
