/** The AMI client against the simulator over real sockets; timers and jitter are manual, so no test waits for time. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { AmiClient, serializeAction, type AmiClientOptions, type AmiTimers } from '../../src/pbx/ami/ami-client'
import { AmiActionTimeout, AmiDisconnected, type AmiMessage, type AmiStatus } from '../../src/pbx/ami/ami-link'
import { AmiSimulator, SIM_SECRET, SIM_USERNAME } from '../ami-simulator'

class ManualTimers implements AmiTimers {
  private nextHandle = 1
  private readonly scheduled = new Map<number, { callback: () => void; ms: number }>()

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.nextHandle++
    this.scheduled.set(handle, { callback, ms })
    return handle
  }

  clearTimeout(handle: unknown): void {
    this.scheduled.delete(handle as number)
  }

  /** Pending reconnect delays: every timer but action deadlines and the ping interval. */
  retries(): number[] {
    return this.delays().filter((ms) => ms !== ACTION_MS && ms !== PING_MS)
  }

  delays(): number[] {
    return [...this.scheduled.values()].map(({ ms }) => ms)
  }

  /** Runs every timer scheduled with exactly `ms`; returns how many ran. */
  fire(ms: number): number {
    const due = [...this.scheduled].filter(([, timer]) => timer.ms === ms)
    for (const [handle, timer] of due) {
      this.scheduled.delete(handle)
      timer.callback()
    }
    return due.length
  }
}

/** Yields to the event loop until `condition` holds; socket I/O completes between turns. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let turn = 0; turn < 200_000; turn++) {
    if (condition()) return
    await new Promise((resolve) => setImmediate(resolve))
  }
  throw new Error(`never happened: ${what}`)
}

const PING_MS = 20_000
const ACTION_MS = 10_000
/** Every log line and error message of every test, checked for credentials at the end. */
const everyLine: string[] = []

let simulator: AmiSimulator
let timers: ManualTimers
let logs: string[]
let statuses: AmiStatus[]
let events: AmiMessage[]
let client: AmiClient

function makeClient(overrides: Partial<AmiClientOptions> = {}): AmiClient {
  const made = new AmiClient({
    host: '127.0.0.1',
    port: simulator.port,
    username: SIM_USERNAME,
    secret: SIM_SECRET,
    log: (line) => {
      logs.push(line)
      everyLine.push(line)
    },
    pingIntervalMs: PING_MS,
    actionTimeoutMs: ACTION_MS,
    random: () => 0,
    timers,
    ...overrides,
  })
  made.onStatus((status) => statuses.push(status))
  made.onEvent((event) => events.push(event))
  return made
}

async function connected(made = client): Promise<void> {
  made.start()
  await until(() => made.status === 'up', 'login')
}

