/**
 * Personalised presence bench (README "Personalised presence", "Tests, CI and benchmarks"), two parts:
 * 1. delivery: the binary with AMI on against the AMI simulator (test/ami-simulator.ts) in this process, `--users` users
 *    (201…, added through the CLI, each logging in once) with a reachable endpoint each, `--presence-groups` of
 *    `--group-size` consecutive extensions. Every user opens `--per-user` EventSource subscribers on `sub/me/users-state`
 *    and `--active-calls-per-user` on `sub/me/active-calls`; `--legacy` more (spread over the users) sit on the shared
 *    `sub/users-state`, the baseline. Then `--calls` calls 201 → 202, played phase by phase (ring: Newchannel, DialBegin,
 *    Ringing; answer: DialEnd, bridge; hangup), each phase timed from just before the simulator's write to the arrival of
 *    the message showing it at the first and at the last subscriber of each group: p50 and p99 over the phases, and the
 *    me/legacy ratios. A message is the phase's when its envelope's `sequence` is at least the one an observer (a
 *    bystander's subscriber, parsed) first saw the callee in its new state with; the others are only scanned for the
 *    sequence, so the client's parsing doesn't delay the last arrival. `me/active-calls` counts only the subscribers of
 *    users who see the call (the caller, the callee and their group-mates, presence_scope_calls = "own"); the others
 *    must get nothing. Phases are spaced past the engine's publication window, so each is a lone event.
 *    The feed hands the legacy channel its message first, but every subscriber's frame is queued in the same turn and
 *    nothing is written before that turn ends: in one run the legacy subscribers wait for the personalised fan-out too.
 *    The shared channel as it was before the me channels, every subscriber on it, is the run with
 *    `--per-user 0 --active-calls-per-user 0 --legacy 1000`.
 * 2. cost: in this process, a PersonalFeed (src/presence/personal/) with `--users` users subscribed to both me channels
 *    (one subscriber each, plus one on each legacy channel), fed `--snapshots` full snapshots of `--users` employees with
 *    `--snapshot-calls` calls, each snapshot moving one call a step (ring, answer, hangup, as the engine publishes them):
 *    CPU time per snapshot delivered to every personalised channel, against the one legacy publish (JSON of the snapshot
 *    to the shared channel) of the same snapshots, as a ratio.
 * The server is pinned to CPU 0 and this process (simulator, subscribers) to CPU 1, when possible.
 *   node_modules/.bin/bun bench/presence-me.ts [--users 200] [--per-user 5] [--active-calls-per-user 1] [--legacy 5]
 *     [--calls 17] [--group-size 10] [--snapshots 100] [--snapshot-calls 20] [--only delivery,cost] [--json]
 * The issue sets no latency target; the one check (no me/active-calls message to a user who doesn't see the call) is
 * reported, not fatal: the exit code is 1 only when the bench itself broke.
 */
import { LocalBus } from '../src/presence/local-bus'
import { parseArgs } from 'node:util'
import type { Socket, SocketHandler } from 'bun'
import type { AccessGuard } from '../src/auth/access-guard'
import { systemClock } from '../src/clock'
import type { DirectoryUser } from '../src/directory/directory'
import { DEBOUNCE_MS } from '../src/pbx/state-engine'
import type { Channel } from '../src/presence/channel'
import { channelSpecs, PresenceHub, type Subscription } from '../src/presence/hub'
import { PersonalFeed } from '../src/presence/personal/personal-feed'
import { scopeRules } from '../src/presence/personal/scope'
import { SNAPSHOT_KINDS, SnapshotStamper, type SnapshotKind, type SnapshotOf, type ActiveCall, type ActiveCallsSnapshot, type ChannelEntry, type EmployeeEntry, type UsersStateSnapshot } from '../src/presence/snapshot'
import { AmiSimulator, SIM_SECRET, SIM_USERNAME, type SimContact } from '../test/ami-simulator'
import { BASE, type ServerProcess } from '../test/binary/server-process'
import {
  CLIENT_CPU,
  cpuMs,
  median,
  onExit,
  pinningUnavailable,
  pinProcess,
  positiveInt,
  printTable,
  progress,
  requireBinary,
  runBench,
  SERVER_CPU,
  verdict,
  withServer,
} from './common'

const PASSWORD = 'bench-presence-me-password'
const FIRST_EXTENSION = 201
const CALLER = '201'
const CALLEE = '202'
/** CLI commands and logins run this many at a time: each is mostly an argon2id hash. */
const CLI_PARALLEL = 4
const LOGIN_PARALLEL = 8
/** Subscribers opened at once; the next batch waits until this one is subscribed. */
const OPEN_BATCH = 200
const OPEN_TIMEOUT_MS = 20_000
const PHASE_TIMEOUT_MS = 10_000
const BOUND_MS = 20_000
const WARMUP_CALLS = 2
/** Between the last delivery of a phase and the next write: past the publication window, jittered against phase lock. */
const GAP_MS = { min: DEBOUNCE_MS + 5, max: DEBOUNCE_MS + 25 }
/** Quiet time after the last phase, in which me/active-calls bystanders must still get nothing. */
const SETTLE_MS = 300
/** The whole bench is killed after this, whatever it is doing. */
const WATCHDOG_MS = 5 * 60_000

