/**
 * What each replay transcript (test/fixtures/ami-replay/) must produce, step by step, written from
 * the rules (README "Presence snapshots, schema version 2" and "Personalised presence"), never
 * copied from the binary's output. Per step: the full snapshot an admin sees and, per viewer, which
 * of the others' channels and which calls it may see with the default scopes (states "all", calls
 * "own"): its own entry in full, everyone's name and state, only the channels of a call it takes part
 * in, queues only when it is a member.
 */
import type { ActiveCall, AnswerState, CallLeg, ChannelEntry, EmployeeEntry } from '../../src/presence/snapshot'
import { channelIdOf } from '../../src/presence/snapshot'

export const NAMES: Record<string, string> = {
  '233': 'Irina Sokolova',
  '268': 'Pavel Orlov',
  '204': 'Marta Klein',
  '210': 'Oleg Brandt',
  '100': 'Duty Admin',
}
export const ADMIN = '100'
export const QUEUE = 'QUEUE-6B0C2F41'
export const QUEUE_MEMBERS = ['268', '210']
export const PROVIDER = 'SIP-PROVIDER-7E2A91'

export interface Chan {
  name: string
  uniqueid: string
  linkedid: string
}

const chan = (name: string, seconds: number, n: number, linked: number): Chan => ({ name, uniqueid: `mikopbx-${seconds}.${n}`, linkedid: `mikopbx-${seconds}.${linked}` })

/** One channel of an employee's entry, from that employee's side. */
function own(
  channel: Chan,
  peer: { channel: Chan | ''; number: string },
  direction: ChannelEntry['direction'],
  answerState: AnswerState,
  options: { pickup?: boolean; linkedid?: string } = {},
): [string, ChannelEntry] {
  return [
    channel.name,
    {
      channel: peer.channel === '' ? '' : peer.channel.name,
      number: peer.number,
      direction,
      linkedid: options.linkedid ?? channel.linkedid,
      uniqueid: channel.uniqueid,
      channelId: channelIdOf(channel.name),
      answerState,
      pickupAvailable: options.pickup ?? false,
    },
  ]
}

const employee = (ext: string, state: EmployeeEntry['state'], ...channels: Array<[string, ChannelEntry]>): EmployeeEntry => ({ name: NAMES[ext]!, state, channels: Object.fromEntries(channels) })

const leg = (channel: Chan, number: string, answerState: AnswerState): CallLeg => ({ channel: channel.name, number, uniqueid: channel.uniqueid, channelId: channelIdOf(channel.name), answerState })

interface CallShape {
  start: number
  answer: number | ''
  typeCall: ActiveCall['typeCall']
  src: [Chan | '', string]
  dst: [Chan | '', string]
  did?: string
  linkedid: string
  called?: CallLeg[]
  bridged?: CallLeg[]
}

const call = (shape: CallShape): ActiveCall => ({
  start: shape.start,
  answer: shape.answer,
  typeCall: shape.typeCall,
  src_chan: shape.src[0] === '' ? '' : shape.src[0].name,
  src_num: shape.src[1],
  dst_chan: shape.dst[0] === '' ? '' : shape.dst[0].name,
  dst_num: shape.dst[1],
  did: shape.did ?? '',
  linkedid: shape.linkedid,
  calledChannels: shape.called ?? [],
  bridgeChannels: shape.bridged ?? [],
})

export interface Sight {
  /** Channel names of other employees' entries this viewer sees (a call it takes part in). */
  channels: string[]
  /** Linkedids of the active calls it sees. */
  calls: string[]
}

export interface Expected {
  /** Entries of employees that are not idle with no channels. */
  entries: Record<string, EmployeeEntry>
  queue?: EmployeeEntry
  calls: ActiveCall[]
  /** Viewers other than the admin; a viewer left out sees nothing of the others' calls. */
  sight: Record<string, Sight>
}

export interface Scenario {
  transcript: string
  /** What the run is called when the transcript runs more than once. */
  title?: string
  /** caller, callee, bystander and any other employee whose view matters, by extension; the admin is always there. */
  viewers: string[]
  queue?: boolean
  /** Configuration lines (TOML) beyond the defaults. */
  config?: string
  steps: Record<string, Expected>
}

