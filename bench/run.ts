/**
 * Performance bench (README "Tests, CI and benchmarks"): our compiled binary as ratios to a raw Bun.serve baseline, in one run on loopback.
 * The baseline, the binary and wrk are three separate processes; every target gets the same wrk settings.
 * Servers are pinned to CPU 0 and wrk to CPU 1 (when possible), and the load is repeated in rounds, each
 * measuring the baseline and then every target, so each ratio is against its own round's baseline and
 * slow drift on the machine hits all alike; the table shows the median ratio over the rounds and its range.
 * check-media-access runs twice: against the main server in recordings_access = "owner" (the default, reading a CDR
 * fixture where the asked-for recording is 201's) and against a second one in "any"; the owner/any ratio per round is
 * printed, and owner must keep 80 % of any's req/s (README "Recordings: check-media-access").
 * After the rounds, a login storm (skip with --skip-storm): 64 connections of bad logins (bench/bad-login.lua) on a
 * fresh server, once from one address (throttled to 429s) and once from random addresses (every login an argon2id
 * verify), while a second wrk with 4 connections measures /health p99, which must stay under 50 ms.
 *   node_modules/.bin/bun bench/run.ts [--duration 10] [--rounds 3] [--connections 64] [--skip-storm] [--json]
 * Missing a target is reported, not fatal: the exit code is 1 only when the bench itself broke.
 */
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BINARY, ServerProcess } from '../test/binary/server-process'
import { createCdrFixture, FIXTURE_ROWS, leg, MONITOR } from '../test/cdr-fixture'
import {
  CLIENT_CPU as WRK_CPU,
  get,
  median,
  onExit,
  pinningUnavailable,
  pinProcess,
  positiveInt,
  printTable,
  progress,
  requireBinary,
  rssKiB,
  runBench,
  startBaseline,
  runWrk,
  SERVER_CPU,
  TASKSET,
  verdict,
  withServer,
  WRK,
} from './common'

/** The first round warms the JIT and caches up; later rounds only need the connections re-opened. */
const FIRST_WARMUP_SECONDS = 2
const WARMUP_SECONDS = 1
const STARTS = 5
const USER = { name: '201', password: 'bench-password-201' }
/** A recording as MikoPBX names it: `<monitor dir>/Y/m/d/H/<uniqueid>.mp3`. */
const RECORDING_UNIQUEID = 'mikopbx-1732370000.12_Ab3dEf'
const RECORDING_RELATIVE = `2026/11/23/14/${RECORDING_UNIQUEID}.mp3`
const RECORDING_URI = `/pbxcore/softphone/recordings/${RECORDING_RELATIVE}`
/** The CDR leg that made RECORDING_URI: 201's call, so owner mode allows 201. */
const RECORDING_LEG = leg('L-bench', '14:00:00', '201', '202', {
  talk: 30,
  extra: { UNIQUEID: RECORDING_UNIQUEID, recordingfile: `${MONITOR}/${RECORDING_RELATIVE}` },
})
/** recordings_access = "owner" may cost check-media-access at most this share of "any"'s req/s. */
const OWNER_MIN_PCT_OF_ANY = 80
const MiB = 1024 * 1024
const STORM_SCRIPT = join(import.meta.dir, 'bad-login.lua')
const STORM_CONNECTIONS = 64
const PROBE_CONNECTIONS = 4
/** The storm starts this long before the /health probe and ends this long after it. */
const STORM_MARGIN_SECONDS = 1
/** Queued logins wait for the hash pool, so they may take longer than wrk's default 2 s timeout. */
const STORM_TIMEOUT = '10s'
const HEALTH_P99_LIMIT_MS = 50
const STORMS = [
  { name: 'one address', mode: 'one', addresses: 'X-Real-IP 203.0.113.7' },
  { name: 'distributed', mode: 'distributed', addresses: 'random X-Real-IP 10.x.y.z' },
] as const

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    json: { type: 'boolean', default: false },
    'skip-storm': { type: 'boolean', default: false },
  },
})
const duration = positiveInt('--duration', options.duration)
const rounds = positiveInt('--rounds', options.rounds)
const connections = positiveInt('--connections', options.connections)

await runBench(main)

