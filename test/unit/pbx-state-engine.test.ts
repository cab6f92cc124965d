/** The live PBX state engine against a scripted AMI link (README "Live PBX state"). */
import { beforeEach, describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { amiMessage } from '../../src/pbx/ami/ami-message'
import { StateEngine, type EngineChannel } from '../../src/pbx/state-engine'
import { FakeAmiLink, listReply, ManualTimers, type Fields } from '../fake-ami-link'
import { ManualClock } from '../helpers'
import * as v from 'valibot'
import { ActiveCallsSnapshot, UsersStateSnapshot, type SnapshotSink } from '../../src/presence/snapshot'

const NAMES: Record<string, string> = { '201': 'Alice', '202': 'Bob', '203': 'Carol' }
const nameOf = (ext: string): string | null => NAMES[ext] ?? null

/** What the scripted PBX answers to the load actions; tests change it to make drift. */
interface Pbx {
  endpoints: Fields[]
  contacts: Fields[]
  registrations: Fields[]
  channels: Fields[]
}

const contact = (endpoint: string, status = 'Reachable'): Fields => ({
  Event: 'ContactList',
  ObjectName: `${endpoint};@0a1b2c`,
  Uri: `sip:${endpoint}@10.0.0.5:5060`,
  Endpoint: endpoint,
  Status: status,
  UserAgent: 'Softphone 1.0',
  ViaAddr: '10.0.0.5',
  ViaPort: '5060',
  CallId: `call-${endpoint}`,
  ExpirationTime: '1795435260',
  RoundtripUsec: '1200',
})

const endpoint = (name: string, deviceState: string): Fields => ({ Event: 'EndpointList', ObjectName: name, DeviceState: deviceState, ActiveChannels: '' })

function initialPbx(): Pbx {
  return {
    endpoints: [endpoint('201', 'Not in use'), endpoint('201-WS', 'Unavailable'), endpoint('202', 'Not in use'), endpoint('203', 'Unavailable'), endpoint('SIP-PROVIDER-1', 'Not in use')],
    contacts: [contact('201'), contact('202'), contact('SIP-PROVIDER-1')],
    registrations: [{ Event: 'OutboundRegistrationDetail', ObjectName: 'REG-PROVIDER-1', Status: 'Registered', ServerUri: 'sip:sip.example.net', ClientUri: 'sip:74950000000@sip.example.net' }],
    channels: [],
  }
}

/** Channel snapshot fields as Asterisk sends them; `prefix` is `Dest` for DialBegin's callee. */
function channelFields(name: string, uniqueid: string, state: string, extra: Fields = {}, prefix = ''): Fields {
  const fields: Fields = {
    Channel: name,
    ChannelState: { Down: '0', Ring: '4', Ringing: '5', Up: '6' }[state] ?? '0',
    ChannelStateDesc: state,
    CallerIDNum: '<unknown>',
    CallerIDName: '<unknown>',
    ConnectedLineNum: '<unknown>',
    ConnectedLineName: '<unknown>',
    Context: 'all_peers',
    Exten: 's',
    Priority: '1',
    Uniqueid: uniqueid,
    Linkedid: uniqueid,
    ...extra,
  }
  return Object.fromEntries(Object.entries(fields).map(([key, value]) => [prefix + key, value]))
}

interface Setup {
  link: FakeAmiLink
  engine: StateEngine
  timers: ManualTimers
  pbx: Pbx
  /** Each snapshot's body without its envelope (schemaVersion, instanceId, sequence, generatedAt). */
  published: Array<{ channel: EngineChannel; body: unknown }>
  snapshots: Array<{ channel: EngineChannel; snapshot: any }>
  logs: string[]
  /** The last published body of a channel. */
  last(channel: EngineChannel): any
  /** Sends events, then lets the debounce window pass. */
  send(...events: Fields[]): void
}

/** Keeps every snapshot, and its body as a legacy client reads it: the envelope stripped, through JSON. */
function recordingSink(published: Setup['published'], snapshots: Setup['snapshots'] = []): SnapshotSink {
  return {
    full(kind, snapshot) {
      const { schemaVersion, instanceId, sequence, generatedAt, ...body } = JSON.parse(JSON.stringify(snapshot))
      snapshots.push({ channel: kind, snapshot: { schemaVersion, instanceId, sequence, generatedAt } })
      published.push({ channel: kind, body })
    },
  }
}

/** A channel entry of users-state with at least these fields. */
const entry = (fields: Record<string, unknown>) => expect.objectContaining(fields)
/** An active-calls leg: the version 1 fields, whatever the version 2 ones say. */
const callLeg = (channel: string, number: string) => expect.objectContaining({ channel, number })

async function setup(options: { maxChannels?: number; pbx?: Partial<Pbx> } = {}): Promise<Setup> {
  const link = new FakeAmiLink()
  const timers = new ManualTimers()
  const pbx = { ...initialPbx(), ...options.pbx }
  link.script.set('PJSIPShowEndpoints', () => listReply(pbx.endpoints))
  link.script.set('PJSIPShowContacts', () => listReply(pbx.contacts))
  link.script.set('PJSIPShowRegistrationsOutbound', () => listReply(pbx.registrations))
  link.script.set('CoreShowChannels', () => listReply(pbx.channels))
  const published: Setup['published'] = []
  const snapshots: Setup['snapshots'] = []
  const logs: string[] = []
  const engine = new StateEngine({
    link,
    nameOf,
    sink: recordingSink(published, snapshots),
    clock: new ManualClock(),
    timers,
    log: (line) => logs.push(line),
    maxChannels: options.maxChannels,
  })
  engine.start()
  link.setStatus('up')
  await engine.settled()
  timers.advance(100)
  return {
    link,
    engine,
    timers,
    pbx,
    published,
    snapshots,
    logs,
    last: (channel) => published.filter((entry) => entry.channel === channel).at(-1)?.body,
    send(...events) {
      for (const event of events) link.emit(event)
      timers.advance(100)
    },
  }
}

const A = 'mikopbx-1795435200.11'
const B = 'mikopbx-1795435201.12'
const CALLER = 'PJSIP/201-0000001a'
const CALLEE = 'PJSIP/202-0000001b'

/** 201 dials 202 as Asterisk reports it: the caller's channel, the dialed one, Dial, ringing. */
const ringing201to202: Fields[] = [
  { Event: 'Newchannel', ...channelFields(CALLER, A, 'Ring', { CallerIDNum: '201', CallerIDName: 'Alice', Exten: '202' }) },
  { Event: 'Newchannel', ...channelFields(CALLEE, B, 'Down', { Linkedid: A, ConnectedLineNum: '201', ConnectedLineName: 'Alice' }) },
  {
    Event: 'DialBegin',
    ...channelFields(CALLER, A, 'Ring', { CallerIDNum: '201', CallerIDName: 'Alice', Exten: '202' }),
    ...channelFields(CALLEE, B, 'Down', { Linkedid: A, CallerIDNum: '202', ConnectedLineNum: '201' }, 'Dest'),
    DialString: '202',
  },
  { Event: 'Newstate', ...channelFields(CALLEE, B, 'Ringing', { Linkedid: A, CallerIDNum: '202', ConnectedLineNum: '201' }), Timestamp: '1795435202.000100' },
]

const answered201to202: Fields[] = [
  { Event: 'Newstate', ...channelFields(CALLEE, B, 'Up', { Linkedid: A, CallerIDNum: '202', ConnectedLineNum: '201' }), Timestamp: '1795435205.500000' },
  {
    Event: 'DialEnd',
    ...channelFields(CALLER, A, 'Ring', { CallerIDNum: '201', Exten: '202' }),
    ...channelFields(CALLEE, B, 'Up', { Linkedid: A, CallerIDNum: '202' }, 'Dest'),
    DialStatus: 'ANSWER',
  },
  { Event: 'Newstate', ...channelFields(CALLER, A, 'Up', { CallerIDNum: '201', ConnectedLineNum: '202', Exten: '202' }) },
  { Event: 'BridgeEnter', BridgeUniqueid: 'bridge-1', BridgeType: 'basic', BridgeNumChannels: '1', ...channelFields(CALLER, A, 'Up', { CallerIDNum: '201', Exten: '202' }) },
  { Event: 'BridgeEnter', BridgeUniqueid: 'bridge-1', BridgeType: 'basic', BridgeNumChannels: '2', ...channelFields(CALLEE, B, 'Up', { Linkedid: A, CallerIDNum: '202' }) },
]

const hungUp201to202: Fields[] = [
  { Event: 'BridgeLeave', BridgeUniqueid: 'bridge-1', ...channelFields(CALLEE, B, 'Up', { Linkedid: A }) },
  { Event: 'Hangup', ...channelFields(CALLEE, B, 'Up', { Linkedid: A }), Cause: '16', 'Cause-txt': 'Normal Clearing' },
  { Event: 'BridgeLeave', BridgeUniqueid: 'bridge-1', ...channelFields(CALLER, A, 'Up') },
  { Event: 'Hangup', ...channelFields(CALLER, A, 'Up'), Cause: '16', 'Cause-txt': 'Normal Clearing' },
]

describe('initial load', () => {
  test('builds users-state from the endpoints and contacts, with names from the directory and no provider', async () => {
    const { last, link } = await setup()
    expect(link.actions.map((action) => action.name)).toEqual(['PJSIPShowEndpoints', 'PJSIPShowContacts', 'PJSIPShowRegistrationsOutbound', 'CoreShowChannels', 'BridgeList', 'QueueStatus'])
    expect(last('users-state')).toEqual({
      states: { '201': { name: 'Alice', state: 'Idle', channels: {} }, '202': { name: 'Bob', state: 'Idle', channels: {} }, '203': { name: 'Carol', state: 'Unavailable', channels: {} } },
    })
    expect(last('active-calls')).toEqual({ calls: [] })
  })

  test('fills the routes cache: raw DeviceState, contacts with ContactStatusDetail names, registrations', async () => {
    const { engine } = await setup()
    expect(engine.ami).toBe('up')
    expect(engine.stale).toBe(false)
    const alice = engine.endpoints().get('201')!
    expect(alice.deviceState).toBe('Not in use')
    expect(alice.contacts).toEqual([
      expect.objectContaining({ URI: 'sip:201@10.0.0.5:5060', EndpointName: '201', AOR: '201', Status: 'Reachable', ViaAddress: '10.0.0.5:5060', CallID: 'call-201', RegExpire: '1795435260' }),
    ])
    expect(engine.endpoints().get('SIP-PROVIDER-1')!.deviceState).toBe('Not in use')
    expect(engine.registrations().get('REG-PROVIDER-1')).toEqual({
      objectName: 'REG-PROVIDER-1',
      status: 'Registered',
      serverUri: 'sip:sip.example.net',
      clientUri: 'sip:74950000000@sip.example.net',
    })
  })

  test('falls back to PJSIPShowEndpoint per endpoint when PJSIPShowContacts answers Error', async () => {
    const link = new FakeAmiLink()
    link.script.set('PJSIPShowEndpoints', () => listReply([endpoint('201', 'Not in use')]))
    link.script.set('PJSIPShowEndpoint', (params) =>
      listReply([
        { Event: 'EndpointDetail', ObjectName: params.Endpoint! },
        { Event: 'ContactStatusDetail', AOR: '201', URI: 'sip:201@10.0.0.9:5060', Status: 'Reachable', EndpointName: '201', UserAgent: 'Desk' },
      ]),
    )
    const engine = new StateEngine({ link, nameOf, sink: { full: () => {} }, timers: new ManualTimers(), log: () => {} })
    engine.start()
    link.setStatus('up')
    await engine.settled()
    expect(link.actions.filter((action) => action.name === 'PJSIPShowEndpoint')).toEqual([{ name: 'PJSIPShowEndpoint', params: { Endpoint: '201' } }])
    expect(engine.endpoints().get('201')!.contacts).toEqual([{ AOR: '201', URI: 'sip:201@10.0.0.9:5060', Status: 'Reachable', EndpointName: '201', UserAgent: 'Desk' }])
  })
})

describe('a call from 201 to 202 without DeviceStateChange', () => {
  let s: Setup
  beforeEach(async () => {
    s = await setup()
  })

  test('ringing: 202 Ringing and 201 Up, each channel with its peer and direction; the call lists the dialed leg', () => {
    s.send(...ringing201to202)
    expect(s.last('users-state').states).toEqual({
      '201': {
        name: 'Alice',
        state: 'Up',
        channels: {
          [CALLER]: { channel: CALLEE, number: '202', direction: 'outgoing', linkedid: A, uniqueid: A, channelId: '0000001a', answerState: 'dialing', pickupAvailable: false },
        },
      },
      '202': {
        name: 'Bob',
        state: 'Ringing',
        channels: {
          [CALLEE]: { channel: CALLER, number: '201', direction: 'incoming', linkedid: A, uniqueid: B, channelId: '0000001b', answerState: 'ringing', pickupAvailable: true },
        },
      },
      '203': { name: 'Carol', state: 'Unavailable', channels: {} },
    })
    expect(s.last('active-calls')).toEqual({
      calls: [
        {
          start: 1795435200,
          answer: '',
          typeCall: 'inner',
          src_chan: CALLER,
          src_num: '201',
          dst_chan: '',
          dst_num: '',
          did: '',
          linkedid: A,
          calledChannels: [callLeg(CALLEE, '202')],
          bridgeChannels: [],
        },
      ],
    })
  })

  test('answered: both Up, the call has its answer time, destination and bridged legs', () => {
    s.send(...ringing201to202, ...answered201to202)
    const states = s.last('users-state').states
    expect(states['202']).toEqual({
      name: 'Bob',
      state: 'Up',
      channels: { [CALLEE]: { channel: CALLER, number: '201', direction: 'incoming', linkedid: A, uniqueid: B, channelId: '0000001b', answerState: 'bridged', pickupAvailable: false } },
    })
    expect(states['201'].state).toBe('Up')
    expect(s.last('active-calls').calls).toEqual([
      expect.objectContaining({
        answer: 1795435205,
        dst_chan: CALLEE,
        dst_num: '202',
        calledChannels: [],
        bridgeChannels: [
          callLeg(CALLER, '201'),
          callLeg(CALLEE, '202'),
        ],
      }),
    ])
  })

  test('hung up: both Idle without channels, no call, nothing left in memory', () => {
    s.send(...ringing201to202, ...answered201to202, ...hungUp201to202)
    expect(s.last('users-state').states['201']).toEqual({ name: 'Alice', state: 'Idle', channels: {} })
    expect(s.last('users-state').states['202']).toEqual({ name: 'Bob', state: 'Idle', channels: {} })
    expect(s.last('active-calls')).toEqual({ calls: [] })
    expect(s.engine.trackedChannels).toBe(0)
    expect(s.engine.counters.ignoredEvents).toBe(0)
  })
})

test('the README examples are what the engine publishes for this call, ringing and answered, with the envelope of schema version 2', async () => {
  const section = readFileSync('README.md', 'utf8').split('\n## Live PBX state\n')[1]!.split('\n## ')[0]!
  const [usersState, activeCalls] = [...section.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((match) => JSON.parse(match[1]!))
  const withoutEnvelope = ({ schemaVersion, instanceId, sequence, generatedAt, ...body }: Record<string, unknown>) => body
  const s = await setup()
  s.send(...ringing201to202)
  expect(s.last('users-state')).toEqual(withoutEnvelope(usersState))
  s.send(...answered201to202)
  expect(s.last('active-calls')).toEqual(withoutEnvelope(activeCalls))
  for (const example of [usersState, activeCalls]) expect(v.is(v.object({ schemaVersion: v.literal(2), instanceId: v.pipe(v.string(), v.uuid()), sequence: v.number(), generatedAt: v.number() }), example)).toBe(true)
  expect(v.is(UsersStateSnapshot, usersState)).toBe(true)
  expect(v.is(ActiveCallsSnapshot, activeCalls)).toBe(true)
})

test('a version 1 client, parsing with the fields it knew, reads the same values from a version 2 snapshot', async () => {
  // The shapes ModuleMonitorActiveCalls' clients parse; unknown keys are ignored as such clients do.
  const LegacyUsersState = v.object({
    states: v.record(v.string(), v.object({ name: v.string(), state: v.string(), channels: v.optional(v.record(v.string(), v.object({ channel: v.string(), number: v.string(), direction: v.picklist(['incoming', 'outgoing']) }))) })),
  })
  const LegacyCalls = v.object({
    calls: v.array(v.object({ linkedid: v.string(), src_chan: v.string(), dst_chan: v.string(), calledChannels: v.array(v.object({ channel: v.string(), number: v.string() })), bridgeChannels: v.array(v.object({ channel: v.string(), number: v.string() })) })),
  })
  const snapshots: Array<{ channel: EngineChannel; snapshot: unknown }> = []
  const link = new FakeAmiLink()
  link.script.set('PJSIPShowEndpoints', () => listReply(initialPbx().endpoints))
  link.script.set('PJSIPShowContacts', () => listReply(initialPbx().contacts))
  const timers = new ManualTimers()
  const engine = new StateEngine({ link, nameOf, sink: { full: (channel, snapshot) => snapshots.push({ channel, snapshot: JSON.parse(JSON.stringify(snapshot)) }) }, timers, log: () => {} })
  engine.start()
  link.setStatus('up')
  await engine.settled()
  for (const event of [...ringing201to202, ...answered201to202]) link.emit(event)
  timers.advance(200)
  const usersState = v.parse(LegacyUsersState, snapshots.findLast((entry) => entry.channel === 'users-state')!.snapshot)
  expect(usersState.states['202']!.channels).toEqual({ [CALLEE]: { channel: CALLER, number: '201', direction: 'incoming' } })
  expect(usersState.states['203']).toEqual({ name: 'Carol', state: 'Unavailable', channels: {} })
  const calls = v.parse(LegacyCalls, snapshots.findLast((entry) => entry.channel === 'active-calls')!.snapshot)
  expect(calls.calls[0]!.bridgeChannels).toEqual([
    { channel: CALLER, number: '201' },
    { channel: CALLEE, number: '202' },
  ])
})

describe('merging and who appears', () => {
  test('201-WS merges into 201: its channels and the better state (Ringing over Idle)', async () => {
    const s = await setup()
    s.send(
      { Event: 'Newchannel', ...channelFields('PJSIP/203-00000001', 'mikopbx-1795435300.1', 'Ring', { CallerIDNum: '203', Exten: '201' }) },
      { Event: 'Newchannel', ...channelFields('PJSIP/201-WS-00000002', 'mikopbx-1795435300.2', 'Ringing', { Linkedid: 'mikopbx-1795435300.1' }) },
    )
    const alice = s.last('users-state').states['201']
    expect(alice.state).toBe('Ringing')
    expect(Object.keys(alice.channels)).toEqual(['PJSIP/201-WS-00000002'])
    expect(s.last('users-state').states['201-WS']).toBeUndefined()
  })

  test('a call from a provider: the provider is never a user, the call is incoming with the DID and the external number', async () => {
    const s = await setup()
    const trunk = 'PJSIP/SIP-PROVIDER-1-00000005'
    const id = 'mikopbx-1795435400.5'
    s.send(
      { Event: 'Newchannel', ...channelFields(trunk, id, 'Ring', { CallerIDNum: '79991234567', Exten: '74950000000', Context: 'SIP-PROVIDER-1-incoming' }) },
      {
        Event: 'DialBegin',
        ...channelFields(trunk, id, 'Ring', { CallerIDNum: '79991234567', Exten: '74950000000' }),
        ...channelFields('PJSIP/201-00000006', 'mikopbx-1795435400.6', 'Down', { Linkedid: id }, 'Dest'),
      },
      { Event: 'Newstate', ...channelFields('PJSIP/201-00000006', 'mikopbx-1795435400.6', 'Ringing', { Linkedid: id, ConnectedLineNum: '79991234567' }) },
    )
    const states = s.last('users-state').states
    expect(Object.keys(states)).toEqual(['201', '202', '203'])
    expect(states['201'].channels).toEqual({ 'PJSIP/201-00000006': entry({ channel: trunk, number: '79991234567', direction: 'incoming', answerState: 'ringing', pickupAvailable: true }) })
    expect(s.last('active-calls').calls).toEqual([
      expect.objectContaining({ typeCall: 'incoming', src_chan: trunk, src_num: '79991234567', did: '74950000000', calledChannels: [callLeg('PJSIP/201-00000006', '201')] }),
    ])
  })

  test('a call to an external number is outgoing, its dialed leg carries the number dialed', async () => {
    const s = await setup()
    const id = 'mikopbx-1795435500.7'
    s.send(
      { Event: 'Newchannel', ...channelFields('PJSIP/201-00000007', id, 'Ring', { CallerIDNum: '201', Exten: '79991234567' }) },
      {
        Event: 'DialBegin',
        ...channelFields('PJSIP/201-00000007', id, 'Ring', { CallerIDNum: '201', Exten: '79991234567' }),
        ...channelFields('PJSIP/SIP-PROVIDER-1-00000008', 'mikopbx-1795435500.8', 'Down', { Linkedid: id }, 'Dest'),
      },
    )
    expect(s.last('active-calls').calls).toEqual([
      expect.objectContaining({ typeCall: 'outgoing', src_num: '201', did: '', calledChannels: [callLeg('PJSIP/SIP-PROVIDER-1-00000008', '79991234567')] }),
    ])
    expect(s.last('users-state').states['201'].channels['PJSIP/201-00000007']).toEqual(entry({ channel: 'PJSIP/SIP-PROVIDER-1-00000008', number: '79991234567', direction: 'outgoing' }))
  })
})

test('a call through a Local pair (queue, follow-me): peers and legs are the real channels', async () => {
  const s = await setup()
  const id = (n: number) => `mikopbx-1795435800.${n}`
  const [caller, half1, half2, callee] = ['PJSIP/203-00000031', 'Local/201@internal-00000001;1', 'Local/201@internal-00000001;2', 'PJSIP/201-00000034']
  const leg = (name: string, n: number, state: string, extra: Fields = {}, prefix = '') => channelFields(name, id(n), state, { Linkedid: id(31), ...extra }, prefix)
  s.send(
    { Event: 'Newchannel', ...leg(caller, 31, 'Ring', { CallerIDNum: '203', Exten: '2000' }) },
    { Event: 'DialBegin', ...leg(caller, 31, 'Ring', { CallerIDNum: '203', Exten: '2000' }), ...leg(half1, 32, 'Down', {}, 'Dest') },
    { Event: 'Newchannel', ...leg(half2, 33, 'Ring', { Exten: '201' }) },
    { Event: 'DialBegin', ...leg(half2, 33, 'Ring', { Exten: '201' }), ...leg(callee, 34, 'Down', {}, 'Dest') },
    { Event: 'Newstate', ...leg(callee, 34, 'Ringing') },
  )
  expect(s.last('users-state').states['201'].channels).toEqual({ [callee]: entry({ channel: caller, number: '203', direction: 'incoming' }) })
  expect(s.last('active-calls').calls).toEqual([expect.objectContaining({ typeCall: 'inner', calledChannels: [callLeg(callee, '201')], bridgeChannels: [] })])
  s.send(
    { Event: 'BridgeEnter', BridgeUniqueid: 'b-1', ...leg(caller, 31, 'Up') },
    { Event: 'BridgeEnter', BridgeUniqueid: 'b-1', ...leg(half1, 32, 'Up') },
    { Event: 'BridgeEnter', BridgeUniqueid: 'b-2', ...leg(half2, 33, 'Up') },
    { Event: 'BridgeEnter', BridgeUniqueid: 'b-2', ...leg(callee, 34, 'Up') },
  )
  expect(s.last('active-calls').calls).toEqual([
    expect.objectContaining({
      dst_chan: callee,
      dst_num: '201',
      calledChannels: [],
      bridgeChannels: [
        callLeg(caller, '203'),
        callLeg(callee, '201'),
      ],
    }),
  ])
  expect(s.last('users-state').states['203'].channels[caller]).toEqual(entry({ channel: callee, number: '201', direction: 'outgoing' }))
})

describe('device state sources', () => {
  test('ExtensionStatus alone drives the state: InUse, Hold, Idle', async () => {
    const s = await setup()
    s.send({ Event: 'ExtensionStatus', Exten: '202', Context: 'internal-hints', Hint: 'PJSIP/202', Status: '1', StatusText: 'InUse' })
    expect(s.last('users-state').states['202'].state).toBe('Up')
    s.send({ Event: 'ExtensionStatus', Exten: '202', Context: 'internal-hints', Hint: 'PJSIP/202', Status: '16', StatusText: 'Hold' })
    expect(s.last('users-state').states['202'].state).toBe('OnHold')
    s.send({ Event: 'ExtensionStatus', Exten: '202', Context: 'internal-hints', Hint: 'PJSIP/202', Status: '0', StatusText: 'Idle' })
    expect(s.last('users-state').states['202'].state).toBe('Idle')
  })

  test('contacts alone: the last contact unreachable makes the user Unavailable, reachable again Idle', async () => {
    const s = await setup()
    const status = (change: string): Fields => ({ Event: 'ContactStatus', URI: 'sip:202@10.0.0.5:5060', ContactStatus: change, AOR: '202', EndpointName: '202', RoundtripUsec: '0' })
    s.send(status('Unreachable'))
    expect(s.last('users-state').states['202'].state).toBe('Unavailable')
    expect(s.engine.endpoints().get('202')!.deviceState).toBe('Unavailable')
    s.send(status('Reachable'))
    expect(s.last('users-state').states['202'].state).toBe('Idle')
  })

  test('DeviceStateChange, when it comes, is taken as sent (machine names stored as texts)', async () => {
    const s = await setup()
    s.send({ Event: 'DeviceStateChange', Device: 'PJSIP/201-WS', State: 'RINGING' })
    expect(s.engine.endpoints().get('201-WS')!.deviceState).toBe('Ringing')
    expect(s.last('users-state').states['201'].state).toBe('Ringing')
    s.send({ Event: 'DeviceStateChange', Device: 'PJSIP/201-WS', State: 'ONHOLD' })
    expect(s.last('users-state').states['201'].state).toBe('OnHold')
  })
})

describe('publishing', () => {
  test('a change after a quiet spell goes out within 10 ms; the rest of a burst at most once per 100 ms', async () => {
    const s = await setup()
    s.timers.advance(1000)
    const before = s.published.length
    const channels = () => s.published.slice(before).map((entry) => entry.channel)
    for (let i = 0; i < 10; i++) {
      s.link.emit({ Event: 'Newchannel', ...channelFields(`PJSIP/202-0000010${i}`, `mikopbx-1795435600.${i}`, 'Ring', { Exten: '203' }) })
      s.timers.advance(9)
      // The first event's publication, 10 ms after it; nothing else until the window closes.
      if (i === 1) expect(channels()).toEqual(['users-state', 'active-calls'])
    }
    expect(channels()).toEqual(['users-state', 'active-calls'])
    s.timers.advance(100)
    expect(channels()).toEqual(['users-state', 'active-calls', 'users-state', 'active-calls'])
    expect(Object.keys(s.last('users-state').states['202'].channels)).toHaveLength(10)
    // A quiet window closes without publishing again.
    s.timers.advance(1000)
    expect(channels()).toHaveLength(4)
  })

  test('nothing is published when the snapshots did not change', async () => {
    const s = await setup()
    const before = s.published.length
    s.send({ Event: 'ContactStatus', URI: 'sip:201@10.0.0.5:5060', ContactStatus: 'Reachable', AOR: '201', EndpointName: '201' })
    s.send({ Event: 'ExtensionStatus', Exten: '201', Status: '0', StatusText: 'Idle' })
    expect(s.published.length).toBe(before)
  })

  test('while AMI is down the state is stale and nothing is published', async () => {
    const s = await setup()
    const before = s.published.length
    s.link.setStatus('down')
    expect(s.engine.ami).toBe('down')
    expect(s.engine.stale).toBe(true)
    s.send(...ringing201to202)
    s.timers.advance(120_000)
    expect(s.published.length).toBe(before)
    expect(s.engine.endpoints().get('201')!.deviceState).toBe('Not in use')
  })
})

describe('reconciliation', () => {
  test('after a reconnect the loads replace what the events missed, count the drift and log it', async () => {
    const s = await setup()
    s.link.setStatus('down')
    s.pbx.endpoints = s.pbx.endpoints.map((entry) => (entry.ObjectName === '202' ? endpoint('202', 'In use') : entry))
    s.pbx.channels = [{ Event: 'CoreShowChannel', ...channelFields(CALLEE, B, 'Up', { Linkedid: B, CallerIDNum: '202' }), BridgeId: '', Application: 'Playback', Duration: '00:00:42' }]
    s.link.setStatus('up')
    expect(s.engine.stale).toBe(false)
    await s.engine.settled()
    s.timers.advance(100)
    expect(s.logs).toEqual(['AMI_RECONCILED drift=2 endpoints=1 registrations=0 channels=1'])
    expect(s.engine.counters.driftCorrected).toBe(2)
    expect(s.last('users-state').states['202']).toEqual({ name: 'Bob', state: 'Up', channels: { [CALLEE]: entry({ channel: '', number: '', direction: 'outgoing' }) } })
    expect(s.last('active-calls').calls).toEqual([expect.objectContaining({ src_chan: CALLEE, linkedid: B, start: 1795435201 })])
  })

  test('every 20 s: a missed Hangup is corrected; a reconciliation that finds nothing logs nothing', async () => {
    const s = await setup()
    s.send(...ringing201to202)
    // The Hangup of 202's leg never came: Asterisk has only 201's channel left.
    s.pbx.endpoints = s.pbx.endpoints.map((entry) => (entry.ObjectName === '201' ? endpoint('201', 'In use') : entry))
    s.pbx.channels = [{ Event: 'CoreShowChannel', ...channelFields(CALLER, A, 'Ring', { CallerIDNum: '201', Exten: '202' }), BridgeId: '' }]
    s.timers.advance(20_000)
    await s.engine.settled()
    s.timers.advance(100)
    expect(s.logs).toEqual(['AMI_RECONCILED drift=2 endpoints=1 registrations=0 channels=1'])
    expect(s.last('users-state').states['202'].state).toBe('Idle')
    expect(s.last('users-state').states['202'].channels).toEqual({})
    expect(s.last('active-calls').calls[0].calledChannels).toEqual([])
    s.timers.advance(20_000)
    await s.engine.settled()
    expect(s.logs).toHaveLength(1)
    expect(s.engine.counters.reconciliations).toBe(3)
  })

  test('a load that fails is logged and leaves the state as it was', async () => {
    const s = await setup()
    s.link.script.set('CoreShowChannels', () => {
      throw Object.assign(new Error('link dropped'), { name: 'AmiDisconnected' })
    })
    await s.engine.reconcile()
    expect(s.logs).toEqual(['AMI_RECONCILE_FAILED AmiDisconnected: link dropped'])
    expect(s.engine.endpoints().size).toBe(5)
  })
})

test('a load cut by a reconnect is followed by a fresh one on the new connection', async () => {
  const s = await setup()
  let dropLoad: (error: Error) => void = () => {}
  s.link.script.set('CoreShowChannels', () => new Promise((_, reject) => (dropLoad = reject)))
  const cut = s.engine.reconcile()
  await Bun.sleep(0)
  s.link.setStatus('down')
  s.link.setStatus('up')
  s.link.script.set('CoreShowChannels', () => listReply(s.pbx.channels))
  s.pbx.endpoints = [endpoint('201', 'In use')]
  dropLoad(Object.assign(new Error('connection closed'), { name: 'AmiDisconnected' }))
  await s.engine.settled()
  expect(s.logs).toEqual(['AMI_RECONCILE_FAILED AmiDisconnected: connection closed', 'AMI_RECONCILED drift=5 endpoints=5 registrations=0 channels=0'])
  expect([...s.engine.endpoints().keys()]).toEqual(['201'])
  await cut
})

test('an event that arrives while a load is under way is not undone by the load, which listed the PBX before it', async () => {
  const s = await setup()
  let answerChannels: () => void = () => {}
  s.link.script.set('CoreShowChannels', () => new Promise((resolve) => (answerChannels = () => resolve(listReply(s.pbx.channels)))))
  const load = s.engine.reconcile()
  await Bun.sleep(0)
  // PJSIPShowEndpoints has answered (201 Not in use); then 201 goes on hold, then the channel list arrives.
  s.send({ Event: 'DeviceStateChange', Device: 'PJSIP/201', State: 'ONHOLD' })
  expect(s.last('users-state').states['201'].state).toBe('OnHold')
  answerChannels()
  await load
  s.timers.advance(100)
  expect(s.last('users-state').states['201'].state).toBe('OnHold')
  expect(s.engine.endpoints().get('201')!.deviceState).toBe('On Hold')
})

/** Holds CoreShowChannels' answer until the test releases it, with the list as it is then. */
function holdChannelList(s: Setup): () => void {
  let answer: () => void = () => {}
  s.link.script.set('CoreShowChannels', () => new Promise((resolve) => (answer = () => resolve(listReply(s.pbx.channels)))))
  return () => answer()
}

const listed = (name: string, uniqueid: string, fields: Fields): Fields => ({ Event: 'CoreShowChannel', ...channelFields(name, uniqueid, 'Up', fields), BridgeId: 'bridge-1' })

test('a call hung up while a load is under way stays gone, though the channel list predates the Hangup', async () => {
  const s = await setup()
  s.send(...ringing201to202, ...answered201to202)
  s.pbx.channels = [listed(CALLER, A, { CallerIDNum: '201', Exten: '202' }), listed(CALLEE, B, { Linkedid: A, CallerIDNum: '202' })]
  const answerChannels = holdChannelList(s)
  const load = s.engine.reconcile()
  await Bun.sleep(0)
  s.send(...hungUp201to202)
  answerChannels()
  await load
  s.timers.advance(100)
  expect(s.last('active-calls').calls).toEqual([])
  expect(s.engine.trackedChannels).toBe(0)
  expect(s.logs).toEqual([])
})

test('a call that starts while a load is under way stays, though the channel list predates it', async () => {
  const s = await setup()
  const answerChannels = holdChannelList(s)
  const load = s.engine.reconcile()
  await Bun.sleep(0)
  s.send(...ringing201to202)
  answerChannels()
  await load
  s.timers.advance(100)
  expect(s.last('active-calls').calls).toEqual([expect.objectContaining({ src_chan: CALLER, linkedid: A })])
  expect(s.engine.trackedChannels).toBe(2)
  expect(s.logs).toEqual([])
})

test('a refused list action fails the load instead of emptying the state', async () => {
  const s = await setup()
  s.link.script.set('PJSIPShowEndpoints', () => ({ response: amiMessage({ Response: 'Error', Message: 'Permission denied' }), events: [] }))
  await s.engine.reconcile()
  expect(s.logs).toEqual(['AMI_RECONCILE_FAILED AmiPermissionDenied: PJSIPShowEndpoints: permission denied'])
  expect(s.engine.endpoints().size).toBe(5)
})

describe('robustness', () => {
  test('events for unknown endpoints and channels are counted and change nothing', async () => {
    const s = await setup()
    const before = s.published.length
    const received = s.engine.counters.eventsReceived
    s.send(
      { Event: 'Hangup', ...channelFields('PJSIP/999-00000001', 'mikopbx-1.1', 'Up') },
      { Event: 'ContactStatus', URI: 'sip:999@10.0.0.1', ContactStatus: 'Reachable', EndpointName: '999', AOR: '999' },
      { Event: 'DeviceStateChange', Device: 'PJSIP/999', State: 'INUSE' },
      { Event: 'BridgeEnter', BridgeUniqueid: 'b', ...channelFields('PJSIP/999-00000001', 'mikopbx-1.1', 'Up') },
      { Event: 'Registry', ChannelType: 'PJSIP', Username: 'sip:x@y', Domain: 'sip:y', Status: 'Registered' },
      { Event: 'Newstate' },
    )
    expect(s.engine.counters.ignoredEvents).toBe(6)
    // Every event counts as received, handled or not (README "Metrics").
    expect(s.engine.counters.eventsReceived).toBe(received + 6)
    expect(s.published.length).toBe(before)
  })

  test('a directory failure while publishing is logged once and the publication retried', async () => {
    const link = new FakeAmiLink()
    link.script.set('PJSIPShowEndpoints', () => listReply([endpoint('201', 'Not in use')]))
    const timers = new ManualTimers()
    const logs: string[] = []
    const published: string[] = []
    let directoryDown = true
    const engine = new StateEngine({
      link,
      nameOf: (ext) => {
        if (directoryDown) throw Object.assign(new Error('database is locked'), { name: 'SQLiteError' })
        return nameOf(ext)
      },
      sink: { full: (_, snapshot) => published.push(JSON.stringify({ ...snapshot, schemaVersion: undefined, instanceId: undefined, sequence: undefined, generatedAt: undefined })) },
      timers,
      log: (line) => logs.push(line),
    })
    engine.start()
    link.setStatus('up')
    await engine.settled()
    timers.advance(3_100)
    expect(logs).toEqual(['AMI_PUBLISH_FAILED SQLiteError: database is locked'])
    directoryDown = false
    timers.advance(1_000)
    expect(published).toEqual(['{"states":{"201":{"name":"Alice","state":"Idle","channels":{}}}}', '{"calls":[]}'])
  })

  test('Registry updates the registration it names by client and server URI', async () => {
    const s = await setup()
    s.send({ Event: 'Registry', ChannelType: 'PJSIP', Username: 'sip:74950000000@sip.example.net', Domain: 'sip:sip.example.net', Status: 'Rejected' })
    expect(s.engine.registrations().get('REG-PROVIDER-1')!.status).toBe('Rejected')
  })

  test('tracked channels are capped, with one log line', async () => {
    const s = await setup({ maxChannels: 2 })
    for (let i = 0; i < 4; i++) s.link.emit({ Event: 'Newchannel', ...channelFields(`PJSIP/202-0000020${i}`, `mikopbx-1795435700.${i}`, 'Ring') })
    s.timers.advance(100)
    expect(Object.keys(s.last('users-state').states['202'].channels)).toHaveLength(2)
    expect(s.logs).toEqual(['AMI_CHANNEL_CAP channels=2: new channels are not tracked until some hang up'])
  })
})
