/**
 * The call graph behind users-state and active-calls (README "Presence snapshots, schema version 2"):
 * parallel forks, Local pairs, linkedid aliases on pickup and transfer, queues, the pickup
 * predicate, the aggregate state, and the engine's bad input.
 */
import { describe, expect, test } from 'bun:test'
import { StateEngine, type EngineChannel } from '../../src/pbx/state-engine'
import { CallGraph } from '../../src/pbx/call-graph'
import { extensionOfInterface } from '../../src/pbx/queues'
import * as v from 'valibot'
import { ActiveCallsSnapshot, UsersStateSnapshot, type SnapshotSink } from '../../src/presence/snapshot'
import { FakeAmiLink, listReply, ManualTimers, type Fields } from '../fake-ami-link'
import { ManualClock } from '../helpers'

const NAMES: Record<string, string> = { '201': 'Alice', '202': 'Bob', '203': 'Carol', '204': 'Dave' }
const MOBILES: Record<string, string> = { '9161234567': '204' }

const contact = (endpoint: string): Fields => ({ Event: 'ContactList', ObjectName: `${endpoint};@1`, Uri: `sip:${endpoint}@10.0.0.5`, Endpoint: endpoint, Status: 'Reachable' })
const endpoint = (name: string): Fields => ({ Event: 'EndpointList', ObjectName: name, DeviceState: 'Not in use' })

interface Published {
  channel: EngineChannel
  snapshot: any
}

interface World {
  link: FakeAmiLink
  engine: StateEngine
  timers: ManualTimers
  logs: string[]
  published: Published[]
  channels: Fields[]
  queueEvents: Fields[]
  last(channel: EngineChannel): any
  send(...events: Fields[]): void
}

async function world(options: { maxChannels?: number; channels?: Fields[]; queueEvents?: Fields[]; loadGate?: Promise<void> } = {}): Promise<World> {
  const link = new FakeAmiLink()
  const timers = new ManualTimers()
  const channels = options.channels ?? []
  const queueEvents = options.queueEvents ?? []
  link.script.set('PJSIPShowEndpoints', () => listReply(['201', '201-WS', '202', '203', '204', 'SIP-PROVIDER-1'].map(endpoint)))
  link.script.set('PJSIPShowContacts', () => listReply(['201', '202', '203', '204'].map(contact)))
  link.script.set('CoreShowChannels', () => listReply(channels))
  link.script.set('QueueStatus', () => (loadGate ? loadGate.then(() => listReply(queueEvents)) : listReply(queueEvents)))
  const published: Published[] = []
  const logs: string[] = []
  const loadGate = options.loadGate
  // Every snapshot must pass the schema personalisation and ingest check against; a miss shows in the logs.
  const sink: SnapshotSink = {
    full(channel, snapshot) {
      const schema = channel === 'users-state' ? UsersStateSnapshot : ActiveCallsSnapshot
      const issues = v.safeParse(schema, snapshot).issues
      if (issues) logs.push(`SCHEMA_INVALID ${channel}: ${v.summarize(issues)}`)
      published.push({ channel, snapshot: JSON.parse(JSON.stringify(snapshot)) })
    },
  }
  const engine = new StateEngine({
    link,
    nameOf: (ext) => NAMES[ext] ?? null,
    userOfMobile: (number) => MOBILES[number.slice(-10)] ?? null,
    sink,
    clock: new ManualClock(),
    timers,
    log: (line) => logs.push(line),
    maxChannels: options.maxChannels,
  })
  engine.start()
  link.setStatus('up')
  if (!loadGate) {
    await engine.settled()
    timers.advance(100)
  }
  return {
    link,
    engine,
    timers,
    logs,
    published,
    channels,
    queueEvents,
    last: (channel) => published.filter((entry) => entry.channel === channel).at(-1)?.snapshot,
    send(...events) {
      for (const event of events) link.emit(event)
      timers.advance(200)
    },
  }
}

const id = (n: number) => `mikopbx-1795435200.${n}`
const hex = (n: number) => n.toString(16).padStart(8, '0')
const pjsip = (endpointName: string, n: number) => `PJSIP/${endpointName}-${hex(n)}`