interface Target {
  name: string
  url: string
  headers: Record<string, string>
  spec?: { minRpsPct: number; maxP99x?: number }
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found; install it with: apt-get install wrk`)
  requireBinary()
  const binaryMiB = statSync(BINARY).size / MiB

  // Start-up first, while nothing else runs on the machine.
  progress(`measuring start-up (${STARTS} starts)`)
  const startup = await measureStartup()

  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  const pin = (pid: number) => {
    if (!unpinnedWhy) pinProcess(pid, SERVER_CPU)
  }

  const baseline = await startBaseline()
  pin(baseline.pid)
  const server = new ServerProcess()
  onExit(() => server.cleanup())
  await server.addUser(USER.name, USER.password)
  const cdrPath = join(server.dataDir, 'cdr.db')
  createCdrFixture(cdrPath, { rows: [...FIXTURE_ROWS, RECORDING_LEG] })
  await server.start(['--cdr-db', cdrPath])
  const pid = server.pid!
  pin(pid)
  // Idle while the others are measured, so it doesn't take their CPU.
  const anyServer = new ServerProcess()
  onExit(() => anyServer.cleanup())
  await anyServer.addUser(USER.name, USER.password)
  await anyServer.start(['--recordings-access', 'any'])
  pin(anyServer.pid!)
  const anyBearer = { Authorization: `Bearer ${(await anyServer.login(USER.name, USER.password)).access_token}` }
  await Bun.sleep(1000)
  const idleRssMiB = rssKiB(pid) / 1024
  const { access_token } = await server.login(USER.name, USER.password)
  const bearer = { Authorization: `Bearer ${access_token}` }

  const targets: Target[] = [
    { name: 'baseline', url: baseline.url, headers: {} },
    { name: 'health', url: `${server.baseUrl}/health`, headers: {} },
    // As nginx's auth_request sends it, so the recording path check runs too (README "Recordings: check-media-access").
    { name: 'check-media-access', url: `${server.baseUrl}/check-media-access`, headers: { ...bearer, 'X-Original-URI': RECORDING_URI }, spec: { minRpsPct: 60, maxP99x: 2 } },
    {
      name: 'check-media-access (any)',
      url: `${anyServer.baseUrl}/check-media-access`,
      headers: { ...anyBearer, 'X-Original-URI': RECORDING_URI },
      spec: { minRpsPct: 60, maxP99x: 2 },
    },
    { name: 'profile', url: `${server.baseUrl}/profile`, headers: bearer, spec: { minRpsPct: 50 } },
  ]
  for (const target of targets) {
    const check = await get(target.url, target.headers)
    if (check.status !== 200) throw new Error(`${target.name}: GET ${target.url} answered ${check.status}, not 200: ${check.text}`)
  }

  const wrkPrefix = unpinnedWhy ? [] : [TASKSET, '-c', String(WRK_CPU)]
  const perRound: { round: number; results: { name: string; rps: number; p99Ms: number; rpsPct: number; p99x: number }[] }[] = []
  for (let round = 1; round <= rounds; round++) {
    const warmup = round === 1 ? FIRST_WARMUP_SECONDS : WARMUP_SECONDS
    const measured = []
    for (const target of targets) {
      progress(`round ${round}/${rounds}: ${target.name} (${warmup}s warm-up + ${duration}s)`)
      await wrk(wrkPrefix, target, warmup)
      measured.push({ name: target.name, ...(await wrk(wrkPrefix, target, duration)) })
    }
    const base = measured[0]!
    perRound.push({ round, results: measured.map((m) => ({ ...m, rpsPct: (m.rps / base.rps) * 100, p99x: m.p99Ms / base.p99Ms })) })
  }
  const rssAfterLoadMiB = rssKiB(pid) / 1024
  const ownerVsAny = ownerShareOfAny(perRound, targets)

  const storms: StormResult[] = []
  if (!options['skip-storm']) {
    for (const storm of STORMS) storms.push(await loginStorm(wrkPrefix, pin, storm))
  }

  const results = targets.map(({ name, spec }, i) => {
    const of = (key: 'rps' | 'p99Ms' | 'rpsPct' | 'p99x') => perRound.map((r) => r.results[i]![key])
    const range = (values: number[]) => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) })
    const rpsPct = range(of('rpsPct'))
    const p99x = range(of('p99x'))
    const pass = spec && rpsPct.median >= spec.minRpsPct && (spec.maxP99x === undefined || p99x.median <= spec.maxP99x)
    return { name, rps: median(of('rps')), p99Ms: median(of('p99Ms')), rpsPct, p99x, spec, pass }
  })

  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `servers pinned to CPU ${SERVER_CPU}, wrk to CPU ${WRK_CPU}`
  console.log(`\nwrk -t1 -c${connections} -d${duration}s --latency, ${rounds} rounds of baseline + every target`)
  console.log(`warm-up before each run: ${FIRST_WARMUP_SECONDS}s in round 1, ${WARMUP_SECONDS}s after; ${pinning}; loopback, Bun ${Bun.version}`)
  console.log(`req/s and p99 are medians over the rounds; ratios are against the same round's baseline: median (min-max)\n`)
  const pct = (v: number) => v.toFixed(0)
  const times = (v: number) => v.toFixed(2)
  printTable([
    ['target', 'req/s', 'p99 ms', 'req/s vs base', 'p99 vs base', 'target', 'result'],
    ...results.map((r, i) => [
      r.name,
      r.rps.toFixed(0),
      r.p99Ms.toFixed(2),
      i === 0 ? '' : `${pct(r.rpsPct.median)} % (${pct(r.rpsPct.min)}-${pct(r.rpsPct.max)})`,
      i === 0 ? '' : `${times(r.p99x.median)} x (${times(r.p99x.min)}-${times(r.p99x.max)})`,
      r.spec ? `>= ${r.spec.minRpsPct} % req/s${r.spec.maxP99x ? `, p99 <= ${r.spec.maxP99x} x` : ''}` : '',
      r.spec ? verdict(r.pass === true) : '',
    ]),
  ])
  console.log()
  const { median: ownerPct, min: ownerMin, max: ownerMax } = ownerVsAny
  console.log(
    `check-media-access owner vs any req/s: ${pct(ownerPct)} % (${pct(ownerMin)}-${pct(ownerMax)}), target >= ${OWNER_MIN_PCT_OF_ANY} %: ${verdict(ownerPct >= OWNER_MIN_PCT_OF_ANY)}`,
  )
  console.log()
  printTable([
    ['binary size', `${binaryMiB.toFixed(1)} MiB`, BINARY],
    ['exec -> listening line', `${startup.listeningMs.toFixed(1)} ms`, `median of ${STARTS} starts, fresh data dir each`],
    ['exec -> first 200 /health', `${startup.firstOkMs.toFixed(1)} ms`, `target < 100 ms: ${verdict(startup.firstOkMs < 100)}`],
    ['idle RSS after start', `${idleRssMiB.toFixed(1)} MiB`, `target < 80 MiB: ${verdict(idleRssMiB < 80)}`],
    ['RSS after the load', `${rssAfterLoadMiB.toFixed(1)} MiB`, ''],
  ])
  if (storms.length) {
    const stormSeconds = duration + 2 * STORM_MARGIN_SECONDS
    console.log(`\nlogin storm: wrk -t1 -c${STORM_CONNECTIONS} -d${stormSeconds}s of bad logins (bench/bad-login.lua, random usernames), a fresh server each;`)
    console.log(`/health probed meanwhile by wrk -t1 -c${PROBE_CONNECTIONS} -d${duration}s, starting ${STORM_MARGIN_SECONDS}s into the storm; absolute numbers, no baseline\n`)
    printTable([
      ['storm', 'addresses', 'login req/s', '401/s', '429/s', '503/s', 'login p99 ms', '/health p99 ms', `target /health p99 < ${HEALTH_P99_LIMIT_MS} ms`],
      ...storms.map((s) => [
        s.name,
        s.addresses,
        s.loginRps.toFixed(1),
        s.perSecond['401']!.toFixed(1),
        s.perSecond['429']!.toFixed(1),
        s.perSecond['503']!.toFixed(1),
        s.loginP99Ms.toFixed(0),
        s.health.p99Ms.toFixed(2) + (s.health.timeouts ? ` (${s.health.timeouts} timeouts)` : ''),
        verdict(s.pass),
      ]),
    ])
  }

