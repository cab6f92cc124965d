/**
 * What metrics cost (README "Metrics"): check-media-access on the compiled binary with `metrics = "on"` against the same
 * binary with `metrics = "off"`, in one run. Both servers are pinned to CPU 0 and wrk to CPU 1 when possible; every round
 * measures both, alternating which goes first, and each round's ratio is on/off req/s; the server's CPU time per request
 * is read from /proc as well, since on a shared machine it moves less than req/s. Also, in this process, the hot-path
 * cost per request of the hand-written counters and histograms (one counter bump and one histogram observation).
 *   node_modules/.bin/bun bench/metrics.ts [--duration 10] [--rounds 5] [--json]
 * Bar: with metrics on, check-media-access keeps at least 95 % of its req/s. Missing it is reported, not fatal.
 */
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { CounterFamily, HistogramFamily } from '../src/metrics/exposition'
import { LATENCY_BUCKETS } from '../src/metrics/metrics'
import { BASE, ServerProcess } from '../test/binary/server-process'
import { createHarness } from '../test/helpers'
import {
  CLIENT_CPU as WRK_CPU,
  cpuMs,
  get,
  median,
  onExit,
  pinningUnavailable,
  pinProcess,
  positiveInt,
  printTable,
  progress,
  requireBinary,
  runBench,
  runWrk,
  SERVER_CPU,
  TASKSET,
  verdict,
  WRK,
} from './common'

const USER = { name: '201', password: 'bench-password-201' }
const CONNECTIONS = 64
const WARMUP_SECONDS = 2
const MIN_PCT_OF_OFF = 95
const CALLS = 5_000_000
const HANDLE_CALLS = 50_000
const TIMINGS = 11
const WATCHDOG_MS = 30 * 60 * 1000

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
})
const duration = positiveInt('--duration', options.duration)
const rounds = positiveInt('--rounds', options.rounds)

await runBench(main, { watchdogMs: WATCHDOG_MS })

