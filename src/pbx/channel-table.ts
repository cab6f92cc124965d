/**
 * The channels Asterisk has open, grouped into calls by Linkedid, with their bridges and who dialed
 * whom (README "Live PBX state"). Filled from channel events and `CoreShowChannel`.
 */
import type { AmiMessage } from './ami/ami-link'

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
  /** Uniqueids this channel dialed, in order. */
  dialed: string[]
}

export interface CallRecord {
  linkedid: string
  /** Unix seconds. */
  start: number
  answer: number | null
  srcUniqueid: string
  srcName: string
  /** The originating channel's Exten when it arrived: the DID of a call from a provider. */
  srcExten: string
  members: Set<string>
}

/** A CallerIDNum/ConnectedLineNum Asterisk really knows, not `<unknown>`. */
export const knownNumber = (value: string | undefined): string => (value && !value.startsWith('<') ? value : '')

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
    callerNum: field('CallerIDNum'),
    connectedNum: field('ConnectedLineNum'),
    exten: field('Exten'),
  }
}

/** Asterisk's uniqueids are `[<system name>-]<unix seconds>.<sequence>`: the seconds are when the channel was created. */
export function secondsOfUniqueid(uniqueid: string): number | null {
  const match = /(\d{9,})\.\d+$/.exec(uniqueid)
  return match ? Number(match[1]) : null
}

const isLocal = (name: string): boolean => name.startsWith('Local/')
const otherLocalHalf = (name: string): string => name.replace(/;([12])$/, (_, half: string) => (half === '1' ? ';2' : ';1'))
/** Local channel pairs chained through dialplan; the bound keeps a malformed chain from looping. */
const MAX_LOCAL_HOPS = 5

export class ChannelTable {
  readonly channels = new Map<string, Channel>()
  readonly calls = new Map<string, CallRecord>()
  private readonly byName = new Map<string, string>()
  private readonly bridges = new Map<string, string[]>()

  constructor(private readonly maxChannels: number) {}

  get size(): number {
    return this.channels.size
  }

  byChannelName(name: string): Channel | undefined {
    const uniqueid = this.byName.get(name)
    return uniqueid === undefined ? undefined : this.channels.get(uniqueid)
  }

  /** Creates or updates a channel; undefined when the table is full and the channel is new. */
  upsert(snapshot: ChannelSnapshot, eventSeconds: number): Channel | undefined {
    let channel = this.channels.get(snapshot.uniqueid)
    if (!channel) {
      if (this.channels.size >= this.maxChannels) return undefined
      channel = { ...snapshot, bridge: null, dialedBy: null, dialedNumber: '', dialed: [] }
      this.channels.set(snapshot.uniqueid, channel)
      this.joinCall(channel, eventSeconds)
    } else {
      if (channel.name !== snapshot.name) this.byName.delete(channel.name)
      const previousLinkedid = channel.linkedid
      Object.assign(channel, snapshot)
      if (previousLinkedid !== snapshot.linkedid) {
        this.leaveCall(channel.uniqueid, previousLinkedid)
        this.joinCall(channel, eventSeconds)
      }
    }
    this.byName.set(channel.name, channel.uniqueid)
    this.noteAnswer(channel, eventSeconds)
    return channel
  }

  remove(uniqueid: string): boolean {
    const channel = this.channels.get(uniqueid)
    if (!channel) return false
    this.leaveBridge(uniqueid)
    this.channels.delete(uniqueid)
    if (this.byName.get(channel.name) === uniqueid) this.byName.delete(channel.name)
    this.leaveCall(uniqueid, channel.linkedid)
    return true
  }

  enterBridge(uniqueid: string, bridge: string): void {
    const channel = this.channels.get(uniqueid)
    if (!channel) return
    if (channel.bridge !== bridge) this.leaveBridge(uniqueid)
    channel.bridge = bridge
    const members = this.bridges.get(bridge) ?? []
    if (!members.includes(uniqueid)) members.push(uniqueid)
    this.bridges.set(bridge, members)
  }