  if (options.json) {
    const settings = {
      threads: 1,
      connections,
      durationSeconds: duration,
      rounds,
      warmupSeconds: { firstRound: FIRST_WARMUP_SECONDS, laterRounds: WARMUP_SECONDS },
      pinning,
      bun: Bun.version,
    }
    const binary = { path: BINARY, sizeMiB: binaryMiB }
    const loginStorm = storms.length
      ? { connections: STORM_CONNECTIONS, probeConnections: PROBE_CONNECTIONS, stormSeconds: duration + 2 * STORM_MARGIN_SECONDS, probeSeconds: duration, healthP99LimitMs: HEALTH_P99_LIMIT_MS, storms }
      : null
    console.log(JSON.stringify({ settings, binary, startup, idleRssMiB, rssAfterLoadMiB, targets: results, rounds: perRound, ownerVsAny, loginStorm }, null, 2))
  }
}

/** check-media-access's req/s in owner mode as a percentage of any mode's, per round: median, min, max. */
function ownerShareOfAny(perRound: { results: { name: string; rps: number }[] }[], targets: Target[]): { median: number; min: number; max: number } {
  const owner = targets.findIndex((t) => t.name === 'check-media-access')
  const any = targets.findIndex((t) => t.name === 'check-media-access (any)')
  const shares = perRound.map(({ results }) => (results[owner]!.rps / results[any]!.rps) * 100)
  return { median: median(shares), min: Math.min(...shares), max: Math.max(...shares) }
}

