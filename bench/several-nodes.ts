/**
 * Several nodes (README "Several nodes", "Tests, CI and benchmarks"): one binary with store = "sqlite" (the baseline,
 * started in the same run) against three binaries sharing one redis-server (test/binary/nodes.ts, no nginx: each node
 * is driven directly on 127.0.0.1). Measures:
 * 1. check-media-access with wrk on each Redis node alone, req/s and server CPU per request, each as a ratio to a run
 *    on the baseline just before it (`--rounds` of each). The route must stay in memory on every node: goal ≥ 90 %.
 * 2. login and refresh latency, p50/p99 of `--logins` sequential logins and a chain of `--refreshes` refreshes, on the
 *    baseline and on node A.
 * 3. revocation propagation over `--trials` trials: a login and a logout on A, then B and C asked check-media-access
 *    back to back until each refuses the access token; the time from sending the logout to each node's first 401,
 *    p50/p99 (the bar: 100 ms), and the logout's own answer time. A node still accepting after 2 s counts as
 *    missing.
 * Servers and redis-server on CPU 0, wrk and this process on CPU 1, when possible.
 *   node_modules/.bin/bun bench/several-nodes.ts [--duration 10] [--rounds 3] [--logins 100] [--refreshes 200]
 *     [--trials 200] [--store redis|sqlite] [--json]
 * `--store sqlite` runs the three nodes without sharing (only to check the bench itself: nothing propagates).
 * Missing a bar is reported, not fatal: the exit code is 1 only when the bench itself broke.
 */
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Cluster, type Node } from '../test/binary/nodes'
import { ServerProcess } from '../test/binary/server-process'
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
  runWrk,
  SERVER_CPU,
  TASKSET,
  verdict,
  WRK,
} from './common'

const USER = { username: '201', password: 'bench-several-nodes-201' }
const CONNECTIONS = 64
const WARMUP_SECONDS = 2
const THROUGHPUT_RATIO_GOAL = 0.9
const PROPAGATION_BAR_MS = 100
const PROPAGATION_GIVE_UP_MS = 2000
const WATCHDOG_MS = 20 * 60 * 1000

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    logins: { type: 'string', default: '100' },
    refreshes: { type: 'string', default: '200' },
    trials: { type: 'string', default: '200' },
    store: { type: 'string', default: 'redis' },
    json: { type: 'boolean', default: false },
  },
})
const duration = positiveInt('--duration', options.duration)
const rounds = positiveInt('--rounds', options.rounds)
const logins = positiveInt('--logins', options.logins)
const refreshes = positiveInt('--refreshes', options.refreshes)
const trials = positiveInt('--trials', options.trials)
if (options.store !== 'redis' && options.store !== 'sqlite') {
  console.error(`--store must be redis or sqlite, not ${JSON.stringify(options.store)}`)
  process.exit(1)
}
const clusterStore = options.store

await runBench(main, { watchdogMs: WATCHDOG_MS })

/** What the bench drives: the baseline, or one node of the cluster. */
interface Target {
  name: string
  baseUrl: string
  pid: number
}

interface LatencyStats {
  n: number
  p50: number
  p99: number
  max: number
}