const { values: options } = parseArgs({
  options: {
    users: { type: 'string', default: '200' },
    'per-user': { type: 'string', default: '5' },
    'active-calls-per-user': { type: 'string', default: '1' },
    legacy: { type: 'string', default: '5' },
    calls: { type: 'string', default: '17' },
    'group-size': { type: 'string', default: '10' },
    snapshots: { type: 'string', default: '100' },
    'snapshot-calls': { type: 'string', default: '20' },
    only: { type: 'string', default: 'delivery,cost' },
    json: { type: 'boolean', default: false },
  },
})
const userCount = positiveInt('--users', options.users)
const perUser = countOf('--per-user', options['per-user'])
const activeCallsPerUser = countOf('--active-calls-per-user', options['active-calls-per-user'])
const legacyCount = countOf('--legacy', options.legacy)
const calls = positiveInt('--calls', options.calls)
const groupSize = countOf('--group-size', options['group-size'])
const snapshots = positiveInt('--snapshots', options.snapshots)
const snapshotCalls = positiveInt('--snapshot-calls', options['snapshot-calls'])
const PARTS = ['delivery', 'cost'] as const
const parts = new Set(options.only.split(','))
if (parts.size === 0 || [...parts].some((part) => !(PARTS as readonly string[]).includes(part))) {
  console.error(`--only takes a comma-separated list of ${PARTS.join(', ')}, not ${JSON.stringify(options.only)}`)
  process.exit(1)
}
if (userCount < 3 || userCount > 60_000) {
  console.error('--users must be between 3 and 60000: the caller, the callee and a bystander at least')
  process.exit(1)
}
if (parts.has('cost') && snapshotCalls * 2 > userCount) {
  console.error('--snapshot-calls can be at most half of --users: each call is between two employees')
  process.exit(1)
}

const EXTENSIONS = Array.from({ length: userCount }, (_, i) => String(FIRST_EXTENSION + i))
/** The users-state observer: a user in neither party's group. */
const BYSTANDER = EXTENSIONS.at(-1)!
/** `--group-size` consecutive extensions per group, as presence_groups writes them. */
const GROUPS = groupSize === 0 ? [] : Array.from({ length: Math.ceil(userCount / groupSize) }, (_, g) => EXTENSIONS.slice(g * groupSize, (g + 1) * groupSize))
const groupOf = new Map(GROUPS.flatMap((group, g) => group.map((extension) => [extension, g] as const)))
const shareGroup = (a: string, b: string) => groupOf.has(a) && groupOf.get(a) === groupOf.get(b)
/** Who sees the call 201 → 202 on me/active-calls with presence_scope_calls = "own" (README "Personalised presence"). */
const seesTheCall = (extension: string) => [CALLER, CALLEE].some((party) => party === extension || shareGroup(party, extension))

// main() runs at the end of this file, once every constant below is initialised.

function countOf(name: string, text: string): number {
  return text === '0' ? 0 : positiveInt(name, text)
}

async function inBatches<T, R>(items: readonly T[], size: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = []
  for (let start = 0; start < items.length; start += size) results.push(...(await Promise.all(items.slice(start, start + size).map(run))))
  return results
}

/** Polls `done` every 5 ms; false after the timeout. */
async function waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  while (!done()) {
    if (performance.now() > deadline) return false
    await Bun.sleep(5)
  }
  return true
}

// ---------------------------------------------------------------------------------------------------------------
// Part 1: the PBX, the server on it, and the subscribers.

const amiEnv = (port: number) => ({ SOFTPHONE_AMI: 'on', SOFTPHONE_AMI_PORT: String(port), SOFTPHONE_AMI_USERNAME: SIM_USERNAME, SOFTPHONE_AMI_SECRET: SIM_SECRET })

function contactOf(extension: string): SimContact {
  const index = Number(extension) - FIRST_EXTENSION
  const address = `10.${index >> 16}.${(index >> 8) & 255}.${index & 255}:5060`
  return {
    uri: `sip:${extension}@${address}`,
    status: 'Reachable',
    userAgent: 'Softphone/1.0',
    regExpire: 1_795_438_800,
    viaAddress: address,
    callId: `call-id-${extension}`,
    roundtripUsec: 12_345,
  }
}

interface Pbx {
  simulator: AmiSimulator
  server: ServerProcess
  tokens: Map<string, string>
}

/** A subscriber's slots: its me subscribers, a legacy one at most, and one for the readiness poll. */
const maxPerUser = () => perUser + activeCallsPerUser + Math.ceil(legacyCount / userCount) + 1