/** Records a rejection's message for the credential check, and returns the error. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    everyLine.push((error as Error).message, String((error as Error).stack))
    return error as Error
  }
  throw new Error('expected a rejection')
}

beforeEach(async () => {
  simulator = await AmiSimulator.start()
  simulator.addEndpoint({
    name: '201',
    deviceState: 'Not in use',
    contacts: [{ uri: 'sip:201@10.0.0.21:5062;ob', status: 'Reachable', userAgent: 'Linphone/5.2', regExpire: 1795438800, viaAddress: '10.0.0.21:5062', callId: 'abc-201', roundtripUsec: 1234 }],
  })
  simulator.addEndpoint({ name: '202', deviceState: 'Unavailable' })
  simulator.registrations.push({ name: 'REG-SIP-TRUNK-1', status: 'Registered', serverUri: 'sip:sip.provider.example', clientUri: 'sip:7001@sip.provider.example', contactUser: '7001' })
  timers = new ManualTimers()
  logs = []
  statuses = []
  events = []
  client = makeClient()
})

afterEach(async () => {
  client.close()
  await simulator.stop()
})

describe('AMI client: login and actions', () => {
  test('logs in after the banner with Username and Secret, then is up; live events reach listeners', async () => {
    await connected()
    const login = simulator.actions[0]!
    expect(login.fields.map(([key]) => key)).toEqual(['Action', 'ActionID', 'Username', 'Secret'])
    expect(login.get('Secret')).toBe(SIM_SECRET)
    expect(statuses).toEqual(['up'])
    expect(logs).toEqual([`AMI connected to 127.0.0.1:${simulator.port}`])
    await until(() => events.length === 1, 'FullyBooted')
    expect(events[0]!.get('Event')).toBe('FullyBooted')
  })

  test('a list action resolves with its response and its events, without the Complete event', async () => {
    await connected()
    const reply = await client.action('PJSIPShowEndpoints')
    expect(reply.response.get('EventList')).toBe('start')
    expect(reply.events.map((event) => [event.get('Event'), event.get('ObjectName'), event.get('DeviceState')])).toEqual([
      ['EndpointList', '201', 'Not in use'],
      ['EndpointList', '202', 'Unavailable'],
    ])
    expect(reply.events.every((event) => event.get('ActionID') === simulator.actions.at(-1)!.get('ActionID'))).toBe(true)
  })

  test('PJSIPShowEndpoint, PJSIPShowContacts, PJSIPShowRegistrationsOutbound and CoreShowChannels', async () => {
    await connected()
    const detail = await client.action('PJSIPShowEndpoint', { Endpoint: '201' })
    expect(detail.events.map((event) => event.get('Event'))).toEqual(['EndpointDetail', 'AorDetail', 'AuthDetail', 'ContactStatusDetail'])
    expect(detail.events[3]!.get('URI')).toBe('sip:201@10.0.0.21:5062;ob')
    expect(detail.events[3]!.get('RoundtripUsec')).toBe('1234')
    const missing = await client.action('PJSIPShowEndpoint', { Endpoint: '999' })
    expect(missing.response.get('Response')).toBe('Error')
    const contacts = await client.action('PJSIPShowContacts')
    expect(contacts.events.map((event) => [event.get('Endpoint'), event.get('Uri'), event.get('Status')])).toEqual([['201', 'sip:201@10.0.0.21:5062;ob', 'Reachable']])
    const registrations = await client.action('PJSIPShowRegistrationsOutbound')
    expect(registrations.events.map((event) => [event.get('ObjectName'), event.get('Status')])).toEqual([['REG-SIP-TRUNK-1', 'Registered']])
    const channels = await client.action('CoreShowChannels')
    expect(channels.events).toEqual([])
    expect(channels.response.get('Message')).toBe('Channels will follow')
  })

  test('BridgeList, BridgeInfo and QueueStatus as Asterisk 18/20 answers them: key order, ActionID place, errors', async () => {
    simulator.addEndpoint({ name: '202', deviceState: 'Not in use' })
    simulator.queues.push({
      name: 'support',
      strategy: 'ringall',
      members: [{ name: '201', location: 'Local/201@internal/n', stateInterface: 'PJSIP/201', status: 1, paused: false }],
      entries: [{ channel: 'PJSIP/203-00000009', uniqueid: '1795435200.9', callerNum: '203', callerName: 'Carol', wait: 4 }],
    })
    await connected()
    const keys = (event: AmiMessage) => event.fields.map(([key]) => key)
    expect((await client.action('BridgeList')).events).toEqual([])
    const call = simulator.startCall('201', '202')
    call.answer()
    const bridges = await client.action('BridgeList')
    expect(bridges.response.get('Message')).toBe('Bridge listing will follow')
    expect(bridges.events.map(keys)).toEqual([
      ['Event', 'ActionID', 'BridgeUniqueid', 'BridgeType', 'BridgeTechnology', 'BridgeCreator', 'BridgeName', 'BridgeNumChannels', 'BridgeVideoSourceMode'],
    ])
    expect(bridges.events[0]!.get('BridgeNumChannels')).toBe('2')
    const info = await client.action('BridgeInfo', { BridgeUniqueid: call.call.bridge })
    expect(info.response.get('Message')).toBe('Bridge channel listing will follow')
    expect(info.events.map((event) => [event.get('Event'), event.get('Channel')])).toEqual([
      ['BridgeInfoChannel', call.call.caller.channel],
      ['BridgeInfoChannel', call.call.callee.channel],
    ])
    expect(keys(info.events[0]!).slice(0, 3)).toEqual(['Event', 'ActionID', 'Channel'])
    expect((await client.action('BridgeInfo', { BridgeUniqueid: 'nope' })).response.get('Message')).toBe('Specified BridgeUniqueid not found')
    expect((await client.action('BridgeInfo')).response.get('Message')).toBe('BridgeUniqueid must be provided')
    const queues = await client.action('QueueStatus')
    expect(queues.response.get('Message')).toBe('Queue status will follow')
    expect(queues.events.map((event) => [event.get('Event'), keys(event).at(-1)])).toEqual([
      ['QueueParams', 'ActionID'],
      ['QueueMember', 'ActionID'],
      ['QueueEntry', 'ActionID'],
    ])
    expect(queues.events[1]!.get('StateInterface')).toBe('PJSIP/201')
    expect(queues.events[2]!.get('Uniqueid')).toBe('1795435200.9')
  })

  test('BridgeInfoComplete carries the bridge snapshot after ListItems, byte for byte', async () => {
    simulator.addEndpoint({ name: '202', deviceState: 'Not in use' })
    const call = simulator.startCall('201', '202')
    call.answer()
    let received = ''
    const socket = await Bun.connect({
      hostname: '127.0.0.1',
      port: simulator.port,
      socket: { data: (_, chunk) => void (received += chunk.toString()) },
    })
    socket.write(`Action: Login\r\nActionID: l\r\nUsername: ${SIM_USERNAME}\r\nSecret: ${SIM_SECRET}\r\n\r\nAction: BridgeInfo\r\nActionID: b\r\nBridgeUniqueid: ${call.call.bridge}\r\n\r\n`)
    await until(() => received.includes('Event: BridgeInfoComplete'), 'BridgeInfoComplete')
    await until(() => received.endsWith('\r\n\r\n'), 'the end of the frame')
    const complete = received.slice(received.indexOf('Event: BridgeInfoComplete'))
    expect(complete).toBe(
      `Event: BridgeInfoComplete\r\nActionID: b\r\nEventList: Complete\r\nListItems: 2\r\nBridgeUniqueid: ${call.call.bridge}\r\nBridgeType: basic\r\n` +
        'BridgeTechnology: simple_bridge\r\nBridgeCreator: <unknown>\r\nBridgeName: <unknown>\r\nBridgeNumChannels: 2\r\nBridgeVideoSourceMode: none\r\n\r\n',
    )
    expect(received).toContain('Response: Success\r\nActionID: b\r\nEventList: start\r\nMessage: Bridge channel listing will follow\r\n\r\n')
    socket.end()
  })

  test('two concurrent actions, byte-by-byte and slow, with a call interleaved: each gets its own reply, the call goes to listeners', async () => {
    await connected()
    await until(() => events.length === 1, 'FullyBooted')
    simulator.faults = { splitBytes: 1, slow: true }
    const endpoints = client.action('PJSIPShowEndpoints')
    const registrations = client.action('PJSIPShowRegistrationsOutbound')
    simulator.playCall('201', '202', { '201': 'Alice', '202': 'Bob' })
    const [first, second] = await Promise.all([endpoints, registrations])
    expect(first.events.map((event) => event.get('Event'))).toEqual(['EndpointList', 'EndpointList'])
    expect(second.events.map((event) => event.get('Event'))).toEqual(['OutboundRegistrationDetail'])
    await until(() => events.some((event) => event.get('Event') === 'Hangup' && event.get('Channel')?.startsWith('PJSIP/201-')), 'the call')
    const names = events.slice(1).map((event) => event.get('Event'))
    expect(names.filter((name) => name === 'Newchannel' || name === 'BridgeEnter' || name === 'BridgeLeave' || name === 'Hangup')).toEqual([
      'Newchannel', 'Newchannel', 'BridgeEnter', 'BridgeEnter', 'BridgeLeave', 'BridgeLeave', 'Hangup', 'Hangup',
    ])
    const dialEnd = events.find((event) => event.get('Event') === 'DialEnd')!
    expect([dialEnd.get('DestChannel')?.startsWith('PJSIP/202-'), dialEnd.get('DialStatus'), dialEnd.get('Timestamp') !== undefined]).toEqual([true, 'ANSWER', true])
  })

  test('during a call the list actions agree with the events: ringing, answered, hung up', async () => {
    simulator.addEndpoint({ name: '202', deviceState: 'Not in use' })
    await connected()
    const snapshot = async () => ({
      devices: (await client.action('PJSIPShowEndpoints')).events.map((event) => `${event.get('ObjectName')}:${event.get('DeviceState')}`),
      channels: (await client.action('CoreShowChannels')).events.map((event) => `${event.get('Channel')}:${event.get('ChannelStateDesc')}:${event.get('BridgeId')}`),
    })
    const call = simulator.startCall('201', '202')
    const { caller, callee, bridge } = call.call
    expect(await snapshot()).toEqual({ devices: ['201:In use', '202:Ringing'], channels: [`${caller.channel}:Ring:`, `${callee.channel}:Ringing:`] })
    call.answer()
    expect(await snapshot()).toEqual({ devices: ['201:In use', '202:In use'], channels: [`${caller.channel}:Up:${bridge}`, `${callee.channel}:Up:${bridge}`] })
    call.hangup()
    expect(await snapshot()).toEqual({ devices: ['201:Not in use', '202:Not in use'], channels: [] })
    expect(events.filter((event) => event.get('Event') === 'Hangup').map((event) => [event.get('Cause'), event.get('Cause-txt')])).toEqual([['16', 'Normal Clearing'], ['16', 'Normal Clearing']])
  })

  test('an action while down rejects with AmiDisconnected; one without a complete reply times out', async () => {
    expect(await rejection(client.action('Ping'))).toBeInstanceOf(AmiDisconnected)
    await connected()
    simulator.faults = { ignorePing: true }
    const ping = client.action('Ping', {}, 1234)
    await until(() => simulator.actions.some((action) => action.get('Action') === 'Ping'), 'ping sent')
    expect(timers.fire(1234)).toBe(1)
    expect(await rejection(ping)).toBeInstanceOf(AmiActionTimeout)
    expect(client.status).toBe('up')
  })

  test('an action parameter with a line break is refused before anything is sent', async () => {
    expect(() => serializeAction('Originate', 'x-1', { Channel: 'PJSIP/201\r\nAction: Logoff' })).toThrow(TypeError)
    await connected()
    expect(await rejection(client.action('PJSIPShowEndpoint', { Endpoint: '201\r\nAction: Logoff' }))).toBeInstanceOf(TypeError)
    expect((await client.action('Ping')).response.get('Ping')).toBe('Pong')
    expect(simulator.actions.map((action) => action.get('Action'))).toEqual(['Login', 'Ping'])
    expect(serializeAction('PJSIPShowEndpoint', 'x-2', { Endpoint: '201' })).toBe('Action: PJSIPShowEndpoint\r\nActionID: x-2\r\nEndpoint: 201\r\n\r\n')
  })
})

describe('AMI client: keepalive, drops and reconnects', () => {
  test('pings every interval; an unanswered ping drops the link and reconnects', async () => {
    await connected()
    expect(timers.fire(PING_MS)).toBe(1)
    await until(() => simulator.actions.filter((action) => action.get('Action') === 'Ping').length === 1, 'first ping')
    await until(() => timers.delays().join() === String(PING_MS), 'pong received, next ping scheduled')
    simulator.faults = { ignorePing: true }
    expect(timers.fire(PING_MS)).toBe(1)
    await until(() => simulator.actions.filter((action) => action.get('Action') === 'Ping').length === 2, 'second ping')
    expect(timers.fire(ACTION_MS)).toBe(1) // the second ping's deadline
    await until(() => client.status === 'down', 'drop')
    expect(logs.at(-1)).toBe(`AMI connection to 127.0.0.1:${simulator.port} lost; reconnecting`)
    expect(logs).toContain(`AMI ${'127.0.0.1'}:${simulator.port} did not answer a ping; reconnecting`)
    simulator.faults = {}
    expect(timers.fire(250)).toBe(1)
    await until(() => client.status === 'up', 'back up')
    expect(statuses).toEqual(['up', 'down', 'up'])
  })

  test('a refused login keeps the status down, logs one line over many retries, and backs off', async () => {
    simulator.faults = { refuseLogin: true }
    client.start()
    const delays: number[] = []
    for (let attempt = 1; attempt <= 5; attempt++) {
      await until(() => timers.delays().length === 1 && timers.retries().length === 1 && simulator.accepted === attempt, `refusal ${attempt}`)
      delays.push(timers.retries()[0]!)
      timers.fire(delays.at(-1)!)
    }
    expect(delays).toEqual([250, 500, 1000, 2000, 4000])
    expect(client.status).toBe('down')
    expect(statuses).toEqual([])
    expect(logs).toEqual([`AMI login to 127.0.0.1:${simulator.port} refused (Authentication failed): check ami_username and the secret; retrying`])
  })

  test('after a restart of Asterisk, it reconnects with growing delays and logs in again', async () => {
    await connected()
    const pending = client.action('PJSIPShowEndpoints')
    await simulator.stop()
    expect(await rejection(pending)).toBeInstanceOf(AmiDisconnected)
    await until(() => client.status === 'down', 'down')
    const delays: number[] = []
    for (let attempt = 0; attempt < 4; attempt++) {
      await until(() => timers.delays().length === 1 && timers.retries().length === 1, `retry ${attempt} scheduled`)
      delays.push(timers.retries()[0]!)
      timers.fire(delays.at(-1)!)
    }
    expect(delays).toEqual([250, 500, 1000, 2000])
    await until(() => timers.delays().length === 1 && timers.retries().length === 1, 'next retry scheduled')
    expect(logs.filter((line) => line.includes('unreachable'))).toEqual([`AMI 127.0.0.1:${simulator.port} unreachable: ECONNREFUSED; retrying`])
    await simulator.restart()
    timers.fire(timers.retries()[0]!)
    await until(() => client.status === 'up', 'up after restart')
    expect(statuses).toEqual(['up', 'down', 'up'])
    // A later drop starts the backoff over.
    simulator.disconnectAll()
    await until(() => timers.delays().length === 1 && client.status === 'down', 'down again')
    expect(timers.retries()).toEqual([250])
  })

  test('delays double up to the ceiling and the jitter spreads them between half and all of it', () => {
    const spread = makeClient({ random: () => 0.999999, backoffInitialMs: 500, backoffMaxMs: 30_000 })
    const delays: number[] = []
    for (let failure = 0; failure < 10; failure++) {
      delays.push(spread.nextDelayMs())
      ;(spread as unknown as { failures: number }).failures += 1
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000])
  })

  test('a drop in the middle of a list rejects the pending action with AmiDisconnected', async () => {
    await connected()
    simulator.faults = { dropMidListAfter: 1 }
    const error = await rejection(client.action('PJSIPShowEndpoints'))
    expect(error).toBeInstanceOf(AmiDisconnected)
    expect(error.message).toBe(`AMI connection to 127.0.0.1:${simulator.port} dropped`)
    await until(() => client.status === 'down', 'down')
    simulator.faults = {}
    timers.fire(250)
    await until(() => client.status === 'up', 'up again')
    expect((await client.action('PJSIPShowEndpoints')).events).toHaveLength(2)
  })

  test('a peer that never greets is dropped at the login deadline with one line, and retried', async () => {
    const silent = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const mute = makeClient({ port: silent.port })
    try {
      mute.start()
      for (let attempt = 0; attempt < 3; attempt++) {
        await until(() => timers.delays().join() === String(ACTION_MS), `connected ${attempt}`)
        timers.fire(ACTION_MS)
        await until(() => timers.retries().length === 1, `retry ${attempt}`)
        timers.fire(timers.retries()[0]!)
      }
      expect(mute.status).toBe('down')
      expect(logs).toEqual([`AMI 127.0.0.1:${silent.port} did not greet and accept a login within ${ACTION_MS} ms; reconnecting`])
    } finally {
      mute.close()
      silent.stop(true)
    }
  })

  test('garbage lines are skipped and the link stays up', async () => {
    await connected()
    simulator.garbage()
    expect((await client.action('PJSIPShowContacts')).events).toHaveLength(1)
    expect(client.status).toBe('up')
  })

  test('a 5 MB frame without an end drops the link with one log line, then it reconnects', async () => {
    await connected()
    simulator.oversizedFrame(5 * 1024 * 1024)
    await until(() => client.status === 'down', 'overflow drop')
    const overflowLines = logs.filter((line) => line.includes('without an end'))
    expect(overflowLines).toEqual([`AMI 127.0.0.1:${simulator.port} sent a frame over 1048576 characters without an end; reconnecting`])
    timers.fire(250)
    await until(() => client.status === 'up', 'up again')
    expect(logs).toEqual([
      `AMI connected to 127.0.0.1:${simulator.port}`,
      overflowLines[0]!,
      `AMI connection to 127.0.0.1:${simulator.port} lost; reconnecting`,
      `AMI connected to 127.0.0.1:${simulator.port}`,
    ])
  })

  test('a burst of 50 000 events is delivered in order without losing the link', async () => {
    await connected()
    await until(() => events.length === 1, 'FullyBooted')
    const before = process.memoryUsage().rss
    simulator.flood(50_000)
    await until(() => events.length === 50_001, 'the flood')
    expect(events.slice(1).every((event, index) => event.get('Value') === String(index))).toBe(true)
    expect((await client.action('PJSIPShowEndpoints')).events).toHaveLength(2)
    expect(client.status).toBe('up')
    // Held: the 50 000 parsed messages the test keeps; the parser itself buffers at most one frame.
    expect(process.memoryUsage().rss - before).toBeLessThan(512 * 1024 * 1024)
  })

  test('close logs off and stops reconnecting', async () => {
    await connected()
    client.close()
    await until(() => simulator.actions.some((action) => action.get('Action') === 'Logoff'), 'logoff')
    expect(client.status).toBe('down')
    expect(timers.delays()).toEqual([])
  })
})

// Runs last: bun runs a file's tests in order.
test('no log line or error message of the tests above holds the secret or the username', () => {
  expect(everyLine.length).toBeGreaterThan(20)
  expect(everyLine.filter((line) => line.includes(SIM_SECRET) || line.includes(SIM_USERNAME))).toEqual([])
})