/** A channel's snapshot fields; `prefix` is `Dest` for DialBegin/DialEnd's destination. */
function ch(name: string, n: number, state: string, linked: number, extra: Fields = {}, prefix = ''): Fields {
  const fields: Fields = {
    Channel: name,
    ChannelStateDesc: state,
    CallerIDNum: '<unknown>',
    ConnectedLineNum: '<unknown>',
    Exten: 's',
    Uniqueid: id(n),
    Linkedid: id(linked),
    ...extra,
  }
  return Object.fromEntries(Object.entries(fields).map(([key, value]) => [prefix + key, value]))
}

const newchannel = (name: string, n: number, state: string, linked: number, extra: Fields = {}): Fields => ({ Event: 'Newchannel', ...ch(name, n, state, linked, extra) })
const newstate = (name: string, n: number, state: string, linked: number, extra: Fields = {}): Fields => ({ Event: 'Newstate', ...ch(name, n, state, linked, extra) })
const dialBegin = (from: [string, number], to: [string, number], linked: number, exten = 's'): Fields => ({
  Event: 'DialBegin',
  ...ch(from[0], from[1], 'Ring', linked, { Exten: exten }),
  ...ch(to[0], to[1], 'Down', linked, {}, 'Dest'),
})
const dialEnd = (from: [string, number], to: [string, number], linked: number, status: string): Fields => ({
  Event: 'DialEnd',
  ...ch(from[0], from[1], 'Ring', linked),
  ...ch(to[0], to[1], status === 'ANSWER' ? 'Up' : 'Ringing', linked, {}, 'Dest'),
  DialStatus: status,
})
const bridgeEnter = (bridge: string, name: string, n: number, linked: number): Fields => ({ Event: 'BridgeEnter', BridgeUniqueid: bridge, ...ch(name, n, 'Up', linked) })
const hangup = (name: string, n: number, linked: number): Fields => ({ Event: 'Hangup', ...ch(name, n, 'Up', linked), Cause: '16' })

/** 203 calls a ring group: 201 and 202 ring in parallel, each through its own Dial fork. */
function ringGroup(): Fields[] {
  return [
    newchannel(pjsip('203', 1), 1, 'Ring', 1, { CallerIDNum: '203', Exten: '2000' }),
    newchannel(pjsip('201', 2), 2, 'Down', 1),
    dialBegin([pjsip('203', 1), 1], [pjsip('201', 2), 2], 1, '2000'),
    newchannel(pjsip('202', 3), 3, 'Down', 1),
    dialBegin([pjsip('203', 1), 1], [pjsip('202', 3), 3], 1, '2000'),
    newstate(pjsip('201', 2), 2, 'Ringing', 1),
    newstate(pjsip('202', 3), 3, 'Ringing', 1),
  ]
}

describe('parallel forks', () => {
  test('both ring and may be picked up; the caller has no single peer while two forks ring', async () => {
    const w = await world()
    w.send(...ringGroup())
    const states = w.last('users-state').states
    expect(states['201'].state).toBe('Ringing')
    expect(states['202'].state).toBe('Ringing')
    expect(states['201'].channels[pjsip('201', 2)]).toMatchObject({ direction: 'incoming', answerState: 'ringing', pickupAvailable: true, channel: pjsip('203', 1), number: '203' })
    expect(states['203'].channels[pjsip('203', 1)]).toMatchObject({ direction: 'outgoing', answerState: 'dialing', channel: '', pickupAvailable: false })
    expect(states['203'].state).toBe('Up')
  })

  test('when one fork answers the other is cancelled at once and its user stops Ringing, before any Hangup', async () => {
    const w = await world()
    w.send(...ringGroup(), newstate(pjsip('202', 3), 3, 'Up', 1))
    let states = w.last('users-state').states
    expect(states['201'].channels[pjsip('201', 2)]).toMatchObject({ answerState: 'cancelled', pickupAvailable: false })
    expect(states['201'].state).toBe('Idle')
    expect(states['202'].channels[pjsip('202', 3)].answerState).toBe('answered')
    expect(states['202'].state).toBe('Up')
    w.send(dialEnd([pjsip('203', 1), 1], [pjsip('202', 3), 3], 1, 'ANSWER'), dialEnd([pjsip('203', 1), 1], [pjsip('201', 2), 2], 1, 'CANCEL'), bridgeEnter('b1', pjsip('203', 1), 1, 1), bridgeEnter('b1', pjsip('202', 3), 3, 1))
    states = w.last('users-state').states
    expect(states['203'].channels[pjsip('203', 1)]).toMatchObject({ answerState: 'bridged', channel: pjsip('202', 3), number: '202' })
    expect(states['201'].channels[pjsip('201', 2)].answerState).toBe('cancelled')
    w.send(hangup(pjsip('201', 2), 2, 1))
    expect(w.last('users-state').states['201'].channels).toEqual({})
  })

  test('ended wins over everything once a HangupRequest is seen', async () => {
    const w = await world()
    w.send(...ringGroup(), { Event: 'HangupRequest', ...ch(pjsip('201', 2), 2, 'Ringing', 1), Cause: '16' })
    expect(w.last('users-state').states['201'].channels[pjsip('201', 2)]).toMatchObject({ answerState: 'ended', pickupAvailable: false })
    expect(w.last('users-state').states['201'].state).toBe('Idle')
  })
})