async function startPbx(server: ServerProcess, pin: (pid: number) => void): Promise<Pbx> {
  const simulator = await AmiSimulator.start()
  onExit(() => simulator.stop())
  for (const name of EXTENSIONS) simulator.addEndpoint({ name, contacts: [contactOf(name)] })
  progress(`delivery: adding ${userCount} users through the CLI, ${CLI_PARALLEL} at a time`)
  await inBatches(EXTENSIONS, CLI_PARALLEL, (user) => server.addUser(user, PASSWORD, ['--name', `User ${user}`]))
  const args = ['--max-subscriptions-per-user', String(maxPerUser())]
  if (GROUPS.length > 0) args.push('--presence-groups', GROUPS.map((group) => group.join(' ')).join(','))
  await server.start(args, amiEnv(simulator.port))
  pin(server.pid!)
  progress(`delivery: ${userCount} logins, ${LOGIN_PARALLEL} at a time`)
  const tokens = await inBatches(EXTENSIONS, LOGIN_PARALLEL, async (user) => [user, (await server.login(user, PASSWORD)).access_token] as const)
  const pbx = { simulator, server, tokens: new Map(tokens) }
  await everyUserShown(pbx)
  return pbx
}

/** Waits until the bystander's me/users-state shows every user (the engine has loaded every endpoint). */
async function everyUserShown(pbx: Pbx): Promise<void> {
  const deadline = performance.now() + BOUND_MS
  for (;;) {
    const response = await fetch(`${pbx.server.baseUrl}/sub/me/users-state?authorization=${pbx.tokens.get(BYSTANDER)}`)
    const text = await response.text()
    if (response.status === 200 && EXTENSIONS.every((user) => user in (JSON.parse(text) as { states: Record<string, unknown> }).states)) return
    if (performance.now() > deadline) throw new Error(`sub/me/users-state did not show all ${userCount} users within ${BOUND_MS} ms: ${response.status} ${text.slice(0, 300)}`)
    await Bun.sleep(50)
  }
}

/** One message as a probe saw it: when the read holding its end arrived, and its envelope's sequence (NaN without). */
interface Arrival {
  at: number
  sequence: number
}

interface Watch {
  match: (body: string) => boolean
  resolve: (arrival: Arrival) => void
}

const NEWLINE = 0x0a
const BLOCK_END = '\n\n'
/** What is decoded of a message nobody parses: its envelope, `sequence` included, comes first (src/presence/personal/personalise.ts). */
const MESSAGE_HEAD_BYTES = 256

/**
 * An EventSource subscriber on a raw socket (HTTP/1.1 written by hand, as bench/presence.ts): each message's arrival
 * and sequence are noted; only a probe with a watch set parses bodies.
 */
class SseProbe {
  closed = false
  subscribed = false
  status = ''
  arrivals: Arrival[] = []
  watch: Watch | null = null
  /** The last body, kept only when asked for (a message that should not have come, shown in the report). */
  keepLast = false
  lastBody = ''
  socket!: Socket<SseProbe>
  private head = ''
  /** The current block as text: all of it while a body is wanted, else its first MESSAGE_HEAD_BYTES. */
  private pending = ''
  private endsInNewline = false

  constructor(
    readonly user: string,
    readonly channel: string,
  ) {}

  /** Blocks end at a blank line, found in the bytes: only the text a block needs is decoded. */
  receive(chunk: Buffer): void {
    const at = performance.now()
    let bytes = chunk
    if (!this.status) {
      this.head += chunk.toString('latin1')
      const end = this.head.indexOf('\r\n\r\n')
      if (end < 0) return
      this.status = this.head.slice(0, this.head.indexOf('\r\n'))
      bytes = Buffer.from(this.head.slice(end + 4), 'latin1')
      this.head = ''
    }
    let from = 0
    // A blank line split between two reads.
    if (this.endsInNewline && bytes[0] === NEWLINE) {
      this.block(at)
      from = 1
    }
    for (let end = bytes.indexOf(BLOCK_END, from); end >= 0; end = bytes.indexOf(BLOCK_END, from)) {
      this.collect(bytes.subarray(from, end))
      this.block(at)
      from = end + BLOCK_END.length
    }
    this.collect(bytes.subarray(from))
    this.endsInNewline = bytes.length > from && bytes[bytes.length - 1] === NEWLINE
  }

  private collect(bytes: Buffer): void {
    const room = this.watch || this.keepLast ? bytes.length : MESSAGE_HEAD_BYTES - this.pending.length
    if (room > 0) this.pending += bytes.subarray(0, room).toString('latin1')
  }

  /** One SSE block: the opening comment, a heartbeat, or a message (its body on one `data:` line, JSON has no line breaks). */
  private block(at: number): void {
    const block = this.pending
    this.pending = ''
    if (block.includes(': softphone-backend')) this.subscribed = true
    const start = block.indexOf('data: ')
    if (start < 0) return
    const end = block.indexOf('\n', start)
    const body = block.slice(start + 'data: '.length, end < 0 ? undefined : end)
    const arrival = { at, sequence: sequenceOf(body) }
    this.arrivals.push(arrival)
    if (this.keepLast) this.lastBody = body
    if (this.watch?.match(body)) {
      const { resolve } = this.watch
      this.watch = null
      resolve(arrival)
    }
  }

