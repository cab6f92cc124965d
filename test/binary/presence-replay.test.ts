/**
 * The AMI replay transcripts (test/fixtures/ami-replay/) played through the simulator against the
 * compiled binary with ami = "on" (README "Presence snapshots, schema version 2", "Personalised
 * presence"): after every step, the caller, the callee, a bystander and an admin each hold exactly
 * the personalised snapshot test/binary/presence-replay-expected.ts says, on sub/me/users-state and
 * sub/me/active-calls over WebSockets; the envelope (one instanceId, a growing sequence) is checked
 * apart. A version 1 client's parser reads the same bodies unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AmiSimulator, SIM_SECRET, SIM_USERNAME, type SimContact } from '../ami-simulator'
import { loadTranscript, ReplayPlayer } from '../ami-replay'
import { ADMIN, NAMES, PROVIDER, QUEUE, QUEUE_MEMBERS, SCENARIOS, viewOf, type LegacyUsersState, type Scenario } from './presence-replay-expected'
import { ServerProcess } from './server-process'

const PASSWORD = 'Pw-replay-7c41'
/** The engine publishes within its debounce of an event; this bound only keeps a broken run from hanging. */
const STEP_MS = 5_000
/** A lost Hangup waits for the next reconciliation (README "Live PBX state": every 20 s). */
const RECONCILE_BOUND_MS = 30_000
const RECONNECT_BOUND_MS = 15_000
const KINDS = ['users-state', 'active-calls'] as const
type Kind = (typeof KINDS)[number]

interface Envelope {
  schemaVersion: number
  instanceId: string
  sequence: number
  generatedAt: number
}
type Body = Record<string, unknown>

async function within(ms: number, check: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) return false
    await Bun.sleep(20)
  }
  return true
}

const contact = (endpoint: string, host: number): SimContact => ({
  uri: `sip:${endpoint}@192.0.2.${host}:5060`,
  status: 'Reachable',
  userAgent: endpoint.endsWith('-WS') ? 'Softphone-Web/2.1' : 'Softphone/2.1',
  regExpire: 1_795_438_800,
  viaAddress: `192.0.2.${host}:5060`,
  callId: `replay-${endpoint}`,
  roundtripUsec: 9_870,
})

/** The PBX of every transcript: the users' phones (268 also in a browser), a provider trunk, one queue. */
function pbx(simulator: AmiSimulator): void {
  const phones = ['233', '268', '268-WS', '204', '210', '100']
  for (const [index, name] of phones.entries()) simulator.addEndpoint({ name, contacts: [contact(name, 20 + index)] })
  simulator.addEndpoint({ name: PROVIDER, contacts: [] })
}

function withoutEnvelope(body: Envelope & Body): Body {
  const { schemaVersion: _version, instanceId: _instance, sequence: _sequence, generatedAt: _at, ...rest } = body
  return rest
}

/** One viewer's subscription to one me channel: every body it got, in order. */
class Subscriber {
  readonly bodies: Array<Envelope & Body> = []
  /** The bodies as they came over the wire. */
  readonly texts: string[] = []
  private readonly socket: WebSocket

  /** Settles when the socket opens; made at once, since the open event may come before anyone waits. */
  readonly opened: Promise<void>

  constructor(baseUrl: string, kind: Kind, token: string) {
    this.socket = new WebSocket(`${baseUrl.replace('http', 'ws')}/sub/me/${kind}?authorization=${token}`)
    this.socket.onmessage = (event) => {
      this.texts.push(String(event.data))
      this.bodies.push(JSON.parse(String(event.data)) as Envelope & Body)
    }
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = () => resolve()
      this.socket.onerror = () => reject(new Error(`the WebSocket of sub/me/${kind} did not open`))
    })
  }

  /** The last body without its envelope. */
  last(): Body | undefined {
    const body = this.bodies.at(-1)
    return body && withoutEnvelope(body)
  }

  close(): void {
    this.socket.close()
  }
}

let template = ''
/** 268's bodies while talking to 233 in the first transcript, for the version 1 parser below. */
let legacySample: { users: string; calls: string } | null = null

/** The directory every scenario starts from, made once with the CLI: users add hashes passwords slowly. */
async function directoryTemplate(): Promise<string> {
  const maker = new ServerProcess(mkdtempSync(join(tmpdir(), 'softphone-replay-')))
  for (const [ext, name] of Object.entries(NAMES)) await maker.addUser(ext, PASSWORD, ['--name', name, ...(ext === ADMIN ? ['--role', 'admin'] : [])])
  return maker.dataDir
}