describe('Local pairs', () => {
  const caller = pjsip('203', 11)
  const half1 = 'Local/2000@internal-00000001;1'
  const half2 = 'Local/2000@internal-00000001;2'
  const callee = pjsip('201', 14)

  test('a fork cancelled at the Local level cancels the PJSIP leg behind it', async () => {
    const other1 = 'Local/2000@internal-00000002;1'
    const w = await world()
    w.send(
      newchannel(caller, 11, 'Ring', 11, { CallerIDNum: '203', Exten: '2000' }),
      newchannel(half1, 12, 'Down', 11),
      dialBegin([caller, 11], [half1, 12], 11, '2000'),
      newchannel(half2, 13, 'Ring', 11, { Exten: '201' }),
      newchannel(callee, 14, 'Down', 11),
      dialBegin([half2, 13], [callee, 14], 11, '201'),
      newstate(callee, 14, 'Ringing', 11),
      newchannel(other1, 15, 'Down', 11),
      dialBegin([caller, 11], [other1, 15], 11, '2000'),
    )
    expect(w.last('users-state').states['201'].channels[callee]).toMatchObject({ answerState: 'ringing', channel: caller, number: '203', direction: 'incoming' })
    w.send(newstate(other1, 15, 'Up', 11))
    expect(w.last('users-state').states['201'].channels[callee]).toMatchObject({ answerState: 'cancelled', pickupAvailable: false })
    expect(w.last('users-state').states['201'].state).toBe('Idle')
  })

  test('a bridge cycle through Local pairs ends: no peer, the engine keeps publishing', async () => {
    const w = await world()
    const [a1, a2, b1, b2] = ['Local/a@x-00000001;1', 'Local/a@x-00000001;2', 'Local/b@x-00000002;1', 'Local/b@x-00000002;2']
    w.send(
      newchannel(a1, 21, 'Up', 21),
      newchannel(a2, 22, 'Up', 21),
      newchannel(b1, 23, 'Up', 21),
      newchannel(b2, 24, 'Up', 21),
      // a;2 ↔ b;1 and b;2 ↔ a;1: every walk comes back to where it started.
      bridgeEnter('x1', a2, 22, 21),
      bridgeEnter('x1', b1, 23, 21),
      bridgeEnter('x2', b2, 24, 21),
      bridgeEnter('x2', a1, 21, 21),
      newchannel(pjsip('201', 25), 25, 'Up', 21),
      bridgeEnter('x3', pjsip('201', 25), 25, 21),
    )
    expect(w.last('users-state').states['201'].channels[pjsip('201', 25)]).toMatchObject({ channel: '', answerState: 'answered' })
    expect(w.last('active-calls').calls).toHaveLength(1)
  })
})