function stats(values: number[]): LatencyStats {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? NaN }
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found; install it with: apt-get install wrk`)
  requireBinary()
  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  else pinProcess(process.pid, CLIENT_CPU)

  progress('starting the sqlite baseline and three nodes on one redis-server')
  const baseline = new ServerProcess()
  onExit(() => baseline.cleanup())
  await baseline.addUser(USER.username, USER.password)
  await baseline.start()
  const cluster = await Cluster.start({ users: [USER], store: clusterStore, nginx: false })
  onExit(() => cluster.cleanup())
  const baselineTarget: Target = { name: 'sqlite, one node', baseUrl: baseline.baseUrl, pid: baseline.pid! }
  const nodeTargets: Target[] = cluster.nodes.map((node) => ({ name: `${clusterStore} node ${node.name}`, baseUrl: node.baseUrl, pid: node.server.pid! }))
  if (!unpinnedWhy) {
    for (const target of [baselineTarget, ...nodeTargets]) pinProcess(target.pid, SERVER_CPU)
    pinProcess(redisPid(cluster), SERVER_CPU)
  }

  const throughput = await measureThroughput(baselineTarget, nodeTargets, unpinnedWhy ? [] : [TASKSET, '-c', String(CLIENT_CPU)])
  const latency = {
    login: { [baselineTarget.name]: await loginLatency(baselineTarget), [nodeTargets[0]!.name]: await loginLatency(nodeTargets[0]!) },
    refresh: { [baselineTarget.name]: await refreshLatency(baselineTarget), [nodeTargets[0]!.name]: await refreshLatency(nodeTargets[0]!) },
  }
  const propagation = await measurePropagation(cluster)

  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `servers and redis-server pinned to CPU ${SERVER_CPU}, wrk and this process to CPU ${CLIENT_CPU}`
  console.log(`\ncheck-media-access: wrk -t1 -c${CONNECTIONS} -d${duration}s, ${rounds} rounds, each target alone, each node right after a baseline run; ${pinning}; Bun ${Bun.version}\n`)
  const pct = (ratio: number) => `${(ratio * 100).toFixed(0)} %`
  const spread = (ratios: number[]) => `${pct(median(ratios))} (${pct(Math.min(...ratios))}-${pct(Math.max(...ratios))})`
  printTable([
    ['target', 'req/s', 'req/s ratio (min-max)', `>= ${pct(THROUGHPUT_RATIO_GOAL)}`, 'CPU us/request', 'CPU ratio (min-max)', `>= ${pct(THROUGHPUT_RATIO_GOAL)}`],
    [baselineTarget.name, median(throughput.baseline).toFixed(0), '', '', median(throughput.cpuUs.baseline).toFixed(1), '', ''],
    ...nodeTargets.map((target, i) => {
      const [ratios, cpuRatios] = [throughput.ratios[i]!, throughput.cpuRatios[i]!]
      return [
        target.name,
        median(throughput.nodes[i]!).toFixed(0),
        spread(ratios),
        verdict(median(ratios) >= THROUGHPUT_RATIO_GOAL),
        median(throughput.cpuUs.nodes[i]!).toFixed(1),
        spread(cpuRatios),
        verdict(median(cpuRatios) >= THROUGHPUT_RATIO_GOAL),
      ]
    }),
  ])
  console.log('ratios: medians over the rounds; CPU ratio = the baseline\'s CPU per request / the node\'s')
  console.log(`\nlatency, ms: ${logins} sequential logins, a chain of ${refreshes} refreshes; the cluster's on node A\n`)
  const ms = (value: number) => value.toFixed(2)
  printTable([
    ['route', 'target', 'p50', 'p99', 'max'],
    ...Object.entries(latency).flatMap(([route, byTarget]) => Object.entries(byTarget).map(([target, s]) => [route, target, ms(s.p50), ms(s.p99), ms(s.max)])),
  ])
  console.log(`\nrevocation propagation, ms from sending the logout on A to the node's first 401 (${trials} trials)\n`)
  printTable([
    ['measured', 'n', 'p50', 'p99', 'max', `p99 < ${PROPAGATION_BAR_MS} ms`],
    ['logout answered on A', String(propagation.logout.n), ms(propagation.logout.p50), ms(propagation.logout.p99), ms(propagation.logout.max), ''],
    ...(['B', 'C', 'both'] as const).map((name) => {
      const s = propagation[name]
      return [`refused on ${name}`, String(s.n), ms(s.p50), ms(s.p99), ms(s.max), verdict(s.n === trials && s.p99 < PROPAGATION_BAR_MS)]
    }),
  ])
  if (propagation.missing > 0) console.log(`\n${propagation.missing} of ${trials * 2} refusals did not come within ${PROPAGATION_GIVE_UP_MS} ms`)

  if (options.json) {
    const settings = { durationSeconds: duration, rounds, connections: CONNECTIONS, logins, refreshes, trials, store: clusterStore, pinning, bun: Bun.version }
    console.log(JSON.stringify({ settings, throughput, latency, propagation }, null, 2))
  }
}

/** redis-server's own pid, as it reports it. */
function redisPid(cluster: Cluster): number {
  const pid = /^process_id:(\d+)/m.exec(cluster.redis.cli('INFO', 'server'))
  if (!pid) throw new Error('redis-server did not report its process_id')
  return Number(pid[1])
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` }
}

async function login(target: Target): Promise<{ access_token: string; refresh_token: string }> {
  const response = await fetch(`${target.baseUrl}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(USER),
  })
  if (response.status !== 200) throw new Error(`${target.name}: login answered ${response.status}: ${await response.text()}`)
  return (await response.json()) as { access_token: string; refresh_token: string }
}

/**
 * In each round every node runs right after a run of the baseline, and its ratios are to that run: on a shared machine
 * the load of the moment weighs on both. Server CPU per request is the steadier figure there: other jobs take CPU
 * time away from a server, and so requests, but hardly change what each request costs.
 */