  /** The first arrival since the last reset with a sequence of at least `sequence`. */
  arrivalFrom(sequence: number): Arrival | undefined {
    return this.arrivals.find((arrival) => arrival.sequence >= sequence)
  }
}

/** The envelope's `"sequence":N`, found without parsing the body. */
function sequenceOf(body: string): number {
  const key = body.indexOf('"sequence":')
  if (key < 0) return Number.NaN
  const match = /^\d+/.exec(body.slice(key + '"sequence":'.length, key + '"sequence":'.length + 20))
  return match ? Number(match[0]) : Number.NaN
}

const PROBE_HANDLERS: SocketHandler<SseProbe> = {
  data: (socket, chunk) => socket.data.receive(chunk),
  close: (socket) => void (socket.data.closed = true),
  error: (socket) => void (socket.data.closed = true),
}

async function openProbe(pbx: Pbx, user: string, channel: string): Promise<SseProbe> {
  const probe = new SseProbe(user, channel)
  const { port } = pbx.server
  probe.socket = await Bun.connect({ hostname: '127.0.0.1', port, data: probe, socket: PROBE_HANDLERS })
  onExit(() => probe.socket.terminate())
  probe.socket.write(
    [`GET ${BASE}/sub/${channel}?authorization=${pbx.tokens.get(user)} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Accept: text/event-stream', '', ''].join('\r\n'),
  )
  return probe
}

/** Opens `specs` in batches, each batch subscribed (its opening comment read) before the next. */
async function openProbes(pbx: Pbx, specs: Array<{ user: string; channel: string }>): Promise<SseProbe[]> {
  const probes: SseProbe[] = []
  for (let start = 0; start < specs.length; start += OPEN_BATCH) {
    const batch = await Promise.all(specs.slice(start, start + OPEN_BATCH).map(({ user, channel }) => openProbe(pbx, user, channel)))
    probes.push(...batch)
    const ok = await waitFor(() => batch.every((probe) => probe.subscribed || probe.closed || (probe.status !== '' && !probe.status.includes(' 200'))), OPEN_TIMEOUT_MS)
    const failed = batch.find((probe) => !probe.subscribed)
    if (!ok || failed) throw new Error(`subscriber ${failed?.user} on sub/${failed?.channel} did not open: ${failed?.status || (failed?.closed ? 'closed' : 'timed out')}`)
  }
  return probes
}

/** Subscribers whose message for one phase is timed together, and the one that says which message that is. */
interface Group {
  name: string
  probes: SseProbe[]
  observer: SseProbe
  /** Whether a body shows the phase done. */
  shows: (phase: Phase) => (body: string) => boolean
  samples: Array<{ first: number; last: number; reached: number }>
}

type Phase = 'ring' | 'answer' | 'hangup'
const PHASES: readonly Phase[] = ['ring', 'answer', 'hangup']
const CALLEE_STATE: Record<Phase, string> = { ring: 'Ringing', answer: 'Up', hangup: 'Idle' }

const calleeShows = (phase: Phase) => (body: string) => (JSON.parse(body) as { states: Record<string, { state: string }> }).states[CALLEE]?.state === CALLEE_STATE[phase]

function callShows(phase: Phase) {
  return (body: string) => {
    const { calls: active } = JSON.parse(body) as { calls: Array<{ answer: number | '' }> }
    if (phase === 'hangup') return active.length === 0
    return active.length === 1 && (phase === 'ring' ? active[0]!.answer === '' : active[0]!.answer !== '')
  }
}

interface Delivery {
  groups: Array<{ name: string; subscribers: number; first: Stats; last: Stats; reachedMin: number }>
  phases: number
  /** Messages to me/active-calls subscribers of users who don't see the call: must be 0. */
  strayActiveCalls: number
  /** One of them, with its user, when there were any. */
  strayExample: string
  serverCpuMsPerPhase: number
  /** This process's: the simulator and every subscriber's reads. */
  selfCpuMsPerPhase: number
  serverStderr: string
}

interface Stats {
  p50: number
  p99: number
  max: number
}

function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN }
}

/** Writes a phase and times its message at every group's first and last subscriber. */
async function timePhase(groups: Group[], phase: Phase, write: () => void, record: boolean): Promise<void> {
  for (const group of groups) for (const probe of group.probes) probe.arrivals = []
  const observed = groups.map((group) => new Promise<Arrival>((resolve) => (group.observer.watch = { match: group.shows(phase), resolve })))
  const start = performance.now()
  write()
  for (const [index, group] of groups.entries()) {
    const seen = await Promise.race([observed[index]!, Bun.sleep(PHASE_TIMEOUT_MS).then(() => null)])
    if (!seen) throw new Error(`${group.name}: no message showing the ${phase} within ${PHASE_TIMEOUT_MS} ms`)
    await waitFor(() => group.probes.every((probe) => probe.arrivalFrom(seen.sequence) || probe.closed), PHASE_TIMEOUT_MS)
    const times = group.probes.flatMap((probe) => {
      const arrival = probe.arrivalFrom(seen.sequence)
      return arrival ? [arrival.at - start] : []
    })
    if (record) group.samples.push({ first: Math.min(...times), last: Math.max(...times), reached: times.length })
  }
  await Bun.sleep(GAP_MS.min + Math.random() * (GAP_MS.max - GAP_MS.min))
}

/**
 * Warm-up calls, then `--calls` timed ones, phase by phase; `beforeTimed` runs between the two.
 * The server's CPU per timed phase comes back.
 */
async function playCalls(pbx: Pbx, groups: Group[], beforeTimed: () => void): Promise<{ cpuMsPerPhase: number; selfCpuMsPerPhase: number }> {
  progress(`delivery: ${WARMUP_CALLS} warm-up + ${calls} calls ${CALLER} → ${CALLEE}, ring, answer and hangup each timed`)
  const cpuBefore = { server: 0, self: 0 }
  for (let i = 0; i < WARMUP_CALLS + calls; i++) {
    const record = i >= WARMUP_CALLS
    if (i === WARMUP_CALLS) {
      beforeTimed()
      Object.assign(cpuBefore, { server: cpuMs(pbx.server.pid!), self: cpuMs(process.pid) })
    }
    let call!: ReturnType<AmiSimulator['startCall']>
    const writes: Record<Phase, () => void> = {
      ring: () => (call = pbx.simulator.startCall(CALLER, CALLEE)),
      answer: () => call.answer(),
      hangup: () => call.hangup(),
    }
    for (const phase of PHASES) await timePhase(groups, phase, writes[phase], record)
  }
  const perPhase = (used: number) => used / (calls * PHASES.length)
  return { cpuMsPerPhase: perPhase(cpuMs(pbx.server.pid!) - cpuBefore.server), selfCpuMsPerPhase: perPhase(cpuMs(process.pid) - cpuBefore.self) }
}

async function measureDelivery(pin: (pid: number) => void): Promise<Delivery> {
  return withServer(async (server) => {
    const pbx = await startPbx(server, pin)
    const specs = [
      ...EXTENSIONS.flatMap((user) => Array.from({ length: perUser }, () => ({ user, channel: 'me/users-state' }))),
      ...EXTENSIONS.flatMap((user) => Array.from({ length: activeCallsPerUser }, () => ({ user, channel: 'me/active-calls' }))),
      ...Array.from({ length: legacyCount }, (_, i) => ({ user: EXTENSIONS[i % userCount]!, channel: 'users-state' })),
    ]
    progress(`delivery: opening ${specs.length} EventSource subscribers, ${OPEN_BATCH} at a time`)
    const probes = await openProbes(pbx, specs)
    const on = (channel: string) => probes.filter((probe) => probe.channel === channel)
    const meUsersState = on('me/users-state')
    const meActiveCalls = on('me/active-calls')
    const group = (name: string, members: SseProbe[], observer: SseProbe | undefined, shows: Group['shows']): Group[] =>
      members.length > 0 && observer ? [{ name, probes: members, observer, shows, samples: [] }] : []
    const groups = [
      ...group('me/users-state', meUsersState, meUsersState.find((probe) => probe.user === BYSTANDER), calleeShows),
      ...group('me/active-calls (who sees the call)', meActiveCalls.filter((probe) => seesTheCall(probe.user)), meActiveCalls.find((probe) => probe.user === CALLER), callShows),
      ...group('legacy users-state', on('users-state'), on('users-state')[0], calleeShows),
    ]
    const bystanders = meActiveCalls.filter((probe) => !seesTheCall(probe.user))

    for (const probe of bystanders) probe.keepLast = true
    const { cpuMsPerPhase, selfCpuMsPerPhase } = await playCalls(pbx, groups, () => {
      for (const probe of bystanders) probe.arrivals = []
    })
    await Bun.sleep(SETTLE_MS)
    const strays = bystanders.filter((probe) => probe.arrivals.length > 0)
    const closed = probes.filter((probe) => probe.closed).length
    if (closed > 0) throw new Error(`${closed} subscribers were closed during the run`)
    for (const probe of probes) probe.socket.end()
    return {
      groups: groups.map((g) => ({
        name: g.name,
        subscribers: g.probes.length,
        first: stats(g.samples.map((s) => s.first)),
        last: stats(g.samples.map((s) => s.last)),
        reachedMin: Math.min(...g.samples.map((s) => s.reached)),
      })),
      phases: calls * PHASES.length,
      strayActiveCalls: strays.reduce((sum, probe) => sum + probe.arrivals.length, 0),
      strayExample: strays[0] ? `${strays[0].user}: ${strays[0].lastBody.slice(0, 300)}` : '',
      serverCpuMsPerPhase: cpuMsPerPhase,
      selfCpuMsPerPhase,
      serverStderr: server.stderr.trim(),
    }
  })
}

function printDelivery(delivery: Delivery): void {
  const subscribers = (name: string) => delivery.groups.find((g) => g.name.startsWith(name))?.subscribers ?? 0
  console.log(`\n1. AMI event → personalised EventSource message (simulator write → message read at a group's first / last subscriber, ms)`)
  console.log(`   ${userCount} users, groups of ${groupSize || 'none'}; ${perUser} me/users-state + ${activeCallsPerUser} me/active-calls subscribers per user, ${legacyCount} on the legacy users-state`)
  console.log(`   ${calls} calls ${CALLER} → ${CALLEE}: ${delivery.phases} phases (ring, answer, hangup), each spaced past the ${DEBOUNCE_MS} ms publication window`)
  console.log(`   CPU per phase: server ${delivery.serverCpuMsPerPhase.toFixed(1)} ms (the engine, the feed, every subscriber's frame and write), this process ${delivery.selfCpuMsPerPhase.toFixed(1)} ms (the reads)`)
  console.log(`   me/active-calls subscribers of users who don't see the call: ${delivery.strayActiveCalls} messages (must be 0): ${verdict(delivery.strayActiveCalls === 0)}`)
  if (delivery.strayExample) console.log(`   one of them: ${delivery.strayExample}`)
  console.log()
  const ms = (value: number) => value.toFixed(1)
  printTable([
    ['group', 'subscribers', 'reached (min)', 'first p50', 'first p99', 'last p50', 'last p99', 'last max'],
    ...delivery.groups.map((g) => [g.name, String(g.subscribers), String(g.reachedMin), ms(g.first.p50), ms(g.first.p99), ms(g.last.p50), ms(g.last.p99), ms(g.last.max)]),
  ])
  const me = delivery.groups.find((g) => g.name === 'me/users-state')
  const legacy = delivery.groups.find((g) => g.name === 'legacy users-state')
  if (me && legacy) {
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)} x`
    console.log(`\n   me/legacy (${subscribers('me/users-state')} vs ${subscribers('legacy')} subscribers): first p50 ${ratio(me.first.p50, legacy.first.p50)}, p99 ${ratio(me.first.p99, legacy.first.p99)};`)
    console.log(`   last p50 ${ratio(me.last.p50, legacy.last.p50)}, p99 ${ratio(me.last.p99, legacy.last.p99)}`)
    console.log(`   (the legacy frames are queued in the same turn as the personalised ones, so the legacy first waits for the whole fan-out;`)
    console.log(`   every subscriber on the shared channel instead: --per-user 0 --active-calls-per-user 0 --legacy ${perUser * userCount})`)
  }
  if (delivery.serverStderr) console.log(`   server stderr: ${JSON.stringify(delivery.serverStderr.slice(0, 300))}`)
}

// ---------------------------------------------------------------------------------------------------------------
// Part 2: the cost of personalisation, in process.

interface SnapshotPair {
  usersState: UsersStateSnapshot
  activeCalls: ActiveCallsSnapshot
}

/** A call between two employees: ringing, or answered and bridged; `serial` makes its ids. */
interface CallSlot {
  caller: string
  callee: string
  answered: boolean
  serial: number
}

const hex8 = (value: number): string => value.toString(16).padStart(8, '0')

function legsOf(slot: CallSlot) {
  const leg = (extension: string, offset: number) => {
    const id = slot.serial * 2 + offset
    return { extension, channel: `PJSIP/${extension}-${hex8(id)}`, uniqueid: `1795435200.${id}`, channelId: hex8(id) }
  }
  return { caller: leg(slot.caller, 0), callee: leg(slot.callee, 1), linkedid: `1795435200.${slot.serial * 2}` }
}

/** The users-state entries of a call's two parties, as the engine writes them (README "Presence snapshots, schema version 2"). */
function partyEntries(slot: CallSlot): Array<[string, EmployeeEntry]> {
  const { caller, callee, linkedid } = legsOf(slot)
  const entry = (own: typeof caller, other: typeof caller, incoming: boolean): EmployeeEntry => ({
    name: `User ${own.extension}`,
    state: incoming && !slot.answered ? 'Ringing' : 'Up',
    channels: {
      [own.channel]: {
        channel: other.channel,
        number: other.extension,
        direction: incoming ? 'incoming' : 'outgoing',
        linkedid,
        uniqueid: own.uniqueid,
        channelId: own.channelId,
        answerState: slot.answered ? 'bridged' : incoming ? 'ringing' : 'dialing',
        pickupAvailable: incoming && !slot.answered,
      },
    },
  })
  return [
    [caller.extension, entry(caller, callee, false)],
    [callee.extension, entry(callee, caller, true)],
  ]
}

function activeCallOf(slot: CallSlot): ActiveCall {
  const { caller, callee, linkedid } = legsOf(slot)
  const start = 1_795_435_200 + slot.serial
  const leg = (party: typeof caller, answerState: ChannelEntry['answerState']) => ({ channel: party.channel, number: party.extension, uniqueid: party.uniqueid, channelId: party.channelId, answerState })
  return {
    start,
    answer: slot.answered ? start + 5 : '',
    typeCall: 'inner',
    src_chan: caller.channel,
    src_num: caller.extension,
    dst_chan: callee.channel,
    dst_num: callee.extension,
    did: '',
    linkedid,
    calledChannels: [leg(callee, slot.answered ? 'bridged' : 'ringing')],
    bridgeChannels: slot.answered ? [leg(caller, 'bridged'), leg(callee, 'bridged')] : [],
  }
}

/**
 * `count` full snapshots of every user and one queue (the first group its members), with `--snapshot-calls` calls
 * between neighbours (201 ↔ 202, 203 ↔ 204, …); each moves one call a step: a ringing one is answered, an answered
 * one hung up and replaced by a new ringing one between the same pair. So every snapshot changes two employees.
 */
function buildSnapshots(count: number): SnapshotPair[] {
  const stamper = new SnapshotStamper(systemClock)
  let serial = 0
  const slots: CallSlot[] = Array.from({ length: snapshotCalls }, (_, k) => ({ caller: EXTENSIONS[2 * k]!, callee: EXTENSIONS[2 * k + 1]!, answered: k % 2 === 0, serial: serial++ }))
  const pairs: SnapshotPair[] = []
  for (let i = 0; i < count; i++) {
    const slot = slots[i % slots.length]!
    if (slot.answered) Object.assign(slot, { answered: false, serial: serial++ })
    else slot.answered = true
    const states: Record<string, EmployeeEntry> = Object.fromEntries(EXTENSIONS.map((extension) => [extension, { name: `User ${extension}`, state: 'Idle', channels: {} }]))
    for (const busy of slots) Object.assign(states, Object.fromEntries(partyEntries(busy)))
    states['queue-support'] = { name: 'Support', state: 'Idle', channels: {}, isQueue: true, members: GROUPS[0] ?? [CALLER] }
    pairs.push({ usersState: stamper.stamp<'users-state'>({ states }), activeCalls: stamper.stamp<'active-calls'>({ calls: slots.map(activeCallOf) }) })
  }
  return pairs
}

/** Every user, a plain user of the embedded directory. */
const directoryUser = (username: string, id: number): DirectoryUser => ({ id, username, displayName: `User ${username}`, role: 'user', mobile: '', disabled: false })

interface KindCost {
  /** CPU µs per snapshot, median over the rounds: the legacy publish, and the feed's personalisation for every user. */
  legacyUs: number
  personalUs: number
  /** Messages the personalised channels published per snapshot (bodies that changed). */
  personalMessages: number
}

interface Cost {
  byKind: Record<SnapshotKind, KindCost>
  rounds: number
}

const COST_ROUNDS = 5

/** A subscriber that takes every message: the transports' own writes are not in this part (part 1's server CPU has them). */
function countingSubscription(hub: PresenceHub, username: string, channel: Channel, counter: { messages: number }): void {
  const subscription: Subscription = {
    username,
    transport: 'eventsource',
    token: '',
    deliver: () => {
      counter.messages++
      return true
    },
    close: () => hub.unsubscribe(subscription),
  }
  if (!hub.acquire(username)) throw new Error(`no subscription slot for ${username}`)
  hub.subscribe(channel, subscription)
}

function cpuMicros(run: () => void): number {
  const before = process.cpuUsage()
  run()
  const used = process.cpuUsage(before)
  return used.user + used.system
}

/** The feed and the shared channels on one hub, every user subscribed to both me channels and both legacy ones. */
function feedWithSubscribers(): { hub: PresenceHub; feed: PersonalFeed; personal: Record<SnapshotKind, { messages: number }> } {
  // The hub's sweep never runs during the measure, so its guard is never asked.
  const hub = new PresenceHub({ channels: channelSpecs([]), maxPerUser: 10, sweepMs: 3_600_000 }, {} as AccessGuard, systemClock)
  const users = new Map(EXTENSIONS.map((username, i) => [username, directoryUser(username, i + 1)]))
  const rules = scopeRules({ presence_scope_states: 'all', presence_scope_calls: 'own', presence_groups: GROUPS.map((group) => group.join(' ')) })
  const feed = new PersonalFeed({ hub, clock: systemClock, directory: { findByUsername: (name) => users.get(name) ?? null }, rules, legacy: false, bus: new LocalBus(systemClock) })
  const personal = { 'users-state': { messages: 0 }, 'active-calls': { messages: 0 } }
  const legacy = { messages: 0 }
  for (const username of EXTENSIONS) {
    for (const kind of SNAPSHOT_KINDS) {
      countingSubscription(hub, username, feed.channelFor(kind, username), personal[kind])
      countingSubscription(hub, username, hub.channel(kind)!, legacy)
    }
  }
  return { hub, feed, personal }
}

function measureCost(): Cost {
  progress(`cost: building ${snapshots} snapshots of ${userCount} employees with ${snapshotCalls} calls`)
  const pairs = buildSnapshots(snapshots)
  const { hub, feed, personal } = feedWithSubscribers()
  const snapshotsOf = <K extends SnapshotKind>(kind: K) => pairs.map((pair) => (kind === 'users-state' ? pair.usersState : pair.activeCalls) as SnapshotOf<K>)
  const legacyPass = (kind: SnapshotKind) => {
    const list = snapshotsOf(kind)
    return cpuMicros(() => {
      for (const snapshot of list) hub.publish(hub.channel(kind)!, JSON.stringify(snapshot), 'application/json')
    })
  }
  const personalPass = (kind: SnapshotKind) => {
    const list = snapshotsOf(kind)
    return cpuMicros(() => {
      for (const snapshot of list) feed.full(kind, snapshot)
    })
  }
  progress(`cost: a warm-up pass, then ${COST_ROUNDS} rounds of ${snapshots} snapshots of each kind, legacy and personalised alternating`)
  const samples = Object.fromEntries(SNAPSHOT_KINDS.map((kind) => [kind, { legacy: [] as number[], personal: [] as number[] }]))
  for (let round = 0; round <= COST_ROUNDS; round++) {
    for (const kind of SNAPSHOT_KINDS) {
      if (round === 1) personal[kind].messages = 0
      const [legacyUs, personalUs] = [legacyPass(kind) / snapshots, personalPass(kind) / snapshots]
      // Round 0 is the warm-up: the JIT, and the feed's first look at every channel.
      if (round === 0) continue
      samples[kind]!.legacy.push(legacyUs)
      samples[kind]!.personal.push(personalUs)
    }
  }
  hub.shutdown()
  const costOf = (kind: SnapshotKind): KindCost => ({
    legacyUs: median(samples[kind]!.legacy),
    personalUs: median(samples[kind]!.personal),
    personalMessages: personal[kind].messages / (snapshots * COST_ROUNDS),
  })
  return { byKind: { 'users-state': costOf('users-state'), 'active-calls': costOf('active-calls') }, rounds: COST_ROUNDS }
}

function printCost(cost: Cost): void {
  console.log(`\n2. personalisation in process: a PersonalFeed with ${userCount} users, each subscribed to both me channels and both legacy ones`)
  console.log(`   ${snapshots} full snapshots of each kind, ${userCount} employees and ${snapshotCalls} calls, one call moved a step each;`)
  console.log(`   CPU µs per snapshot, median of ${cost.rounds} rounds; subscribers only count messages (their transports' writes are in part 1)\n`)
  const us = (value: number) => value.toFixed(0)
  const total = (pick: (c: KindCost) => number) => SNAPSHOT_KINDS.reduce((sum, kind) => sum + pick(cost.byKind[kind]), 0)
  const row = (name: string, legacyUs: number, personalUs: number, messages: number) => [
    name,
    us(legacyUs),
    us(personalUs),
    messages.toFixed(0),
    (personalUs / userCount).toFixed(1),
    `${(personalUs / legacyUs).toFixed(1)} x`,
  ]
  printTable([
    ['snapshot', 'legacy µs (JSON once, shared channel)', `personalised µs (${userCount} users)`, 'me messages', 'µs per user', 'personalised / legacy'],
    ...SNAPSHOT_KINDS.map((kind) => row(kind, cost.byKind[kind].legacyUs, cost.byKind[kind].personalUs, cost.byKind[kind].personalMessages)),
    row('both (one event)', total((c) => c.legacyUs), total((c) => c.personalUs), total((c) => c.personalMessages)),
  ])
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; numbers will be noisier`)
  else pinProcess(process.pid, CLIENT_CPU)
  const pin = (pid: number) => {
    if (!unpinnedWhy) pinProcess(pid, SERVER_CPU)
  }
  let delivery: Delivery | null = null
  if (parts.has('delivery')) {
    requireBinary()
    delivery = await measureDelivery(pin)
  }
  const cost = parts.has('cost') ? measureCost() : null
  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `server pinned to CPU ${SERVER_CPU}, this process (simulator, subscribers) to CPU ${CLIENT_CPU}`
  console.log(`\npersonalised presence bench: loopback; ${pinning}; Bun ${Bun.version}`)
  if (delivery) printDelivery(delivery)
  if (cost) printCost(cost)
  if (options.json) {
    const settings = { userCount, perUser, activeCallsPerUser, legacyCount, calls, groupSize, snapshots, snapshotCalls, pinning, bun: Bun.version }
    console.log(JSON.stringify({ settings, delivery, cost }, null, 2))
  }
}

await runBench(main, { watchdogMs: WATCHDOG_MS })
