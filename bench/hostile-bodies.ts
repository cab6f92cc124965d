/**
 * Hostile bodies against the compiled binary: a body's cost must follow its size, not its shape.
 * 1. Every hostile login body of test/hostile-bodies.ts (each just under the 8 KiB limit) is sent by `--senders`
 *    concurrent clients for `--seconds`; its cost is the server's CPU time per request (/proc/<pid>/stat), and its
 *    ratio is against the flat 8 KiB body measured in the same round. Target: every ratio <= 4.
 * 2. /health latency, idle and while the senders flood the costliest shape of step 1.
 * 3. pub/ with flat and deep bodies of 256 KiB, 512 KiB and 1 MiB, one publisher: cost per publish, its ratio to
 *    the flat body of the same size, and per-KiB cost at 1 MiB against 256 KiB (about 1 when linear; target <= 2).
 * The server is pinned to CPU 0 and this client to CPU 1 when possible.
 *   node_modules/.bin/bun bench/hostile-bodies.ts [--seconds 1] [--rounds 3] [--senders 4] [--json]
 * A missed target is reported, not fatal: the exit code is 1 only when the bench itself broke.
 */
import { parseArgs } from 'node:util'
import { type ServerProcess } from '../test/binary/server-process'
import { FLAT, HOSTILE_BODIES, type HostileBody } from '../test/hostile-bodies'
import {
  CLIENT_CPU,
  cpuMs,
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

const MAX_RATIO = 4
const MAX_PUB_PER_KIB_GROWTH = 2
const WARMUP_SECONDS = 0.3
const HEALTH_PROBES = 200
const KiB = 1024
const PUB_SIZES = [256 * KiB, 512 * KiB, 1024 * KiB - 64]
const WATCHDOG_MS = 15 * 60_000

const { values: options } = parseArgs({
  options: {
    seconds: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    senders: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
  },
})
const seconds = positiveInt('--seconds', options.seconds)
const rounds = positiveInt('--rounds', options.rounds)
const senders = positiveInt('--senders', options.senders)

// main() runs at the end of this file, once every constant below is initialised.

interface Load {
  requests: number
  cpuUsPerRequest: number
  p50Ms: number
}

interface ShapeResult {
  name: string
  bytes: number
  code: string
  cpuUs: number
  p50Ms: number
  ratio: { median: number; min: number; max: number }
  pass: boolean
}

async function main(): Promise<void> {
  requireBinary()
  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  else pinProcess(process.pid, CLIENT_CPU)
  await withServer(async (server) => {
    await server.start()
    if (!unpinnedWhy) pinProcess(server.pid!, SERVER_CPU)
    const shapes = await measureShapes(server)
    const worst = shapes.reduce((a, b) => (b.ratio.median > a.ratio.median ? b : a))
    const health = await measureHealth(server, HOSTILE_BODIES.find((shape) => shape.name === worst.name)!)
    const pub = await measurePublish(server)
    report(shapes, worst.name, health, pub, unpinnedWhy)
  })
}

/** Every shape once per round, each against the flat body measured at the start of the same round. */
async function measureShapes(server: ServerProcess): Promise<ShapeResult[]> {
  const all = [FLAT, ...HOSTILE_BODIES]
  progress(`warm-up: every shape for ${WARMUP_SECONDS}s`)
  for (const shape of all) await loginLoad(server, shape, WARMUP_SECONDS)
  const perRound: Load[][] = []
  for (let round = 1; round <= rounds; round++) {
    progress(`round ${round}/${rounds}: ${all.length} shapes, ${seconds}s each`)
    const loads: Load[] = []
    for (const shape of all) loads.push(await loginLoad(server, shape, seconds))
    perRound.push(loads)
  }
  return all.map((shape, index) => {
    const ratios = perRound.map((loads) => loads[index]!.cpuUsPerRequest / loads[0]!.cpuUsPerRequest)
    const ratio = { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) }
    return {
      name: shape.name,
      bytes: Buffer.byteLength(shape.body),
      code: shape.code,
      cpuUs: median(perRound.map((loads) => loads[index]!.cpuUsPerRequest)),
      p50Ms: median(perRound.map((loads) => loads[index]!.p50Ms)),
      ratio,
      pass: ratio.median <= MAX_RATIO,
    }
  })
}