/** Median over fresh starts of: exec → the listening line, and exec → the first 200 on /health. */
async function measureStartup(): Promise<{ listeningMs: number; firstOkMs: number }> {
  const listening: number[] = []
  const firstOk: number[] = []
  for (let i = 0; i < STARTS; i++) {
    await withServer(async (server) => {
      const start = performance.now()
      await server.start()
      listening.push(performance.now() - start)
      while ((await get(`${server.baseUrl}/health`).catch(() => undefined))?.status !== 200) {
        if (performance.now() - start > 10_000) throw new Error('/health did not answer 200 within 10 s of exec')
        await Bun.sleep(1)
      }
      firstOk.push(performance.now() - start)
    })
  }
  return { listeningMs: median(listening), firstOkMs: median(firstOk) }
}

/** Runs bench/baseline.ts with this same Bun, as its own process, and returns the URL it prints. */
async function wrk(prefix: string[], target: Target, seconds: number): Promise<{ rps: number; p99Ms: number }> {
  const headers = Object.entries(target.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`])
  const { rps, p99Ms } = await runWrk(target.name, prefix, ['-t1', `-c${connections}`, ...headers, target.url], seconds)
  return { rps, p99Ms }
}

interface StormResult {
  name: string
  addresses: string
  /** Login responses per second, and the same split by status. */
  loginRps: number
  perSecond: Record<string, number>
  statuses: Record<string, number>
  loginP99Ms: number
  loginTimeouts: number
  health: { rps: number; p99Ms: number; timeouts: number }
  pass: boolean
}

/**
 * One bad-login storm against a fresh server (the throttle state lives in its data dir), with /health
 * probed by a second wrk during the middle of it. 401, 429 and 503 (hash queue full) are the expected answers;
 * anything else, or a non-200 on /health, is a broken bench.
 */
async function loginStorm(prefix: string[], pin: (pid: number) => void, storm: (typeof STORMS)[number]): Promise<StormResult> {
  return withServer(async (server) => {
    await server.start()
    pin(server.pid!)
    const health = `${server.baseUrl}/health`
    const login = `${server.baseUrl}/auth/login`
    // From an address outside both storms' ranges, so it does not count towards their throttling.
    const check = await fetch(login, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-real-ip': '198.51.100.1' },
      body: JSON.stringify({ username: 'bench-check', password: 'wrong' }),
    })
    if (check.status !== 401) throw new Error(`${storm.name} storm: a bad login answered ${check.status}, not 401: ${await check.text()}`)
    if ((await get(health)).status !== 200) throw new Error(`${storm.name} storm: /health did not answer 200 before the storm`)

    progress(`login storm, ${storm.name}: ${duration + 2 * STORM_MARGIN_SECONDS}s of bad logins, /health probed for ${duration}s`)
    const stormArgs = ['-t1', `-c${STORM_CONNECTIONS}`, '--timeout', STORM_TIMEOUT, '-s', STORM_SCRIPT, login, '--', storm.mode]
    const stormRun = runWrk(`${storm.name} storm`, prefix, stormArgs, duration + 2 * STORM_MARGIN_SECONDS, { non2xx: true, timeouts: true })
    stormRun.catch(() => {}) // awaited below; this only keeps a failure during the probe from being unhandled
    await Bun.sleep(STORM_MARGIN_SECONDS * 1000)
    const probe = await runWrk(`${storm.name} /health probe`, prefix, ['-t1', `-c${PROBE_CONNECTIONS}`, '--timeout', STORM_TIMEOUT, health], duration, {
      timeouts: true,
    })
    const logins = await stormRun

    const line = /^login-statuses (\{.*\})$/m.exec(logins.out)
    if (!line) throw new Error(`${storm.name} storm: no login-statuses line from ${STORM_SCRIPT}:\n${logins.out}`)
    const { durationUs, ...statuses } = JSON.parse(line[1]!) as Record<string, number>
    const expected = ['401', '429', '503']
    const unexpected = Object.keys(statuses).filter((status) => !expected.includes(status))
    if (unexpected.length) throw new Error(`${storm.name} storm: unexpected login statuses ${JSON.stringify(statuses)}`)
    const seconds = durationUs! / 1e6
    const count = (status: string) => statuses[status] ?? 0
    const total = count('401') + count('429') + count('503')
    return {
      name: storm.name,
      addresses: storm.addresses,
      loginRps: total / seconds,
      perSecond: { '401': count('401') / seconds, '429': count('429') / seconds, '503': count('503') / seconds },
      statuses: { '401': count('401'), '429': count('429'), '503': count('503') },
      loginP99Ms: logins.p99Ms,
      loginTimeouts: logins.timeouts,
      health: { rps: probe.rps, p99Ms: probe.p99Ms, timeouts: probe.timeouts },
      pass: probe.timeouts === 0 && probe.p99Ms < HEALTH_P99_LIMIT_MS,
    }
  })
}