const idleEntry = (ext: string): EmployeeEntry => ({ name: NAMES[ext]!, state: 'Idle', channels: {} })
const EMPLOYEES = ['233', '268', '204', '210', '100']

/** The admin's view: every employee and every call, unfiltered. */
export function fullUsersState(expected: Expected, queue: boolean): Record<string, EmployeeEntry> {
  const states: Record<string, EmployeeEntry> = {}
  for (const ext of EMPLOYEES) states[ext] = expected.entries[ext] ?? idleEntry(ext)
  if (queue) states[QUEUE] = expected.queue ?? queueEntry('Idle')
  return states
}

export function viewOf(viewer: string, expected: Expected, queue: boolean): { states: Record<string, EmployeeEntry>; calls: ActiveCall[] } {
  const full = fullUsersState(expected, queue)
  if (viewer === ADMIN) return { states: full, calls: expected.calls }
  const sight = expected.sight[viewer] ?? { channels: [], calls: [] }
  const states: Record<string, EmployeeEntry> = {}
  for (const [ext, entry] of Object.entries(full)) {
    if (entry.isQueue) {
      if (entry.members?.includes(viewer)) states[ext] = entry
      continue
    }
    if (ext === viewer) states[ext] = entry
    else states[ext] = { ...entry, channels: Object.fromEntries(Object.entries(entry.channels).filter(([name]) => sight.channels.includes(name))) }
  }
  return { states, calls: expected.calls.filter((known) => sight.calls.includes(known.linkedid)) }
}

/** Members in order of their extensions, so equal queues give equal JSON. */
export const queueEntry = (state: 'Idle' | 'Ringing'): EmployeeEntry => ({ name: QUEUE, state, channels: {}, isQueue: true, members: [...QUEUE_MEMBERS].sort() })

const nothing: Expected = { entries: {}, calls: [], sight: {} }

/** The three steps of an internal call from 233 (A) to 268 (B), starting at `s`, answered at `s + answeredAfter`. */
function internalCall(s: number, a: Chan, b: Chan, answeredAfter: number): { ringing: Expected; answered: Expected } {
  const sight = { '233': { channels: [b.name], calls: [a.linkedid] }, '268': { channels: [a.name], calls: [a.linkedid] } }
  return {
    ringing: {
      entries: {
        '233': employee('233', 'Up', own(a, { channel: b, number: '268' }, 'outgoing', 'dialing')),
        '268': employee('268', 'Ringing', own(b, { channel: a, number: '233' }, 'incoming', 'ringing', { pickup: true })),
      },
      calls: [call({ start: s, answer: '', typeCall: 'inner', src: [a, '233'], dst: ['', ''], linkedid: a.linkedid, called: [leg(b, '268', 'ringing')] })],
      sight,
    },
    answered: {
      entries: {
        '233': employee('233', 'Up', own(a, { channel: b, number: '268' }, 'outgoing', 'bridged')),
        '268': employee('268', 'Up', own(b, { channel: a, number: '233' }, 'incoming', 'bridged')),
      },
      calls: [call({ start: s, answer: s + answeredAfter, typeCall: 'inner', src: [a, '233'], dst: [b, '268'], linkedid: a.linkedid, bridged: [leg(a, '233', 'bridged'), leg(b, '268', 'bridged')] })],
      sight,
    },
  }
}

function basic(s: number, transcript: string): Scenario {
  const a = chan('PJSIP/233-000003d7', s, 2101, 2101)
  const b = chan('PJSIP/268-000003d8', s, 2102, 2101)
  const { ringing, answered } = internalCall(s, a, b, 6)
  return { transcript, viewers: ['233', '268', '204'], steps: { ringing, answered, ended: nothing } }
}