  leaveBridge(uniqueid: string): void {
    const channel = this.channels.get(uniqueid)
    if (!channel?.bridge) return
    const members = (this.bridges.get(channel.bridge) ?? []).filter((member) => member !== uniqueid)
    if (members.length === 0) this.bridges.delete(channel.bridge)
    else this.bridges.set(channel.bridge, members)
    channel.bridge = null
  }

  dial(caller: Channel | undefined, dest: Channel): void {
    if (!caller) return
    dest.dialedBy = caller.uniqueid
    dest.dialedNumber = caller.exten
    if (!caller.dialed.includes(dest.uniqueid)) caller.dialed.push(dest.uniqueid)
  }

  /** Another channel in the same bridge, or null. */
  bridgedPeer(channel: Channel): Channel | null {
    if (!channel.bridge) return null
    const other = (this.bridges.get(channel.bridge) ?? []).find((member) => member !== channel.uniqueid)
    return other === undefined ? null : (this.channels.get(other) ?? null)
  }

  /** The party at the other end: the bridged channel, else who dialed it, else the first it dialed; through Local pairs. */
  peerOf(channel: Channel): Channel | null {
    let current = channel
    let peer: Channel | null = null
    for (let hop = 0; hop < MAX_LOCAL_HOPS; hop++) {
      peer = this.directPeer(current)
      if (!peer || !isLocal(peer.name)) return peer
      const otherHalf = this.byChannelName(otherLocalHalf(peer.name))
      if (!otherHalf) return peer
      current = otherHalf
    }
    return peer
  }

  /** The bridged peer only, through Local pairs: who this channel is talking to. */
  talkingTo(channel: Channel): Channel | null {
    let peer = this.bridgedPeer(channel)
    for (let hop = 0; peer && isLocal(peer.name) && hop < MAX_LOCAL_HOPS; hop++) {
      const otherHalf = this.byChannelName(otherLocalHalf(peer.name))
      if (!otherHalf) break
      peer = this.bridgedPeer(otherHalf)
    }
    return peer
  }

  isLocal(channel: Channel): boolean {
    return isLocal(channel.name)
  }

  private directPeer(channel: Channel): Channel | null {
    const bridged = this.bridgedPeer(channel)
    if (bridged) return bridged
    const dialer = channel.dialedBy === null ? undefined : this.channels.get(channel.dialedBy)
    if (dialer) return dialer
    const dialed = channel.dialed.map((uniqueid) => this.channels.get(uniqueid)).find((found) => found !== undefined)
    return dialed ?? null
  }

  private joinCall(channel: Channel, eventSeconds: number): void {
    const existing = this.calls.get(channel.linkedid)
    if (existing) {
      existing.members.add(channel.uniqueid)
      // The originating channel (Uniqueid = Linkedid) may show up after a leg it created.
      if (channel.uniqueid === channel.linkedid) this.makeSource(existing, channel)
      return
    }
    const call: CallRecord = {
      linkedid: channel.linkedid,
      start: secondsOfUniqueid(channel.linkedid) ?? eventSeconds,
      answer: null,
      srcUniqueid: '',
      srcName: '',
      srcExten: '',
      members: new Set([channel.uniqueid]),
    }
    this.makeSource(call, channel)
    this.calls.set(channel.linkedid, call)
  }

  private makeSource(call: CallRecord, channel: Channel): void {
    call.srcUniqueid = channel.uniqueid
    call.srcName = channel.name
    call.srcExten = channel.exten
  }

  private leaveCall(uniqueid: string, linkedid: string): void {
    const call = this.calls.get(linkedid)
    if (!call) return
    call.members.delete(uniqueid)
    if (call.members.size === 0) this.calls.delete(linkedid)
  }

  private noteAnswer(channel: Channel, eventSeconds: number): void {
    const call = this.calls.get(channel.linkedid)
    if (call && call.answer === null && channel.state === 'Up' && channel.uniqueid !== call.srcUniqueid) call.answer = eventSeconds
  }
}