beforeAll(async () => {
  template = await directoryTemplate()
}, 60_000)
afterAll(() => rmSync(template, { recursive: true, force: true }))

function replay(scenario: Scenario): void {
  describe(scenario.title ?? scenario.transcript, () => {
    const viewers = [...scenario.viewers, ADMIN]
    const steps = loadTranscript(scenario.transcript)
    let simulator: AmiSimulator
    let server: ServerProcess
    let player: ReplayPlayer
    const subscribers = new Map<string, Subscriber>()
    const subscriber = (viewer: string, kind: Kind) => subscribers.get(`${viewer} ${kind}`)!

    beforeAll(async () => {
      simulator = await AmiSimulator.start()
      pbx(simulator)
      if (scenario.queue) addQueue(simulator)
      player = new ReplayPlayer(simulator, steps)
      const dataDir = mkdtempSync(join(tmpdir(), 'softphone-replay-run-'))
      cpSync(template, dataDir, { recursive: true })
      server = new ServerProcess(dataDir)
      const configFile = join(dataDir, 'replay.toml')
      writeFileSync(configFile, scenario.config ?? '')
      await server.start(['--config', configFile], {
        SOFTPHONE_AMI: 'on',
        SOFTPHONE_AMI_PORT: String(simulator.port),
        SOFTPHONE_AMI_USERNAME: SIM_USERNAME,
        SOFTPHONE_AMI_SECRET: SIM_SECRET,
      })
      for (const viewer of viewers) {
        const token = (await server.login(viewer, PASSWORD)).access_token
        for (const kind of KINDS) subscribers.set(`${viewer} ${kind}`, new Subscriber(server.baseUrl, kind, token))
      }
      await Promise.all([...subscribers.values()].map((each) => each.opened))
    }, 30_000)
    afterAll(async () => {
      for (const each of subscribers.values()) each.close()
      await server?.cleanup()
      await simulator?.stop()
    })

    const wantedOf = (expected: Scenario['steps'][string]) => (viewer: string, kind: Kind) => {
      const view = viewOf(viewer, expected, scenario.queue === true)
      return kind === 'users-state' ? { states: view.states } : { calls: view.calls }
    }

    /** Waits until every viewer holds its expected bodies, then asserts them: a mismatch shows its diff. */
    async function expectViews(expected: Scenario['steps'][string], boundMs: number): Promise<void> {
      const wanted = wantedOf(expected)
      await within(boundMs, () => viewers.every((viewer) => KINDS.every((kind) => Bun.deepEquals(subscriber(viewer, kind).last(), wanted(viewer, kind)))))
      for (const viewer of viewers) {
        for (const kind of KINDS) expect({ viewer, kind, body: subscriber(viewer, kind).last() }).toEqual({ viewer, kind, body: wanted(viewer, kind) })
      }
    }

    test('at the start every viewer gets the idle snapshot it may see', async () => {
      await expectViews({ entries: {}, calls: [], sight: {} }, STEP_MS)
    }, STEP_MS + 5_000)

    for (const step of steps) {
      const expected = scenario.steps[step.name]
      if (!expected) throw new Error(`${scenario.transcript}: no expectation for step ${step.name}`)
      const names = viewers.map((viewer) => (viewer === ADMIN ? `admin ${viewer}` : viewer)).join(', ')
      test(`${step.name}: ${names} each get exactly their snapshot`, async () => {
        const restarts = step.actions.some((action) => action.kind === 'restart')
        const listsBefore = coreShowChannels(simulator)
        const seenBefore = new Map([...subscribers].map(([key, each]) => [key, each.bodies.length]))
        await player.play(step, {
          reloaded: async () => {
            if (!(await within(RECONNECT_BOUND_MS, () => simulator.loggedInCount > 0 && coreShowChannels(simulator) > listsBefore))) throw new Error('the binary did not reload after the AMI restart')
          },
        })
        // A step without events waits for what the reconciliation finds.
        await expectViews(expected, step.actions.length === 0 ? RECONCILE_BOUND_MS : restarts ? RECONNECT_BOUND_MS : STEP_MS)
        // While AMI was away and through the reload, nobody was ever told the call had ended.
        if (restarts) {
          const wanted = wantedOf(expected)
          for (const viewer of viewers) {
            for (const kind of KINDS) {
              const each = subscriber(viewer, kind)
              for (const body of each.bodies.slice(seenBefore.get(`${viewer} ${kind}`))) expect(withoutEnvelope(body)).toEqual(wanted(viewer, kind))
            }
          }
        }
        if (scenario === SCENARIOS[0] && step.name === 'answered') legacySample = { users: subscriber('268', 'users-state').texts.at(-1)!, calls: subscriber('268', 'active-calls').texts.at(-1)! }
      }, RECONCILE_BOUND_MS + 10_000)
    }

    test('envelope: schemaVersion 2, one instanceId for every body, a sequence that only grows', () => {
      const instances = new Set<string>()
      for (const each of subscribers.values()) {
        expect(each.bodies.length).toBeGreaterThan(0)
        for (const body of each.bodies) {
          expect(body.schemaVersion).toBe(2)
          expect(typeof body.generatedAt).toBe('number')
          instances.add(body.instanceId)
        }
        const sequences = each.bodies.map((body) => body.sequence)
        expect(sequences).toEqual([...sequences].sort((a, b) => a - b))
        expect(new Set(sequences).size).toBe(sequences.length)
      }
      expect(instances.size).toBe(1)
      expect([...instances][0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    })
  })
}

const coreShowChannels = (simulator: AmiSimulator): number => simulator.actions.filter((action) => action.get('Action')?.toLowerCase() === 'coreshowchannels').length

/** The transcripts' queue as QueueStatus lists it at the bootstrap: members 268 and 210, ringall. */
function addQueue(simulator: AmiSimulator): void {
  const members = QUEUE_MEMBERS.map((ext) => ({ location: `PJSIP/${ext}`, stateInterface: `PJSIP/${ext}`, name: NAMES[ext]!, status: 1, paused: false }))
  simulator.queues.push({ name: QUEUE, strategy: 'ringall', members, entries: [] })
}

for (const scenario of SCENARIOS) replay(scenario)

/** A version 1 client: it knew these fields only, read them as strings, and ignored everything else. */
function legacyUsersState(text: string): LegacyUsersState {
  const body = JSON.parse(text) as { states: Record<string, { name: unknown; state: unknown; channels?: Record<string, Record<string, unknown>> }> }
  const states: LegacyUsersState['states'] = {}
  for (const [ext, entry] of Object.entries(body.states)) {
    const channels: LegacyUsersState['states'][string]['channels'] = {}
    for (const [name, channel] of Object.entries(entry.channels ?? {})) channels[name] = { channel: String(channel.channel), number: String(channel.number), direction: String(channel.direction) }
    states[ext] = { name: String(entry.name), state: String(entry.state), channels }
  }
  return { states }
}

const LEGACY_CALL_FIELDS = ['start', 'answer', 'typeCall', 'src_chan', 'src_num', 'dst_chan', 'dst_num', 'did', 'linkedid'] as const
function legacyActiveCalls(text: string): Array<Record<string, unknown>> {
  const body = JSON.parse(text) as { calls: Array<Record<string, unknown>> }
  return body.calls.map((known) => {
    const call: Record<string, unknown> = Object.fromEntries(LEGACY_CALL_FIELDS.map((key) => [key, known[key]]))
    for (const list of ['calledChannels', 'bridgeChannels'] as const) call[list] = (known[list] as Array<Record<string, unknown>>).map((leg) => ({ channel: leg.channel, number: leg.number }))
    return call
  })
}

describe('a version 1 client parser reads the version 2 bodies unchanged', () => {
  test("268's users-state and active-calls while talking to 233 (01-basic-233-to-268, step answered)", () => {
    const s = 1_795_435_260
    expect(legacySample).not.toBeNull()
    const { users, calls } = legacySample!
    expect(legacyUsersState(users).states['268']).toEqual({
      name: 'Pavel Orlov',
      state: 'Up',
      channels: { 'PJSIP/268-000003d8': { channel: 'PJSIP/233-000003d7', number: '233', direction: 'incoming' } },
    })
    expect(legacyUsersState(users).states['204']).toEqual({ name: 'Marta Klein', state: 'Idle', channels: {} })
    expect(legacyActiveCalls(calls)).toEqual([
      {
        start: s,
        answer: s + 6,
        typeCall: 'inner',
        src_chan: 'PJSIP/233-000003d7',
        src_num: '233',
        dst_chan: 'PJSIP/268-000003d8',
        dst_num: '268',
        did: '',
        linkedid: `mikopbx-${s}.2101`,
        calledChannels: [],
        bridgeChannels: [
          { channel: 'PJSIP/233-000003d7', number: '233' },
          { channel: 'PJSIP/268-000003d8', number: '268' },
        ],
      },
    ])
  })
})