async function measureThroughput(baseline: Target, nodes: Target[], wrkPrefix: string[]) {
  const perNode = () => nodes.map(() => [] as number[])
  const result = { baseline: [] as number[], nodes: perNode(), ratios: perNode(), cpuUs: { baseline: [] as number[], nodes: perNode() }, cpuRatios: perNode() }
  const run = async (target: Target, round: number) => {
    const { access_token } = await login(target)
    const args = ['-t1', `-c${CONNECTIONS}`, '-H', `Authorization: Bearer ${access_token}`, `${target.baseUrl}/check-media-access`]
    progress(`round ${round}/${rounds}: check-media-access on ${target.name} (${WARMUP_SECONDS}s warm-up + ${duration}s)`)
    await runWrk(target.name, wrkPrefix, args, WARMUP_SECONDS)
    const cpuBefore = cpuMs(target.pid)
    const { rps, out } = await runWrk(target.name, wrkPrefix, args, duration)
    const requests = Number(/(\d+) requests in/.exec(out)?.[1])
    return { rps, cpuUs: ((cpuMs(target.pid) - cpuBefore) * 1000) / requests }
  }
  for (let round = 1; round <= rounds; round++) {
    for (const [i, node] of nodes.entries()) {
      const base = await run(baseline, round)
      const measured = await run(node, round)
      result.baseline.push(base.rps)
      result.cpuUs.baseline.push(base.cpuUs)
      result.nodes[i]!.push(measured.rps)
      result.cpuUs.nodes[i]!.push(measured.cpuUs)
      result.ratios[i]!.push(measured.rps / base.rps)
      result.cpuRatios[i]!.push(base.cpuUs / measured.cpuUs)
    }
  }
  return result
}

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now()
  const value = await run()
  return { ms: performance.now() - started, value }
}

async function loginLatency(target: Target): Promise<LatencyStats> {
  progress(`${target.name}: ${logins} logins`)
  const times: number[] = []
  for (let i = 0; i < logins; i++) times.push((await timed(() => login(target))).ms)
  return stats(times)
}

/** Each refresh presents the successor the previous one gave (compatible rotation). */
async function refreshLatency(target: Target): Promise<LatencyStats> {
  progress(`${target.name}: ${refreshes} refreshes`)
  let { refresh_token: token } = await login(target)
  const times: number[] = []
  for (let i = 0; i < refreshes; i++) {
    const { ms, value: response } = await timed(() => fetch(`${target.baseUrl}/auth/refresh`, { method: 'POST', headers: bearer(token) }))
    if (response.status !== 200) throw new Error(`${target.name}: refresh answered ${response.status}: ${await response.text()}`)
    token = ((await response.json()) as { refresh_token: string }).refresh_token
    times.push(ms)
  }
  return stats(times)
}

/** Asks `node` check-media-access back to back until it refuses; ms since `since`, or undefined after the give-up time. */
async function refusedAfter(node: Node, accessToken: string, since: number): Promise<number | undefined> {
  while (performance.now() - since < PROPAGATION_GIVE_UP_MS) {
    const response = await node.checkMediaAccess(accessToken)
    await response.arrayBuffer()
    if (response.status === 401) return performance.now() - since
  }
  return undefined
}

async function measurePropagation(cluster: Cluster) {
  progress(`revocation propagation: ${trials} logouts on A`)
  const logout: number[] = []
  const onB: number[] = []
  const onC: number[] = []
  const both: number[] = []
  let missing = 0
  for (let trial = 0; trial < trials; trial++) {
    const tokens = await cluster.a.login(USER.username, USER.password)
    for (const node of [cluster.b, cluster.c]) {
      const status = (await node.checkMediaAccess(tokens.access_token)).status
      if (status !== 200) throw new Error(`node ${node.name} refused a fresh access token with ${status}`)
    }
    const sent = performance.now()
    const answered = cluster.a.logout(tokens.access_token).then(async (response) => {
      if (response.status !== 200) throw new Error(`logout on A answered ${response.status}: ${await response.text()}`)
      return performance.now() - sent
    })
    const [logoutMs, bMs, cMs] = await Promise.all([answered, refusedAfter(cluster.b, tokens.access_token, sent), refusedAfter(cluster.c, tokens.access_token, sent)])
    logout.push(logoutMs)
    for (const [times, ms] of [[onB, bMs], [onC, cMs]] as const) {
      if (ms === undefined) missing++
      else times.push(ms)
    }
    if (bMs !== undefined && cMs !== undefined) both.push(Math.max(bMs, cMs))
  }
  return { logout: stats(logout), B: stats(onB), C: stats(onC), both: stats(both), missing }
}
