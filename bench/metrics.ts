/**
 * What metrics cost (README "Metrics"): check-media-access on the compiled binary with `metrics = "on"` against the same
 * binary with `metrics = "off"`, in one run. Both servers are pinned to CPU 0 and wrk to CPU 1 when possible; every round
 * measures both, alternating which goes first, and each round's ratio is on/off req/s. Also, in this process, the hot-path
 * cost per request of the hand-written counters and histograms (one counter bump and one histogram observation).
 *   node_modules/.bin/bun bench/metrics.ts [--duration 10] [--rounds 5] [--json]
 * Bar: with metrics on, check-media-access keeps at least 95 % of its req/s. Missing it is reported, not fatal.
 */
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { CounterFamily, HistogramFamily } from '../src/metrics/exposition'
import { LATENCY_BUCKETS } from '../src/metrics/metrics'
import { ServerProcess } from '../test/binary/server-process'
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
  url: string
  headers: Record<string, string>
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found; install it with: apt-get install wrk`)
  requireBinary()
  const hotPathNs = hotPathCost()
  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  const variants: Variant[] = []
  for (const name of ['on', 'off'] as const) variants.push(await startVariant(name, unpinnedWhy === undefined))
  const wrkPrefix = unpinnedWhy ? [] : [TASKSET, '-c', String(WRK_CPU)]

  const perRound: { round: number; on: number; off: number; onP99Ms: number; offP99Ms: number; pct: number }[] = []
  for (let round = 1; round <= rounds; round++) {
    const order = round % 2 ? variants : [...variants].reverse()
    const measured: Record<string, { rps: number; p99Ms: number }> = {}
    for (const variant of order) {
      progress(`round ${round}/${rounds}: metrics ${variant.name} (${WARMUP_SECONDS}s warm-up + ${duration}s)`)
      const args = ['-t1', `-c${CONNECTIONS}`, ...Object.entries(variant.headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), variant.url]
      await runWrk(variant.name, wrkPrefix, args, WARMUP_SECONDS)
      const { rps, p99Ms } = await runWrk(variant.name, wrkPrefix, args, duration)
      measured[variant.name] = { rps, p99Ms }
    }
    const { on, off } = measured as Record<'on' | 'off', { rps: number; p99Ms: number }>
    perRound.push({ round, on: on.rps, off: off.rps, onP99Ms: on.p99Ms, offP99Ms: off.p99Ms, pct: (on.rps / off.rps) * 100 })
  }

  const pcts = perRound.map((r) => r.pct)
  const pct = { median: median(pcts), min: Math.min(...pcts), max: Math.max(...pcts) }
  const pass = pct.median >= MIN_PCT_OF_OFF
  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `servers pinned to CPU ${SERVER_CPU}, wrk to CPU ${WRK_CPU}`
  if (options.json) {
    console.log(JSON.stringify({ settings: { connections: CONNECTIONS, durationSeconds: duration, rounds, pinning, bun: Bun.version }, hotPathNs, perRound, pct, pass }, null, 2))
    return
  }
  console.log(`\ncheck-media-access, wrk -t1 -c${CONNECTIONS} -d${duration}s, ${rounds} rounds; ${pinning}`)
  printTable([
    ['round', 'metrics on req/s', 'metrics off req/s', 'on p99 ms', 'off p99 ms', 'on/off'],
    ...perRound.map((r) => [String(r.round), r.on.toFixed(0), r.off.toFixed(0), r.onP99Ms.toFixed(2), r.offP99Ms.toFixed(2), `${r.pct.toFixed(1)} %`]),
  ])
  console.log(`\non/off median ${pct.median.toFixed(1)} % (range ${pct.min.toFixed(1)}–${pct.max.toFixed(1)} %), bar ≥ ${MIN_PCT_OF_OFF} %: ${verdict(pass)}`)
  console.log(`hot path in-process: ${hotPathNs.toFixed(1)} ns per request (one counter bump + one histogram observation)`)
}

async function startVariant(name: 'on' | 'off', pin: boolean): Promise<Variant> {
  const server = new ServerProcess()
  onExit(() => server.cleanup())
  await server.addUser(USER.name, USER.password)
  await server.start(['--metrics', name])
  if (pin) pinProcess(server.pid!, SERVER_CPU)
  const { access_token } = await server.login(USER.name, USER.password)
  const variant: Variant = { name, url: `${server.baseUrl}/check-media-access`, headers: { Authorization: `Bearer ${access_token}` } }
  const check = await get(variant.url, variant.headers)
  if (check.status !== 200) throw new Error(`metrics ${name}: check-media-access answered ${check.status}: ${check.text}`)
  const scrape = await get(`${server.url}/metrics`)
  if (scrape.status !== (name === 'on' ? 200 : 404)) throw new Error(`metrics ${name}: /metrics answered ${scrape.status}`)
  return variant
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