function twoDevices(): Scenario {
  const s = 1_795_435_320
  const a = chan('PJSIP/233-000003e0', s, 2111, 2111)
  const desk = chan('PJSIP/268-000003e1', s, 2112, 2111)
  const web = chan('PJSIP/268-WS-000003e2', s, 2113, 2111)
  const both = { '233': { channels: [desk.name, web.name], calls: [a.linkedid] }, '268': { channels: [a.name], calls: [a.linkedid] } }
  const webOnly = { '233': { channels: [web.name], calls: [a.linkedid] }, '268': { channels: [a.name], calls: [a.linkedid] } }
  const fromIrina = { channel: a, number: '233' }
  const talking = (...legs: Array<[string, ChannelEntry]>): Expected['entries'] => ({
    '233': employee('233', 'Up', own(a, { channel: web, number: '268' }, 'outgoing', 'bridged')),
    '268': employee('268', 'Up', ...legs),
  })
  const answeredCall = (called: CallLeg[]) =>
    call({ start: s, answer: s + 5, typeCall: 'inner', src: [a, '233'], dst: [web, '268'], linkedid: a.linkedid, called, bridged: [leg(a, '233', 'bridged'), leg(web, '268', 'bridged')] })
  return {
    transcript: '02-two-devices-268',
    viewers: ['233', '268', '204'],
    steps: {
      'both-ring': {
        entries: {
          // Two forks: which device is "the" peer is ambiguous, so channel '' and the number dialed.
          '233': employee('233', 'Up', own(a, { channel: '', number: '268' }, 'outgoing', 'dialing')),
          '268': employee('268', 'Ringing', own(desk, fromIrina, 'incoming', 'ringing', { pickup: true }), own(web, fromIrina, 'incoming', 'ringing', { pickup: true })),
        },
        calls: [call({ start: s, answer: '', typeCall: 'inner', src: [a, '233'], dst: ['', ''], linkedid: a.linkedid, called: [leg(desk, '268', 'ringing'), leg(web, '268', 'ringing')] })],
        sight: both,
      },
      'web-answers': {
        entries: talking(own(desk, fromIrina, 'incoming', 'cancelled'), own(web, fromIrina, 'incoming', 'bridged')),
        calls: [answeredCall([leg(desk, '268', 'cancelled')])],
        sight: both,
      },
      'desk-gone': { entries: talking(own(web, fromIrina, 'incoming', 'bridged')), calls: [answeredCall([])], sight: webOnly },
      ended: nothing,
    },
  }
}

function queueCall(): Scenario {
  const s = 1_795_435_380
  const outside = chan(`PJSIP/${PROVIDER}-0000002a`, s, 3001, 3001)
  const pavel = chan('PJSIP/268-0000002b', s, 3002, 3001)
  const oleg = chan('PJSIP/210-0000002c', s, 3003, 3001)
  const caller = { channel: outside, number: '15550104477' }
  const base = { start: s, typeCall: 'incoming' as const, src: [outside, '15550104477'] as [Chan, string], did: '15550100200', linkedid: outside.linkedid }
  const agents = (pavelSees: string[], olegSees: string[]) => ({
    '268': { channels: pavelSees, calls: [outside.linkedid] },
    '210': { channels: olegSees, calls: [outside.linkedid] },
  })
  const answered = (called: CallLeg[]) =>
    call({ ...base, answer: s + 9, dst: [pavel, '268'], called, bridged: [leg(outside, '15550104477', 'bridged'), leg(pavel, '268', 'bridged')] })
  const pavelTalks = employee('268', 'Up', own(pavel, caller, 'incoming', 'bridged'))
  return {
    transcript: '03-queue-from-provider',
    // 268 answers, 210 is the member whose fork is cancelled, 233 is no member.
    viewers: ['268', '210', '233'],
    queue: true,
    steps: {
      waiting: {
        entries: {},
        queue: queueEntry('Ringing'),
        calls: [call({ ...base, answer: '', dst: ['', ''] })],
        sight: {},
      },
      'agents-ring': {
        entries: {
          '268': employee('268', 'Ringing', own(pavel, caller, 'incoming', 'ringing', { pickup: true })),
          '210': employee('210', 'Ringing', own(oleg, caller, 'incoming', 'ringing', { pickup: true })),
        },
        queue: queueEntry('Ringing'),
        calls: [call({ ...base, answer: '', dst: ['', ''], called: [leg(pavel, '268', 'ringing'), leg(oleg, '210', 'ringing')] })],
        sight: agents([oleg.name], [pavel.name]),
      },
      '268-answers': {
        // A cancelled fork is not Ringing: 210 is Idle while its channel waits for its Hangup.
        entries: { '268': pavelTalks, '210': employee('210', 'Idle', own(oleg, caller, 'incoming', 'cancelled')) },
        queue: queueEntry('Idle'),
        calls: [answered([leg(oleg, '210', 'cancelled')])],
        sight: agents([oleg.name], [pavel.name]),
      },
      // 210's leg is gone: it takes part in nothing any more.
      '210-gone': { entries: { '268': pavelTalks }, queue: queueEntry('Idle'), calls: [answered([])], sight: { '268': { channels: [], calls: [outside.linkedid] } } },
      ended: { ...nothing, queue: queueEntry('Idle') },
    },
  }
}