describe('linkedid aliases', () => {
  test('a pickup by a third employee: the bridge joins two linkedids, active-calls shows one call under the earlier', async () => {
    const w = await world()
    // 203 calls 201; 202 picks it up with *8, which creates its own channel and linkedid first.
    w.send(
      newchannel(pjsip('203', 31), 31, 'Ring', 31, { CallerIDNum: '203', Exten: '201' }),
      newchannel(pjsip('201', 32), 32, 'Down', 31),
      dialBegin([pjsip('203', 31), 31], [pjsip('201', 32), 32], 31, '201'),
      newstate(pjsip('201', 32), 32, 'Ringing', 31),
      newchannel(pjsip('202', 33), 33, 'Up', 33, { CallerIDNum: '202', Exten: '*8' }),
    )
    expect(w.last('active-calls').calls.map((call: any) => call.linkedid)).toEqual([id(31), id(33)])
    w.send(
      bridgeEnter('p1', pjsip('203', 31), 31, 31),
      bridgeEnter('p1', pjsip('202', 33), 33, 33),
      dialEnd([pjsip('203', 31), 31], [pjsip('201', 32), 32], 31, 'CANCEL'),
    )
    const calls = w.last('active-calls').calls
    expect(calls).toHaveLength(1)
    expect(calls[0]).toMatchObject({ linkedid: id(31), src_chan: pjsip('203', 31), dst_chan: pjsip('202', 33) })
    const states = w.last('users-state').states
    expect(states['202'].channels[pjsip('202', 33)]).toMatchObject({ linkedid: id(31), channel: pjsip('203', 31), answerState: 'bridged' })
    expect(states['201'].channels[pjsip('201', 32)]).toMatchObject({ answerState: 'cancelled', pickupAvailable: false })
    // The Linkedid the picking channel then reports changes nothing more.
    w.send(newstate(pjsip('202', 33), 33, 'Up', 31))
    expect(w.last('active-calls').calls).toHaveLength(1)
    w.send(hangup(pjsip('201', 32), 32, 31), hangup(pjsip('202', 33), 33, 31), hangup(pjsip('203', 31), 31, 31))
    expect(w.last('active-calls').calls).toEqual([])
    expect(w.engine.trackedChannels).toBe(0)
  })

  test('a Linkedid change (attended transfer) merges into the earlier call', () => {
    const graph = new CallGraph(100)
    const snap = (n: number, linked: number) => ({ uniqueid: id(n), name: pjsip('20' + (n % 10), n), linkedid: id(linked), state: 'Up', callerNum: '', connectedNum: '', exten: '' })
    graph.upsert(snap(41, 41), 0)
    graph.upsert(snap(52, 52), 0)
    expect([...graph.calls.keys()]).toEqual([id(41), id(52)])
    graph.upsert(snap(52, 41), 0)
    expect([...graph.calls.keys()]).toEqual([id(41)])
    expect(graph.canonical(id(52))).toBe(id(41))
    graph.remove(id(41))
    graph.remove(id(52))
    expect(graph.calls.size).toBe(0)
    expect(graph.canonical(id(52))).toBe(id(52))
  })
})

describe('queues', () => {
  const queueStatus: Fields[] = [
    { Event: 'QueueParams', Queue: 'support', Max: '0', Strategy: 'ringall', Calls: '0' },
    { Event: 'QueueMember', Queue: 'support', Name: '201', Location: 'Local/201@internal/n', StateInterface: 'PJSIP/201', Status: '1', Paused: '0' },
    { Event: 'QueueMember', Queue: 'support', Name: '202', Location: 'PJSIP/202', StateInterface: 'PJSIP/202', Status: '1', Paused: '0' },
  ]

  test('an isQueue entry from QueueStatus, Ringing while a caller waits, never overriding its agents', async () => {
    const w = await world({ queueEvents: queueStatus })
    expect(w.last('users-state').states.support).toEqual({ name: 'support', state: 'Idle', channels: {}, isQueue: true, members: ['201', '202'] })
    w.send(
      newchannel(pjsip('203', 61), 61, 'Up', 61, { CallerIDNum: '203', Exten: '2200' }),
      { Event: 'QueueCallerJoin', Queue: 'support', Position: '1', Count: '1', ...ch(pjsip('203', 61), 61, 'Up', 61) },
      { Event: 'AgentCalled', Queue: 'support', Interface: 'Local/201@internal/n', MemberName: '201', ...ch(pjsip('203', 61), 61, 'Up', 61) },
    )
    const states = w.last('users-state').states
    expect(states.support.state).toBe('Ringing')
    expect(states['201'].state).toBe('Idle')
    w.send({ Event: 'AgentConnect', Queue: 'support', Interface: 'Local/201@internal/n', ...ch(pjsip('203', 61), 61, 'Up', 61) })
    expect(w.last('users-state').states.support.state).toBe('Idle')
    w.send(
      { Event: 'QueueCallerJoin', Queue: 'support', Position: '1', Count: '1', ...ch(pjsip('203', 61), 61, 'Up', 61) },
      { Event: 'QueueMemberAdded', Queue: 'support', Interface: 'PJSIP/203', StateInterface: 'PJSIP/203' },
    )
    expect(w.last('users-state').states.support).toMatchObject({ state: 'Ringing', members: ['201', '202', '203'] })
    // The caller's Hangup ends its wait even if QueueCallerLeave was lost.
    w.send(hangup(pjsip('203', 61), 61, 61))
    expect(w.last('users-state').states.support.state).toBe('Idle')
  })

  test('member extensions from interfaces', () => {
    expect(['PJSIP/201', 'Local/202@internal/n', 'PJSIP/203-WS', 'Local/204@from-queue', 'DAHDI/1'].map(extensionOfInterface)).toEqual(['201', '202', '203', '204', null])
  })
})

