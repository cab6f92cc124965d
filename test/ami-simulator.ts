/**
 * A TCP server speaking AMI as Asterisk 18/20 does, for tests: the banner, Login, Ping, Logoff, the
 * PJSIP, channel, bridge (BridgeList, BridgeInfo) and QueueStatus list actions answered from scriptable state, broadcast events with `Privilege`
 * and `Timestamp` (timestampevents=yes, as MikoPBX sets), and faults: split or slow frames,
 * disconnects (also in the middle of a list), refused logins, garbage, oversized frames, floods
 * and restarts. Message shapes are in ami-transcripts.ts with the documentation page of each.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { AmiParser } from '../src/pbx/ami/ami-parser'
import type { FieldsMessage } from '../src/pbx/ami/ami-message'
import * as wire from './ami-transcripts'
import type { Fields, SimChannel, SimContact, SimEndpoint, SimQueue, SimRegistration } from './ami-transcripts'

export type { SimChannel, SimContact, SimEndpoint, SimQueue, SimQueueEntry, SimQueueMember, SimRegistration } from './ami-transcripts'

export const SIM_USERNAME = 'softphone-backend'
export const SIM_SECRET = 'sim-secret-7f3a9c1e'
const BANNER = 'Asterisk Call Manager/5.0.2\r\n'

export interface SimFaults {
  /** Sizes of the pieces every write is cut into (1 = byte by byte); undefined writes whole frames. */
  splitBytes?: number
  /** Wait a macrotask between pieces, so the reader sees them in separate reads. */
  slow?: boolean
  refuseLogin?: boolean
  /** Pings get no answer. */
  ignorePing?: boolean
  /** A list action's connection is dropped after this many list events. */
  dropMidListAfter?: number
}

interface Connection {
  socket: Socket
  loggedIn: boolean
  /** Writes in order, even when split and slow. */
  queue: Promise<void>
}

export class AmiSimulator {
  readonly endpoints = new Map<string, SimEndpoint>()
  readonly registrations: SimRegistration[] = []
  readonly channels: SimChannel[] = []
  /** What QueueStatus lists, in order. */
  readonly queues: SimQueue[] = []
  faults: SimFaults = {}
  /** Every action received, in order, over all connections. */
  readonly actions: FieldsMessage[] = []
  /** How many connections were accepted so far. */
  accepted = 0
  private readonly connections = new Set<Connection>()
  private server: Server | null = null
  private clockMicros = 1_795_435_200_000_000
  private uniqueCounter = 0

  private constructor(public port: number) {}

  static async start(): Promise<AmiSimulator> {
    const simulator = new AmiSimulator(0)
    await simulator.listen()
    return simulator
  }