function originate(): Scenario {
  const s = 1_795_435_440
  const irina = chan('PJSIP/233-00000013', s, 4003, 4001)
  const pavel = chan('PJSIP/268-00000014', s, 4004, 4001)
  const linkedid = `mikopbx-${s}.4001`
  const sight = { '233': { channels: [pavel.name], calls: [linkedid] }, '268': { channels: [irina.name], calls: [linkedid] } }
  // The Local pair is no party: the call runs from 233's phone to 268's, both legs the destinations of Dial edges.
  const base = { start: s, answer: s + 4, typeCall: 'inner' as const, src: [irina, '233'] as [Chan, string], linkedid }
  return {
    transcript: '04-originate-through-local',
    viewers: ['233', '268', '204'],
    steps: {
      '233-rings': {
        entries: {
          // No physical channel on the other side yet: channel '', the number the Originate showed 233's phone.
          '233': employee('233', 'Ringing', own(irina, { channel: '', number: '268' }, 'incoming', 'ringing', { pickup: true })),
        },
        // 233's phone is where the call starts (the Local pair is no party): its source, not a called leg.
        calls: [call({ ...base, answer: '', dst: ['', ''] })],
        sight: { '233': { channels: [], calls: [linkedid] } },
      },
      '268-rings': {
        entries: {
          '233': employee('233', 'Up', own(irina, { channel: pavel, number: '268' }, 'incoming', 'bridged')),
          '268': employee('268', 'Ringing', own(pavel, { channel: irina, number: '233' }, 'incoming', 'ringing', { pickup: true })),
        },
        // 233 is bridged with the Local pair that dials 268: the call's destination is 268's ringing leg.
        calls: [call({ ...base, dst: [pavel, '268'], called: [leg(pavel, '268', 'ringing')], bridged: [leg(irina, '233', 'bridged')] })],
        sight,
      },
      answered: {
        entries: {
          '233': employee('233', 'Up', own(irina, { channel: pavel, number: '268' }, 'incoming', 'bridged')),
          '268': employee('268', 'Up', own(pavel, { channel: irina, number: '233' }, 'incoming', 'bridged')),
        },
        calls: [call({ ...base, dst: [pavel, '268'], bridged: [leg(irina, '233', 'bridged'), leg(pavel, '268', 'bridged')] })],
        sight,
      },
      ended: nothing,
    },
  }
}

function blindTransfer(): Scenario {
  const s = 1_795_435_500
  const a = chan('PJSIP/233-00000101', s, 5001, 5001)
  const b = chan('PJSIP/268-00000102', s, 5002, 5001)
  const c = chan('PJSIP/204-00000103', s, 5003, 5001)
  const { answered } = internalCall(s, a, b, 5)
  // 233 left, yet the call it started keeps its src_chan (as ModuleMonitorActiveCalls published it), so 233 still takes part.
  const afterTransfer = (entries: Expected['entries'], called: CallLeg[], bridged: CallLeg[]): Expected => ({
    entries,
    calls: [call({ start: s, answer: s + 5, typeCall: 'inner', src: [a, '233'], dst: ['', ''], linkedid: a.linkedid, called, bridged })],
    sight: {
      '233': { channels: [], calls: [a.linkedid] },
      '268': { channels: [c.name], calls: [a.linkedid] },
      '204': { channels: [b.name], calls: [a.linkedid] },
    },
  })
  return {
    transcript: '05-blind-transfer',
    viewers: ['233', '268', '204', '210'],
    steps: {
      talking: answered,
      // The transferee's channel now dials 204: its direction follows its new role.
      'transferred-ringing': afterTransfer(
        {
          '268': employee('268', 'Up', own(b, { channel: c, number: '204' }, 'outgoing', 'dialing')),
          '204': employee('204', 'Ringing', own(c, { channel: b, number: '268' }, 'incoming', 'ringing', { pickup: true })),
        },
        [leg(b, '268', 'dialing'), leg(c, '204', 'ringing')],
        [],
      ),
      'target-answers': afterTransfer(
        {
          '268': employee('268', 'Up', own(b, { channel: c, number: '204' }, 'outgoing', 'bridged')),
          '204': employee('204', 'Up', own(c, { channel: b, number: '268' }, 'incoming', 'bridged')),
        },
        [],
        [leg(b, '268', 'bridged'), leg(c, '204', 'bridged')],
      ),
      ended: nothing,
    },
  }
}

