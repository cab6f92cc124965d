/**
 * Login throughput with the MikoPBX directory (README "Running on MikoPBX") as a ratio to a raw
 * Bun.serve baseline (target >= 20 %): the binary on a fixture mikopbx.db, driven by wrk with
 * correct logins for one peer from random client addresses (bench/good-login.lua). Each login
 * also starts a session, so it includes the store's commit (synchronous=FULL) and a log line.
 * Rounds as in bench/run.ts: baseline, then logins, each ratio against its own round's baseline.
 *   node_modules/.bin/bun bench/mikopbx-login.ts [--duration 10] [--rounds 3] [--connections 64]
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildMikoPbxFixture, FIXTURE_PEERS } from '../test/mikopbx-fixture'
import {
  CLIENT_CPU,
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
  startBaseline,
  TASKSET,
  verdict,
  withServer,
} from './common'

const MIN_RATIO_PCT = 20
const WARMUP_SECONDS = 2
const LOGIN_SCRIPT = join(import.meta.dir, 'good-login.lua')

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
  },
})
const duration = positiveInt('--duration', options.duration)
const rounds = positiveInt('--rounds', options.rounds)
const connections = positiveInt('--connections', options.connections)

await runBench(main, { watchdogMs: (rounds * 2 * (duration + WARMUP_SECONDS) + 120) * 1000 })

async function main(): Promise<void> {
  requireBinary()
  const pbxDir = mkdtempSync(join(tmpdir(), 'softphone-bench-pbx-'))
  onExit(() => rmSync(pbxDir, { recursive: true, force: true }))
  const dbPath = join(pbxDir, 'mikopbx.db')
  buildMikoPbxFixture(dbPath)

  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  const pin = (pid: number) => {
    if (!unpinnedWhy) pinProcess(pid, SERVER_CPU)
  }
  const wrkPrefix = unpinnedWhy ? [] : [TASKSET, '-c', String(CLIENT_CPU)]

  const baseline = await startBaseline()
  pin(baseline.pid)
  await withServer(async (server) => {
    await server.start(['--directory', 'mikopbx', '--mikopbx-db', dbPath])
    pin(server.pid!)
    const { alice } = FIXTURE_PEERS
    const check = await server.postLogin(alice.extension, alice.secret, '10.0.0.1')
    if (check.status !== 200) throw new Error(`a login with the fixture's secret answered ${check.status}: ${await check.text()}`)

    const loginArgs = ['-t1', `-c${connections}`, '--timeout', '10s', '-s', LOGIN_SCRIPT, `${server.baseUrl}/auth/login`, '--', alice.extension, alice.secret]
    const baseArgs = ['-t1', `-c${connections}`, baseline.url]
    const ratios: number[] = []
    const loginRps: number[] = []
    const baseRps: number[] = []
    for (let round = 1; round <= rounds; round++) {
      progress(`round ${round}/${rounds}: baseline and MikoPBX logins (${WARMUP_SECONDS}s warm-up + ${duration}s each)`)
      await runWrk('baseline', wrkPrefix, baseArgs, WARMUP_SECONDS)
      const base = await runWrk('baseline', wrkPrefix, baseArgs, duration)
      await runWrk('login', wrkPrefix, loginArgs, WARMUP_SECONDS)
      const logins = await runWrk('login', wrkPrefix, loginArgs, duration)
      const statuses = /login-statuses (\{.*\})/.exec(logins.out)?.[1]
      const counted = statuses ? (JSON.parse(statuses) as Record<string, number>) : {}
      const failed = Object.entries(counted).filter(([status]) => status !== '200' && status !== 'durationUs')
      if (failed.length > 0) throw new Error(`logins answered other than 200: ${JSON.stringify(counted)}`)
      baseRps.push(base.rps)
      loginRps.push(logins.rps)
      ratios.push((logins.rps / base.rps) * 100)
    }
    const ratio = median(ratios)
    const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `servers pinned to CPU ${SERVER_CPU}, wrk to CPU ${CLIENT_CPU}`
    console.log(`\nwrk -t1 -c${connections} -d${duration}s, ${rounds} rounds; ${pinning}; loopback, Bun ${Bun.version}\n`)
    printTable([
      ['target', 'req/s (median)', 'vs baseline: median (min-max)', 'target', 'result'],
      ['baseline (raw Bun.serve)', median(baseRps).toFixed(0), '', '', ''],
      [
        'MikoPBX login (200)',
        median(loginRps).toFixed(0),
        `${ratio.toFixed(1)} % (${Math.min(...ratios).toFixed(1)}-${Math.max(...ratios).toFixed(1)})`,
        `>= ${MIN_RATIO_PCT} %`,
        verdict(ratio >= MIN_RATIO_PCT),
      ],
    ])
  })
}