describe('mobile legs and the aggregate state', () => {
  test("a provider leg dialed to a user's mobile is that user's, and makes it Ringing then Up", async () => {
    const w = await world()
    const trunk = pjsip('SIP-PROVIDER-1', 72)
    w.send(
      newchannel(pjsip('201', 71), 71, 'Ring', 71, { CallerIDNum: '201', Exten: '89161234567' }),
      newchannel(trunk, 72, 'Down', 71),
      dialBegin([pjsip('201', 71), 71], [trunk, 72], 71, '89161234567'),
      newstate(trunk, 72, 'Ringing', 71),
    )
    let dave = w.last('users-state').states['204']
    expect(dave.state).toBe('Ringing')
    // Not Dave's own PJSIP channel: no pickup.
    expect(dave.channels[trunk]).toMatchObject({ direction: 'incoming', answerState: 'ringing', pickupAvailable: false, channelId: '00000048', channel: pjsip('201', 71), number: '201' })
    w.send(newstate(trunk, 72, 'Up', 71))
    dave = w.last('users-state').states['204']
    expect(dave.state).toBe('Up')
  })

  test('held is Up; Unhold goes back to bridged', async () => {
    const w = await world()
    w.send(
      newchannel(pjsip('201', 81), 81, 'Up', 81),
      newchannel(pjsip('202', 82), 82, 'Up', 81),
      bridgeEnter('h', pjsip('201', 81), 81, 81),
      bridgeEnter('h', pjsip('202', 82), 82, 81),
      { Event: 'Hold', ...ch(pjsip('201', 81), 81, 'Up', 81) },
    )
    expect(w.last('users-state').states['201']).toMatchObject({ state: 'Up', channels: { [pjsip('201', 81)]: expect.objectContaining({ answerState: 'held' }) } })
    w.send({ Event: 'Unhold', ...ch(pjsip('201', 81), 81, 'Up', 81) })
    expect(w.last('users-state').states['201'].channels[pjsip('201', 81)].answerState).toBe('bridged')
  })

  test('a user whose only channel is cancelled and whose contacts are all unreachable is Unavailable', async () => {
    const w = await world()
    w.send(...ringGroup(), { Event: 'ContactStatus', URI: 'sip:201@10.0.0.5', ContactStatus: 'Unreachable', AOR: '201', EndpointName: '201' }, newstate(pjsip('202', 3), 3, 'Up', 1))
    expect(w.last('users-state').states['201'].state).toBe('Unavailable')
  })
})

describe('the envelope and sequence', () => {
  test('one instanceId; sequence grows per snapshot; a change that leaves every entry the same publishes nothing', async () => {
    const w = await world()
    const sequences = () => w.published.map((entry) => entry.snapshot.sequence)
    expect(sequences()).toEqual([1, 2])
    expect(new Set(w.published.map((entry) => entry.snapshot.instanceId)).size).toBe(1)
    expect(w.published[0]!.snapshot.schemaVersion).toBe(2)
    // A contact re-qualified as Reachable, an ExtensionStatus that says what is known: no entry changes.
    w.send({ Event: 'ContactStatus', URI: 'sip:201@10.0.0.5', ContactStatus: 'Reachable', AOR: '201', EndpointName: '201' })
    expect(sequences()).toEqual([1, 2])
    w.send(newchannel(pjsip('202', 91), 91, 'Ring', 91))
    // Only users-state changed? Both: the new channel is a call too.
    expect(sequences()).toEqual([1, 2, 3, 4])
  })

  test('every login publishes a full snapshot of each kind with a new sequence, even unchanged', async () => {
    const w = await world()
    w.link.setStatus('down')
    w.link.setStatus('up')
    await w.engine.settled()
    w.timers.advance(200)
    expect(w.published.map((entry) => [entry.channel, entry.snapshot.sequence])).toEqual([
      ['users-state', 1],
      ['active-calls', 2],
      ['users-state', 3],
      ['active-calls', 4],
    ])
  })
})