function attendedTransfer(): Scenario {
  const s = 1_795_435_560
  const a = chan('PJSIP/233-00000201', s, 6001, 6001)
  const b = chan('PJSIP/268-00000202', s, 6002, 6001)
  const b2 = chan('PJSIP/268-00000203', s, 6003, 6003)
  const c = chan('PJSIP/204-00000204', s, 6004, 6003)
  const { answered } = internalCall(s, a, b, 4)
  // 268's first leg is held from the on-hold step on.
  const first = call({ start: s, answer: s + 4, typeCall: 'inner', src: [a, '233'], dst: [b, '268'], linkedid: a.linkedid, bridged: [leg(a, '233', 'bridged'), leg(b, '268', 'held')] })
  const irinaTalks = employee('233', 'Up', own(a, { channel: b, number: '268' }, 'outgoing', 'bridged'))
  const held = own(b, { channel: a, number: '233' }, 'incoming', 'held')
  const consult = (pavelSecond: [string, ChannelEntry], marta: EmployeeEntry, second: ActiveCall): Expected => ({
    entries: { '233': irinaTalks, '268': employee('268', 'Up', held, pavelSecond), '204': marta },
    calls: [first, second],
    sight: {
      '233': { channels: [b.name], calls: [a.linkedid] },
      '268': { channels: [a.name, c.name], calls: [a.linkedid, b2.linkedid] },
      '204': { channels: [b2.name], calls: [b2.linkedid] },
    },
  })
  return {
    transcript: '06-attended-transfer',
    viewers: ['233', '268', '204', '210'],
    steps: {
      talking: answered,
      'on-hold': { ...answered, entries: { '233': irinaTalks, '268': employee('268', 'Up', held) }, calls: [first] },
      'consult-ringing': consult(
        own(b2, { channel: c, number: '204' }, 'outgoing', 'dialing'),
        employee('204', 'Ringing', own(c, { channel: b2, number: '268' }, 'incoming', 'ringing', { pickup: true })),
        call({ start: s, answer: '', typeCall: 'inner', src: [b2, '268'], dst: ['', ''], linkedid: b2.linkedid, called: [leg(c, '204', 'ringing')] }),
      ),
      'consult-talking': consult(
        own(b2, { channel: c, number: '204' }, 'outgoing', 'bridged'),
        employee('204', 'Up', own(c, { channel: b2, number: '268' }, 'incoming', 'bridged')),
        call({ start: s, answer: s + 27, typeCall: 'inner', src: [b2, '268'], dst: [c, '204'], linkedid: b2.linkedid, bridged: [leg(b2, '268', 'bridged'), leg(c, '204', 'bridged')] }),
      ),
      // One call remains: the consultation's linkedid is an alias of the first call's.
      transferred: {
        entries: {
          '233': employee('233', 'Up', own(a, { channel: c, number: '204' }, 'outgoing', 'bridged')),
          '204': employee('204', 'Up', own(c, { channel: a, number: '233' }, 'incoming', 'bridged', { linkedid: a.linkedid })),
        },
        calls: [call({ start: s, answer: s + 4, typeCall: 'inner', src: [a, '233'], dst: [c, '204'], linkedid: a.linkedid, bridged: [leg(a, '233', 'bridged'), leg(c, '204', 'bridged')] })],
        sight: { '233': { channels: [c.name], calls: [a.linkedid] }, '204': { channels: [a.name], calls: [a.linkedid] } },
      },
      ended: nothing,
    },
  }
}