interface Variant {
  name: 'on' | 'off'
  pid: number
  url: string
  headers: Record<string, string>
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found; install it with: apt-get install wrk`)
  requireBinary()
  const hotPathNs = hotPathCost()
  progress('in process: check-media-access through app.handle, metrics on and off')
  const inProcess = await inProcessCost()
  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  const variants: Variant[] = []
  for (const name of ['on', 'off'] as const) variants.push(await startVariant(name, unpinnedWhy === undefined))
  const wrkPrefix = unpinnedWhy ? [] : [TASKSET, '-c', String(WRK_CPU)]

  const perRound: Round[] = []
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? variants : [...variants].reverse()
    const measured: Record<string, Measured> = {}
    for (const variant of order) {
      progress(`round ${round}/${rounds}: metrics ${variant.name} (${WARMUP_SECONDS}s warm-up + ${duration}s)`)
      const args = ['-t1', `-c${CONNECTIONS}`, ...Object.entries(variant.headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), variant.url]
      await runWrk(variant.name, wrkPrefix, args, WARMUP_SECONDS)
      const cpuBefore = cpuMs(variant.pid)
      const { rps, p99Ms, out } = await runWrk(variant.name, wrkPrefix, args, duration)
      const requests = Number(/(\d+) requests in/.exec(out)?.[1])
      measured[variant.name] = { rps, p99Ms, cpuUs: ((cpuMs(variant.pid) - cpuBefore) * 1000) / requests }
    }
    const { on, off } = measured as Record<'on' | 'off', Measured>
    perRound.push({ round, on, off, pct: (on.rps / off.rps) * 100, cpuPct: (off.cpuUs / on.cpuUs) * 100 })
  }

  const range = (values: number[]) => ({ median: median(values), min: Math.min(...values), max: Math.max(...values) })
  const pct = range(perRound.map((r) => r.pct))
  const cpuPct = range(perRound.map((r) => r.cpuPct))
  const pass = pct.median >= MIN_PCT_OF_OFF
  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `servers pinned to CPU ${SERVER_CPU}, wrk to CPU ${WRK_CPU}`
  if (options.json) {
    console.log(JSON.stringify({ settings: { connections: CONNECTIONS, durationSeconds: duration, rounds, pinning, bun: Bun.version }, hotPathNs, inProcess, perRound, pct, cpuPct, pass }, null, 2))
    return
  }
  console.log(`\ncheck-media-access, wrk -t1 -c${CONNECTIONS} -d${duration}s, ${rounds} rounds; ${pinning}`)
  printTable([
    ['round', 'on req/s', 'off req/s', 'on p99 ms', 'off p99 ms', 'on CPU µs/req', 'off CPU µs/req', 'on/off req/s', 'off/on CPU'],
    ...perRound.map((r) => [
      String(r.round),
      r.on.rps.toFixed(0),
      r.off.rps.toFixed(0),
      r.on.p99Ms.toFixed(2),
      r.off.p99Ms.toFixed(2),
      r.on.cpuUs.toFixed(1),
      r.off.cpuUs.toFixed(1),
      `${r.pct.toFixed(1)} %`,
      `${r.cpuPct.toFixed(1)} %`,
    ]),
  ])
  console.log(`\non/off req/s median ${pct.median.toFixed(1)} % (range ${pct.min.toFixed(1)}–${pct.max.toFixed(1)} %), bar ≥ ${MIN_PCT_OF_OFF} %: ${verdict(pass)}`)
  console.log(`server CPU per request, off/on: median ${cpuPct.median.toFixed(1)} % (range ${cpuPct.min.toFixed(1)}–${cpuPct.max.toFixed(1)} %); steadier than req/s on a busy machine`)
  console.log(
    `in process, app.handle: ${inProcess.onUs.toFixed(2)} µs per check-media-access with metrics, ${inProcess.offUs.toFixed(2)} µs without: ${inProcess.pct.toFixed(1)} % of the throughput (fastest of ${TIMINGS} timings each)`,
  )
  console.log(`hot path in process: ${hotPathNs.toFixed(1)} ns per request (one counter bump + one histogram observation)`)
}

interface Measured {
  rps: number
  p99Ms: number
  /** Server CPU time (user + system) per request, µs. */
  cpuUs: number
}

interface Round {
  round: number
  on: Measured
  off: Measured
  /** on/off req/s, %. */
  pct: number
  /** off/on CPU per request, %: the req/s share metrics leave when the server is CPU-bound. */
  cpuPct: number
}

async function startVariant(name: 'on' | 'off', pin: boolean): Promise<Variant> {
  const server = new ServerProcess()
  onExit(() => server.cleanup())
  await server.addUser(USER.name, USER.password)
  await server.start(['--metrics', name])
  if (pin) pinProcess(server.pid!, SERVER_CPU)
  const { access_token } = await server.login(USER.name, USER.password)
  const variant: Variant = { name, pid: server.pid!, url: `${server.baseUrl}/check-media-access`, headers: { Authorization: `Bearer ${access_token}` } }
  const check = await get(variant.url, variant.headers)
  if (check.status !== 200) throw new Error(`metrics ${name}: check-media-access answered ${check.status}: ${check.text}`)
  const scrape = await get(`${server.url}/metrics`)
  if (scrape.status !== (name === 'on' ? 200 : 404)) throw new Error(`metrics ${name}: /metrics answered ${scrape.status}`)
  return variant
}

/**
 * µs per check-media-access through Elysia's handler on the real app (test/helpers.ts), metrics on and off, timings
 * interleaved; the fastest of each counts, as the machine is shared. No sockets, so the hooks' share shows undiluted.
 */
async function inProcessCost(): Promise<{ onUs: number; offUs: number; pct: number }> {
  const best = { on: Infinity, off: Infinity }
  const apps = await Promise.all(
    (['on', 'off'] as const).map(async (name) => {
      const harness = await createHarness({ metrics: name === 'on' })
      onExit(() => harness.close())
      await harness.directory.add({ username: USER.name, password: USER.password, displayName: '', role: 'user', mobile: '' })
      const { access_token } = await harness.login(USER.name, USER.password)
      const request = new Request(`http://localhost${BASE}/check-media-access`, { headers: { authorization: `Bearer ${access_token}` } })
      return { name, app: harness.app, request }
    }),
  )
  for (let timing = 0; timing < TIMINGS; timing++) {
    for (const { name, app, request } of timing % 2 ? apps : [...apps].reverse()) {
      const started = performance.now()
      for (let i = 0; i < HANDLE_CALLS; i++) {
        const response = await app.handle(request)
        if (response.status !== 200) throw new Error(`metrics ${name}: check-media-access answered ${response.status}`)
      }
      best[name] = Math.min(best[name], ((performance.now() - started) * 1000) / HANDLE_CALLS)
    }
  }
  return { onUs: best.on, offUs: best.off, pct: (best.off / best.on) * 100 }
}

/** ns per request of what the hooks do per check-media-access: a counter bump and a histogram observation. */
function hotPathCost(): number {
  const counter = new CounterFamily('bench_total', 'x').series({ route: '/check-media-access', status: '200' })
  const histogram = new HistogramFamily('bench_seconds', 'x', LATENCY_BUCKETS).series({ route: '/check-media-access' })
  const step = (i: number) => {
    counter.value++
    histogram.observe(0.0001 * (i & 7))
  }
  for (let i = 0; i < 200_000; i++) step(i)
  const started = performance.now()
  for (let i = 0; i < CALLS; i++) step(i)
  return ((performance.now() - started) * 1e6) / CALLS
}