  private listen(): Promise<void> {
    const server = createServer((socket) => this.accept(socket))
    this.server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => {
        this.port = (server.address() as { port: number }).port
        resolve()
      })
    })
  }

  /** Closes every connection and the listener, then listens again on the same port: an Asterisk restart. */
  async restart(): Promise<void> {
    await this.stop()
    await this.listen()
  }

  async stop(): Promise<void> {
    this.disconnectAll()
    const server = this.server
    this.server = null
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  disconnectAll(): void {
    for (const connection of this.connections) connection.socket.destroy()
    this.connections.clear()
  }

  get loggedInCount(): number {
    return [...this.connections].filter((connection) => connection.loggedIn).length
  }

  addEndpoint(endpoint: Partial<SimEndpoint> & { name: string }): void {
    this.endpoints.set(endpoint.name, { deviceState: 'Not in use', contacts: [], ...endpoint })
  }

  /** A broadcast event to every logged-in connection, with Privilege and Timestamp as manager.conf timestampevents=yes. */
  event(name: string, privilege: string, fields: Fields): void {
    const message: Fields = [['Event', name], ['Privilege', privilege], ['Timestamp', this.timestamp()], ...fields]
    for (const connection of this.connections) if (connection.loggedIn) this.write(connection, wire.frame(message))
  }

  /** Raw text to every connection, logged in or not. */
  raw(text: string | Uint8Array): void {
    for (const connection of this.connections) this.write(connection, text)
  }

  /** Lines no Asterisk would send. */
  garbage(): void {
    this.raw('\x00\x01garbage without colon\r\n: value without key\r\n\r\n\r\n')
  }

  /** `bytes` of one never-ending value: a broken peer. */
  oversizedFrame(bytes: number): void {
    this.raw(`Event: Broken\r\nData: ${'x'.repeat(bytes)}`)
  }

  /** `count` small events written as one burst. */
  flood(count: number): void {
    const frames: string[] = []
    for (let index = 0; index < count; index++) {
      frames.push(wire.frame([['Event', 'VarSet'], ['Privilege', 'dialplan,all'], ['Timestamp', this.timestamp()], ['Variable', 'N'], ['Value', String(index)]]))
    }
    this.raw(frames.join(''))
  }

  /**
   * A call from `from` to `to`, answered and hung up, as Asterisk 18/20 reports it with PJSIP
   * channels (ami-transcripts.ts callPhases).
   */
  playCall(from: string, to: string, names: Record<string, string> = {}): void {
    const call = this.startCall(from, to, names)
    call.answer()
    call.hangup()
  }

  /**
   * The ringing phase of a call; answer() and hangup() play the rest. Each phase also moves the
   * endpoints' DeviceState and the channel list, so list actions agree with the events sent.
   */
  startCall(from: string, to: string, names: Record<string, string> = {}): { call: wire.Call; answer(): void; hangup(): void } {
    const base = this.uniqueCounter
    this.uniqueCounter += 2
    const call: wire.Call = {
      caller: { channel: `PJSIP/${from}-${hex8(base)}`, number: from, name: names[from] ?? from, uniqueid: `1795435200.${base}` },
      callee: { channel: `PJSIP/${to}-${hex8(base + 1)}`, number: to, name: names[to] ?? to, uniqueid: `1795435200.${base + 1}` },
      bridge: `a1b2c3d4-0000-4000-8000-${String(base).padStart(12, '0')}`,
    }
    const phases = wire.callPhases(call)
    const play = (events: wire.CallPhases['ring']) => {
      for (const [name, privilege, fields] of events) this.event(name, privilege, fields)
    }
    play(phases.ring)
    this.setCallState(call, { caller: 'In use', callee: 'Ringing' }, { caller: 'Ring', callee: 'Ringing' }, '')
    return {
      call,
      answer: () => {
        play(phases.answer)
        this.setCallState(call, { caller: 'In use', callee: 'In use' }, { caller: 'Up', callee: 'Up' }, call.bridge)
      },
      hangup: () => {
        play(phases.hangup)
        this.setCallState(call, { caller: 'Not in use', callee: 'Not in use' }, null, '')
      },
    }
  }

  private setCallState(call: wire.Call, devices: { caller: string; callee: string }, channels: { caller: SimChannel['state']; callee: SimChannel['state'] } | null, bridgeId: string): void {
    const { caller, callee } = call
    const endpoint = (number: string) => this.endpoints.get(number)
    const callerEndpoint = endpoint(caller.number)
    const calleeEndpoint = endpoint(callee.number)
    if (callerEndpoint) callerEndpoint.deviceState = devices.caller
    if (calleeEndpoint) calleeEndpoint.deviceState = devices.callee
    const others = this.channels.filter((channel) => channel.channel !== caller.channel && channel.channel !== callee.channel)
    this.channels.length = 0
    this.channels.push(...others)
    if (!channels) return
    const entry = (party: wire.CallParty, other: wire.CallParty, state: SimChannel['state'], exten: string): SimChannel => ({
      channel: party.channel,
      state,
      callerNum: party.number,
      callerName: party.name,
      connectedNum: other.number,
      connectedName: other.name,
      exten,
      uniqueid: party.uniqueid,
      linkedid: caller.uniqueid,
      bridgeId,
      application: party === caller ? 'Dial' : 'AppDial',
      applicationData: party === caller ? `PJSIP/${callee.number},,TtekKHhU` : '(Outgoing Line)',
      duration: '00:00:01',
    })
    this.channels.push(entry(caller, callee, channels.caller, callee.number), entry(callee, caller, channels.callee, 's'))
  }

  private timestamp(): string {
    this.clockMicros += 1_234
    return `${Math.floor(this.clockMicros / 1e6)}.${String(this.clockMicros % 1e6).padStart(6, '0')}`
  }

  private accept(socket: Socket): void {
    this.accepted += 1
    const connection: Connection = { socket, loggedIn: false, queue: Promise.resolve() }
    this.connections.add(connection)
    socket.setNoDelay(true)
    const parser = new AmiParser({
      onBanner: () => {},
      onMessage: (message) => this.handle(connection, message),
      onOverflow: () => socket.destroy(),
    })
    socket.on('data', (chunk: Buffer) => parser.push(chunk))
    socket.on('error', () => {})
    socket.on('close', () => this.connections.delete(connection))
    this.write(connection, BANNER)
  }

  private write(connection: Connection, text: string | Uint8Array): void {
    const bytes = typeof text === 'string' ? Buffer.from(text) : Buffer.from(text)
    const { splitBytes, slow } = this.faults
    connection.queue = connection.queue.then(async () => {
      if (connection.socket.destroyed) return
      if (!splitBytes) return void connection.socket.write(bytes)
      for (let at = 0; at < bytes.length && !connection.socket.destroyed; at += splitBytes) {
        connection.socket.write(bytes.subarray(at, at + splitBytes))
        if (slow) await new Promise((resolve) => setImmediate(resolve))
      }
    })
  }

  private reply(connection: Connection, fields: Fields): void {
    this.write(connection, wire.frame(fields))
  }

  private handle(connection: Connection, action: FieldsMessage): void {
    this.actions.push(action)
    const name = (action.get('Action') ?? '').toLowerCase()
    const actionId = action.get('ActionID')
    const id: Fields = actionId === undefined ? [] : [['ActionID', actionId]]
    if (name === 'login') return this.login(connection, action, id)
    if (!connection.loggedIn) return this.reply(connection, wire.error(id, 'Permission denied'))
    switch (name) {
      case 'ping':
        if (!this.faults.ignorePing) this.reply(connection, wire.pong(id, this.timestamp()))
        return
      case 'logoff':
        this.reply(connection, wire.goodbye(id))
        connection.queue = connection.queue.then(() => void connection.socket.end())
        return
      case 'pjsipshowendpoints':
        return this.list(connection, id, wire.endpointList(id, [...this.endpoints.values()]))
      case 'pjsipshowendpoint':
        return this.showEndpoint(connection, id, action.get('Endpoint') ?? '')
      case 'pjsipshowcontacts':
        return this.list(connection, id, wire.contactList(id, [...this.endpoints.values()]))
      case 'pjsipshowregistrationsoutbound':
        return this.list(connection, id, wire.registrationList(id, this.registrations))
      case 'coreshowchannels':
        return this.list(connection, id, wire.channelList(id, this.channels))
      case 'bridgelist':
        return this.list(connection, id, wire.bridgeList(id, this.channels))
      case 'bridgeinfo':
        return this.bridgeInfo(connection, id, action.get('BridgeUniqueid') ?? '')
      case 'queuestatus':
        return this.list(connection, id, wire.queueStatus(id, this.queues))
      default:
        return this.reply(connection, wire.error(id, 'Invalid/unknown command'))
    }
  }

  private login(connection: Connection, action: FieldsMessage, id: Fields): void {
    const accepted = !this.faults.refuseLogin && action.get('Username') === SIM_USERNAME && action.get('Secret') === SIM_SECRET
    if (!accepted) {
      this.reply(connection, wire.error(id, 'Authentication failed'))
      // Asterisk closes the session after a failed login.
      connection.queue = connection.queue.then(() => void connection.socket.end())
      return
    }
    connection.loggedIn = true
    this.reply(connection, [['Response', 'Success'], ...id, ['Message', 'Authentication accepted']])
    this.write(connection, wire.frame([['Event', 'FullyBooted'], ['Privilege', 'system,all'], ['Timestamp', this.timestamp()], ['Status', 'Fully Booted'], ['Uptime', '3600'], ['LastReload', '3600']]))
  }

  private showEndpoint(connection: Connection, id: Fields, name: string): void {
    const endpoint = this.endpoints.get(name)
    if (!endpoint) return this.reply(connection, wire.error(id, `Unable to retrieve endpoint ${name}`))
    this.list(connection, id, wire.endpointDetail(id, endpoint))
  }

  /** As manager_bridges.c answers: an error for a missing or unknown bridge, else its channels. */
  private bridgeInfo(connection: Connection, id: Fields, bridge: string): void {
    if (!bridge) return this.reply(connection, wire.error(id, 'BridgeUniqueid must be provided'))
    const info = wire.bridgeInfo(id, this.channels, bridge)
    if (!info) return this.reply(connection, wire.error(id, 'Specified BridgeUniqueid not found'))
    this.list(connection, id, info)
  }

  /** The Success response with `EventList: start`, the events, the Complete event; or a drop midway. */
  private list(connection: Connection, id: Fields, list: wire.ListReply): void {
    this.reply(connection, [['Response', 'Success'], ...id, ['EventList', 'start'], ['Message', list.message]])
    const dropAfter = this.faults.dropMidListAfter
    for (const [index, event] of list.events.entries()) {
      if (dropAfter !== undefined && index === dropAfter) {
        connection.queue = connection.queue.then(() => void connection.socket.destroy())
        return
      }
      this.reply(connection, event)
    }
    this.reply(connection, [['Event', list.complete], ...id, ['EventList', 'Complete'], ['ListItems', String(list.events.length)], ...(list.completeExtra ?? [])])
  }
}

const hex8 = (value: number): string => value.toString(16).padStart(8, '0')