function pickup(): Scenario {
  const s = 1_795_435_620
  const a = chan('PJSIP/233-000003f1', s, 7001, 7001)
  const b = chan('PJSIP/268-000003f2', s, 7002, 7001)
  const picker = chan('PJSIP/204-000003f3', s, 7003, 7003)
  const { ringing } = internalCall(s, a, b, 0)
  return {
    transcript: '07-pickup-by-204',
    viewers: ['233', '268', '204', '210'],
    steps: {
      ringing,
      // 204 answered 233's call: incoming for 204; its linkedid migrates to the call's; 268 is idle at once.
      'picked-up': {
        entries: {
          '233': employee('233', 'Up', own(a, { channel: picker, number: '204' }, 'outgoing', 'bridged')),
          '204': employee('204', 'Up', own(picker, { channel: a, number: '233' }, 'incoming', 'bridged', { linkedid: a.linkedid })),
        },
        calls: [call({ start: s, answer: s + 5, typeCall: 'inner', src: [a, '233'], dst: [picker, '204'], linkedid: a.linkedid, bridged: [leg(a, '233', 'bridged'), leg(picker, '204', 'bridged')] })],
        sight: { '233': { channels: [picker.name], calls: [a.linkedid] }, '204': { channels: [a.name], calls: [a.linkedid] } },
      },
      ended: nothing,
    },
  }
}

function lostHangup(): Scenario {
  const s = 1_795_435_680
  const a = chan('PJSIP/233-00000301', s, 8001, 8001)
  const b = chan('PJSIP/268-00000302', s, 8002, 8001)
  const { answered } = internalCall(s, a, b, 5)
  return {
    transcript: '08-lost-hangup-reconciled',
    viewers: ['233', '268', '204'],
    steps: {
      talking: answered,
      // 268's HangupRequest came, its Hangup did not: that channel has ended (268 is no longer busy),
      // 233's is out of the bridge but still Up, each the other's peer through the Dial edge, until
      // the reconciliation shows neither exists.
      'hangups-lost': {
        entries: {
          '233': employee('233', 'Up', own(a, { channel: b, number: '268' }, 'outgoing', 'answered')),
          '268': employee('268', 'Idle', own(b, { channel: a, number: '233' }, 'incoming', 'ended')),
        },
        calls: [call({ start: s, answer: s + 5, typeCall: 'inner', src: [a, '233'], dst: ['', ''], linkedid: a.linkedid, called: [leg(b, '268', 'ended')] })],
        sight: answered.sight,
      },
      reconciled: nothing,
    },
  }
}

function amiRestart(): Scenario {
  const s = 1_795_435_740
  const a = chan('PJSIP/233-00000401', s, 9001, 9001)
  const b = chan('PJSIP/268-00000402', s, 9002, 9001)
  const { answered } = internalCall(s, a, b, 5)
  return { transcript: '09-ami-restart-mid-call', viewers: ['233', '268', '204'], steps: { talking: answered, reconnected: answered, ended: nothing } }
}

/**
 * The first transcript again with 204 and 233 in one presence group: 204, no party to the call,
 * sees its group-mate 233's channel and the call 233 takes part in, but not 268's channel.
 */
function basicWithGroup(): Scenario {
  const scenario = basic(1_795_435_260, '01-basic-233-to-268')
  const marta = (expected: Expected): Expected => ({ ...expected, sight: { ...expected.sight, '204': { channels: ['PJSIP/233-000003d7'], calls: expected.calls.map((known) => known.linkedid) } } })
  return {
    ...scenario,
    title: '01-basic-233-to-268 with presence_groups ["204 233"]',
    config: 'presence_groups = ["204 233"]\n',
    steps: Object.fromEntries(Object.entries(scenario.steps).map(([name, expected]) => [name, marta(expected)])),
  }
}

export const SCENARIOS: Scenario[] = [
  basic(1_795_435_260, '01-basic-233-to-268'),
  basicWithGroup(),
  twoDevices(),
  queueCall(),
  originate(),
  blindTransfer(),
  attendedTransfer(),
  pickup(),
  lostHangup(),
  amiRestart(),
  basic(1_795_435_800, '10-repeated-and-out-of-order'),
]

/** What a version 1 client knew of each body: it reads only these fields and must not trip over the others. */
export interface LegacyUsersState {
  states: Record<string, { name: string; state: string; channels: Record<string, { channel: string; number: string; direction: string }> }>
}