/** `senders` clients posting one body for `duration` seconds; any answer but the shape's own breaks the bench. */
async function loginLoad(server: ServerProcess, shape: HostileBody, duration: number): Promise<Load> {
  const url = `${server.baseUrl}/auth/login`
  const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: shape.body }
  return load(server, duration, async () => {
    const response = await fetch(url, init)
    const { code } = (await response.json()) as { code?: string }
    if (response.status !== shape.status || code !== shape.code) {
      throw new Error(`${shape.name}: answered ${response.status} ${code}, not ${shape.status} ${shape.code}`)
    }
  })
}

async function load(server: ServerProcess, duration: number, send: () => Promise<void>, clients = senders): Promise<Load> {
  const latencies: number[] = []
  const cpuBefore = cpuMs(server.pid!)
  const end = performance.now() + duration * 1000
  const client = async () => {
    while (performance.now() < end) {
      const start = performance.now()
      await send()
      latencies.push(performance.now() - start)
    }
  }
  await Promise.all(Array.from({ length: clients }, client))
  const cpuUsed = cpuMs(server.pid!) - cpuBefore
  return { requests: latencies.length, cpuUsPerRequest: (cpuUsed * 1000) / latencies.length, p50Ms: median(latencies) }
}

interface HealthResult {
  idle: { p50Ms: number; p99Ms: number }
  flooded: { p50Ms: number; p99Ms: number }
}

/** Sequential /health requests, idle and then while `senders` clients flood `shape`. */
async function measureHealth(server: ServerProcess, shape: HostileBody): Promise<HealthResult> {
  progress(`/health: ${HEALTH_PROBES} probes idle, then during a flood of "${shape.name}"`)
  const idle = await probeHealth(server)
  let flooding = true
  const flood = (async () => {
    while (flooding) await loginLoad(server, shape, 0.2)
  })()
  try {
    return { idle, flooded: await probeHealth(server) }
  } finally {
    flooding = false
    await flood
  }
}

async function probeHealth(server: ServerProcess): Promise<{ p50Ms: number; p99Ms: number }> {
  const latencies: number[] = []
  for (let i = 0; i < HEALTH_PROBES; i++) {
    const start = performance.now()
    const response = await fetch(`${server.baseUrl}/health`)
    await response.arrayBuffer()
    if (response.status !== 200) throw new Error(`/health answered ${response.status}`)
    latencies.push(performance.now() - start)
  }
  return { p50Ms: median(latencies), p99Ms: percentile(latencies, 0.99) }
}

/** JSON of about `bytes` bytes in each shape pub/ must take in time proportional to its size. */
const PUB_SHAPES: Record<string, (bytes: number) => string> = {
  flat: (bytes) => `{"pad":"${'y'.repeat(bytes - 10)}"}`,
  'many values': (bytes) => `[${'1,'.repeat(bytes / 2 - 1)}1]`,
  'deep arrays': (bytes) => '['.repeat(bytes / 2) + ']'.repeat(bytes / 2),
  'deep objects': (bytes) => '{"a":'.repeat(Math.floor(bytes / 6)) + '1' + '}'.repeat(Math.floor(bytes / 6)),
}

interface PubResult {
  name: string
  /** CPU µs per publish, by size. */
  cpuUs: number[]
  /** Against flat at the same size. */
  ratios: number[]
  /** Per-KiB cost at the largest size over that at the smallest: about 1 when linear. */
  growth: number
  pass: boolean
}