describe('bad input', () => {
  test('events for unknown channels and bridges are counted and change nothing', async () => {
    const w = await world()
    const before = w.published.length
    w.send(
      { Event: 'DialEnd', ...ch(pjsip('201', 1), 1, 'Up', 1), ...ch(pjsip('202', 2), 2, 'Up', 1, {}, 'Dest'), DialStatus: 'ANSWER' },
      { Event: 'Hold', ...ch(pjsip('201', 1), 1, 'Up', 1) },
      { Event: 'HangupRequest', ...ch(pjsip('201', 1), 1, 'Up', 1) },
      { Event: 'BridgeLeave', BridgeUniqueid: 'nowhere', ...ch(pjsip('201', 1), 1, 'Up', 1) },
      { Event: 'BridgeDestroy', BridgeUniqueid: 'nowhere' },
      { Event: 'QueueCallerLeave', Queue: 'nosuchqueue', ...ch(pjsip('201', 1), 1, 'Up', 1) },
    )
    expect(w.engine.counters.ignoredEvents).toBe(6)
    expect(w.published.length).toBe(before)
  })

  test('channels whose names do not match the strict pattern are dropped and counted', async () => {
    const w = await world()
    w.send(
      newchannel('SIP/201-00000001', 1, 'Ring', 1),
      newchannel('PJSIP/201-zz', 2, 'Ring', 2),
      newchannel('PJSIP/201-0000000a;evil', 3, 'Ring', 3),
      newchannel('Message/ast_msg_queue', 4, 'Down', 4),
      dialBegin([pjsip('201', 5), 5], ['IAX2/peer-1234', 6], 5),
    )
    expect(w.engine.trackedChannels).toBe(0)
    expect(w.engine.counters.ignoredEvents).toBe(5)
    expect(w.last('users-state').states['201'].channels).toEqual({})
  })

  test('10 000 channels: the cap holds, one log line, and a Hangup makes room again', async () => {
    const w = await world()
    for (let n = 0; n < 10_050; n++) w.link.emit(newchannel(pjsip('202', n), 100_000 + n, 'Ring', 100_000 + n))
    w.timers.advance(200)
    expect(w.engine.trackedChannels).toBe(10_000)
    expect(w.logs).toEqual(['AMI_CHANNEL_CAP channels=10000: new channels are not tracked until some hang up'])
    expect(w.last('active-calls').calls).toHaveLength(10_000)
    // One entry shows at most 100 channels (the schema's cap), its state still from all of them.
    expect(Object.keys(w.last('users-state').states['202'].channels)).toHaveLength(100)
    w.send(hangup(pjsip('202', 0), 100_000, 100_000), newchannel(pjsip('203', 1), 200_000, 'Ring', 200_000))
    expect(w.engine.trackedChannels).toBe(10_000)
    expect(w.logs).toHaveLength(1)
  })

  test('repeated and out-of-order events are idempotent: Hangup before Newchannel, DialEnd twice, Newstate repeated', async () => {
    const a = await world()
    const b = await world()
    const call = [...ringGroup(), newstate(pjsip('202', 3), 3, 'Up', 1), dialEnd([pjsip('203', 1), 1], [pjsip('202', 3), 3], 1, 'ANSWER')]
    a.send(...call)
    b.send(...call, dialEnd([pjsip('203', 1), 1], [pjsip('202', 3), 3], 1, 'ANSWER'), newstate(pjsip('202', 3), 3, 'Up', 1), ...ringGroup().slice(0, 3))
    const body = (w: World, kind: EngineChannel) => {
      const { sequence, instanceId, generatedAt, ...rest } = w.last(kind)
      return rest
    }
    expect(body(b, 'users-state')).toEqual(body(a, 'users-state'))
    expect(body(b, 'active-calls')).toEqual(body(a, 'active-calls'))
    // A Hangup that overtook its channel's Newchannel: the late Newchannel brings nothing back.
    b.send(hangup(pjsip('201', 9), 9, 9), newchannel(pjsip('201', 9), 9, 'Ring', 9))
    expect(b.engine.trackedChannels).toBe(3)
    expect(b.last('users-state').states['201'].channels[pjsip('201', 9)]).toBeUndefined()
  })
})