async function measurePublish(server: ServerProcess): Promise<PubResult[]> {
  const url = `${server.baseUrl}/pub/users-state`
  const results: Array<{ name: string; cpuUs: number[] }> = []
  for (const [name, build] of Object.entries(PUB_SHAPES)) {
    progress(`pub/: ${name} at ${PUB_SIZES.map((size) => `${Math.round(size / KiB)} KiB`).join(', ')}`)
    const cpuUs: number[] = []
    for (const size of PUB_SIZES) {
      const body = build(size)
      const send = async () => {
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        await response.arrayBuffer()
        if (response.status !== 200) throw new Error(`pub/ ${name} of ${body.length} bytes answered ${response.status}`)
      }
      await load(server, WARMUP_SECONDS, send, 1)
      const perRound: number[] = []
      for (let round = 0; round < rounds; round++) perRound.push((await load(server, seconds, send, 1)).cpuUsPerRequest)
      cpuUs.push(median(perRound))
    }
    results.push({ name, cpuUs })
  }
  const flat = results[0]!.cpuUs
  const first = PUB_SIZES[0]!
  const last = PUB_SIZES.at(-1)!
  return results.map(({ name, cpuUs }) => {
    const growth = cpuUs.at(-1)! / last / (cpuUs[0]! / first)
    return { name, cpuUs, ratios: cpuUs.map((us, i) => us / flat[i]!), growth, pass: growth <= MAX_PUB_PER_KIB_GROWTH }
  })
}

function report(shapes: ShapeResult[], worst: string, health: HealthResult, pub: PubResult[], unpinnedWhy: string | undefined): void {
  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `server pinned to CPU ${SERVER_CPU}, client to CPU ${CLIENT_CPU}`
  console.log(`\nlogin bodies: ${senders} senders, ${seconds}s per shape, ${rounds} rounds; ${pinning}; loopback, Bun ${Bun.version}`)
  console.log(`cost = server CPU per request; ratio against the flat body in the same round: median (min-max); target <= ${MAX_RATIO}\n`)
  printTable([
    ['shape', 'bytes', 'answer', 'CPU µs/req', 'p50 ms', 'ratio to flat', 'result'],
    ...shapes.map((shape, index) => [
      shape.name,
      String(shape.bytes),
      shape.code,
      shape.cpuUs.toFixed(0),
      shape.p50Ms.toFixed(2),
      index === 0 ? '' : `${shape.ratio.median.toFixed(2)} (${shape.ratio.min.toFixed(2)}-${shape.ratio.max.toFixed(2)})`,
      index === 0 ? '' : verdict(shape.pass),
    ]),
  ])
  console.log(`\n/health, ${HEALTH_PROBES} sequential probes: idle p50 ${health.idle.p50Ms.toFixed(2)} ms, p99 ${health.idle.p99Ms.toFixed(2)} ms;`)
  console.log(`while ${senders} senders flood "${worst}": p50 ${health.flooded.p50Ms.toFixed(2)} ms, p99 ${health.flooded.p99Ms.toFixed(2)} ms`)
  const sizes = PUB_SIZES.map((size) => `${Math.round(size / KiB)} KiB`)
  console.log(`\npub/users-state, one publisher, ${seconds}s per size, median of ${rounds} runs: server CPU µs per publish (ratio to flat)`)
  console.log(`growth = per-KiB cost at ${sizes.at(-1)} / at ${sizes[0]} (1 = linear); target <= ${MAX_PUB_PER_KIB_GROWTH}\n`)
  printTable([
    ['body', ...sizes, 'growth', 'result'],
    ...pub.map((result) => [
      result.name,
      ...result.cpuUs.map((us, i) => `${us.toFixed(0)} (${result.ratios[i]!.toFixed(1)} x)`),
      result.growth.toFixed(2),
      verdict(result.pass),
    ]),
  ])
  if (options.json) console.log(JSON.stringify({ settings: { seconds, rounds, senders, pinning, bun: Bun.version }, shapes, health, pub }, null, 2))
}

function median(values: number[]): number {
  return percentile(values, 0.5)
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!
}

await runBench(main, { watchdogMs: WATCHDOG_MS })