describe('bootstrap', () => {
  test('at login nothing is published until the lists and the events that came meanwhile are applied', async () => {
    let openGate = () => {}
    const loadGate = new Promise<void>((resolve) => (openGate = resolve))
    const w = await world({ loadGate })
    await Bun.sleep(0)
    w.send(...ringGroup())
    w.timers.advance(1000)
    expect(w.published).toEqual([])
    openGate()
    await w.engine.settled()
    w.timers.advance(200)
    expect(w.published.map((entry) => entry.snapshot.sequence)).toEqual([1, 2])
    expect(w.last('users-state').states['201'].channels[pjsip('201', 2)]).toMatchObject({ answerState: 'ringing', pickupAvailable: true })
    expect(w.logs).toEqual([])
  })
})

describe('what reaches a snapshot', () => {
  test('over-long ids are dropped, numbers clipped, queues with names no key may have left out: every snapshot passes the schema', async () => {
    const w = await world({ queueEvents: [{ Event: 'QueueParams', Queue: 'bad queue/name' }, { Event: 'QueueMember', Queue: 'bad queue/name', StateInterface: 'PJSIP/201' }] })
    w.send(
      newchannel(pjsip('201', 1), 1, 'Ring', 1, { Uniqueid: 'x'.repeat(81) }),
      newchannel(pjsip('202', 2), 2, 'Ringing', 2, { CallerIDNum: '7'.repeat(500), ConnectedLineNum: '8'.repeat(500) }),
    )
    expect(w.engine.trackedChannels).toBe(1)
    expect(w.last('users-state').states['202'].channels[pjsip('202', 2)].number).toBe('8'.repeat(80))
    expect(Object.keys(w.last('users-state').states)).toEqual(['201', '202', '203', '204'])
    expect(w.logs).toEqual([])
  })
})

describe('reconciliation', () => {
  test('a lost Hangup is fixed within 20 s; a failed list is never "all calls ended"', async () => {
    const w = await world()
    w.send(...ringGroup())
    // Asterisk lists only the caller and 202's leg: 201's Hangup was lost.
    w.channels.push(
      { Event: 'CoreShowChannel', ...ch(pjsip('203', 1), 1, 'Ring', 1, { CallerIDNum: '203', Exten: '2000' }), BridgeId: '', Application: 'Dial' },
      { Event: 'CoreShowChannel', ...ch(pjsip('202', 3), 3, 'Ringing', 1), BridgeId: '', Application: 'AppDial' },
    )
    w.link.script.set('BridgeList', () => {
      throw Object.assign(new Error('timed out'), { name: 'AmiTimeout' })
    })
    w.timers.advance(20_000)
    await w.engine.settled()
    w.timers.advance(200)
    expect(w.logs).toEqual(['AMI_RECONCILE_FAILED AmiTimeout: timed out'])
    expect(w.engine.trackedChannels).toBe(3)
    w.link.script.delete('BridgeList')
    w.timers.advance(20_000)
    await w.engine.settled()
    w.timers.advance(200)
    expect(w.engine.trackedChannels).toBe(2)
    expect(w.last('users-state').states['201'].channels).toEqual({})
    expect(w.last('users-state').states['202'].channels[pjsip('202', 3)]).toMatchObject({ direction: 'incoming', answerState: 'ringing', pickupAvailable: true })
  })

  test('a load starts from CoreShowChannels: AppDial legs are incoming, bridges from BridgeId', async () => {
    const w = await world({
      channels: [
        { Event: 'CoreShowChannel', ...ch(pjsip('201', 1), 1, 'Up', 1, { Exten: '202' }), BridgeId: 'b9', Application: 'Dial' },
        { Event: 'CoreShowChannel', ...ch(pjsip('202', 2), 2, 'Up', 1), BridgeId: 'b9', Application: 'AppDial' },
      ],
    })
    const states = w.last('users-state').states
    expect(states['202'].channels[pjsip('202', 2)]).toMatchObject({ direction: 'incoming', answerState: 'bridged', channel: pjsip('201', 1) })
    expect(states['201'].channels[pjsip('201', 1)]).toMatchObject({ direction: 'outgoing', answerState: 'bridged', channel: pjsip('202', 2) })
    expect(states['201'].state).toBe('Up')
  })
})
