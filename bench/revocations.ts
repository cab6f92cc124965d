/**
 * Many revoked token ids (issue 7): the compiled binary with 1 000 000 live rows in `revoked_tokens` against the same
 * binary on an empty table, in one run. Measures start-up (exec → first 200 on /health, and → the line saying every id
 * is in memory), idle RSS once the ids are loaded, and check-media-access req/s with wrk (servers on CPU 0, wrk on
 * CPU 1 when possible; rounds alternate the two data dirs, each ratio is against its own round). Also the hot path in
 * this process: `isTokenIdRevoked` per call on the same million, against the Map of strings it replaced.
 *   node_modules/.bin/bun bench/revocations.ts [--ids 1000000] [--starts 5] [--duration 10] [--rounds 3] [--json]
 * Bars: start-up < 1 s; idle RSS < 40 MiB over the empty table. Missing one is reported, not fatal.
 */
import { Database } from 'bun:sqlite'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { systemClock } from '../src/clock'
import { openStore } from '../src/store/database'
import { SqliteRevocations } from '../src/tokens/sqlite-revocations'
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
  rssKiB,
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
/** After the ids are in memory, before RSS is read: what run.ts allows a fresh server too. */
const IDLE_MS = 1000
const LOADED_LINE = /^(\d+) revoked token ids in memory after (\d+) ms$/m
const LOAD_TIMEOUT_MS = 60_000
const STARTUP_LIMIT_MS = 1000
const RSS_OVER_EMPTY_LIMIT_MIB = 40
/** Hot-path calls per timing, and timings per case (the fastest counts: the machine is shared). */
const CALLS = 2_000_000
const TIMINGS = 7
const WATCHDOG_MS = 30 * 60 * 1000

const { values: options } = parseArgs({
  options: {
    ids: { type: 'string', default: '1000000' },
    starts: { type: 'string', default: '5' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
})
const idCount = positiveInt('--ids', options.ids)
const starts = positiveInt('--starts', options.starts)
const duration = positiveInt('--duration', options.duration)
const rounds = positiveInt('--rounds', options.rounds)

await runBench(main, { watchdogMs: WATCHDOG_MS })

interface DataDir {
  name: string
  path: string
  ids: number
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found; install it with: apt-get install wrk`)
  requireBinary()
  const empty = await prepareDataDir('empty table', 0)
  const full = await prepareDataDir(`${idCount} ids`, idCount)
  const dirs = [empty, full]

  const hotPath = await measureHotPath(full)

  progress(`start-up: ${starts} starts of each, alternating`)
  const startups = new Map<DataDir, Startup[]>(dirs.map((dir) => [dir, []]))
  for (let i = 0; i < starts; i++) {
    for (const dir of dirs) {
      const { server, ...startup } = await startOn(dir)
      await server.stop()
      startups.get(dir)!.push(startup)
    }
  }

  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}; ratios will be noisier`)
  const running = []
  for (const dir of dirs) {
    const { server } = await startOn(dir)
    if (!unpinnedWhy) pinProcess(server.pid!, SERVER_CPU)
    running.push({ dir, server, idleRssMiB: 0, token: '' })
  }
  await Bun.sleep(IDLE_MS)
  for (const entry of running) {
    entry.idleRssMiB = rssKiB(entry.server.pid!) / 1024
    entry.token = (await entry.server.login(USER.name, USER.password)).access_token
    const check = await get(mediaUrl(entry.server), bearer(entry.token))
    if (check.status !== 200) throw new Error(`${entry.dir.name}: check-media-access answered ${check.status}, not 200: ${check.text}`)
  }

  const wrkPrefix = unpinnedWhy ? [] : [TASKSET, '-c', String(WRK_CPU)]
  const perRound: { rps: number[]; ratio: number }[] = []
  for (let round = 1; round <= rounds; round++) {
    const rps = []
    for (const { dir, server, token } of running) {
      progress(`round ${round}/${rounds}: check-media-access, ${dir.name} (${WARMUP_SECONDS}s warm-up + ${duration}s)`)
      const args = ['-t1', `-c${CONNECTIONS}`, '-H', `Authorization: Bearer ${token}`, mediaUrl(server)]
      await runWrk(dir.name, wrkPrefix, args, WARMUP_SECONDS)
      rps.push((await runWrk(dir.name, wrkPrefix, args, duration)).rps)
    }
    perRound.push({ rps, ratio: rps[1]! / rps[0]! })
  }

  const rows = running.map(({ dir, idleRssMiB }, i) => {
    const of = (key: keyof Startup) => median(startups.get(dir)!.map((startup) => startup[key]))
    return { name: dir.name, ids: dir.ids, healthMs: of('healthMs'), loadedMs: of('loadedMs'), idleRssMiB, rps: median(perRound.map((r) => r.rps[i]!)) }
  })
  const [base, loaded] = rows as [(typeof rows)[0], (typeof rows)[0]]
  const rssOverMiB = loaded.idleRssMiB - base.idleRssMiB
  const ratios = perRound.map((r) => r.ratio * 100)
  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `servers pinned to CPU ${SERVER_CPU}, wrk to CPU ${WRK_CPU}`

  console.log(`\nstart-up: median of ${starts} starts each; RSS ${IDLE_MS} ms after the ids are in memory`)
  console.log(`check-media-access: wrk -t1 -c${CONNECTIONS} -d${duration}s, ${rounds} rounds, median req/s; ${pinning}; Bun ${Bun.version}\n`)
  printTable([
    ['data dir', 'exec -> first 200 /health', 'exec -> ids in memory', 'idle RSS', 'check-media-access req/s'],
    ...rows.map((r) => [r.name, `${r.healthMs.toFixed(0)} ms`, `${r.loadedMs.toFixed(0)} ms`, `${r.idleRssMiB.toFixed(1)} MiB`, r.rps.toFixed(0)]),
  ])
  console.log()
  const pct = (v: number) => `${v.toFixed(0)} %`
  printTable([
    ['start-up with ids', `${loaded.healthMs.toFixed(0)} ms`, `< ${STARTUP_LIMIT_MS} ms: ${verdict(loaded.healthMs < STARTUP_LIMIT_MS)}`],
    ['idle RSS over empty', `${rssOverMiB.toFixed(1)} MiB`, `< ${RSS_OVER_EMPTY_LIMIT_MIB} MiB: ${verdict(rssOverMiB < RSS_OVER_EMPTY_LIMIT_MIB)}`],
    ['check-media-access vs empty', `${pct(median(ratios))} (${pct(Math.min(...ratios))}-${pct(Math.max(...ratios))})`, 'median (min-max) over rounds'],
  ])
  console.log(`\nhot path in process, ${idCount} ids: ns per isTokenIdRevoked (fastest of ${TIMINGS} x ${CALLS} calls) against a Map<string, number>`)
  console.log(`in-process load: ${hotPath.loadMs.toFixed(0)} ms\n`)
  printTable([
    ['ids asked', 'revoked set', 'Map'],
    ...hotPath.cases.map((c) => [c.name, `${c.setNs.toFixed(1)} ns`, `${c.mapNs.toFixed(1)} ns`]),
  ])

  if (options.json) {
    const settings = { ids: idCount, starts, durationSeconds: duration, rounds, connections: CONNECTIONS, pinning, bun: Bun.version }
    console.log(JSON.stringify({ settings, dataDirs: rows, startups: Object.fromEntries([...startups].map(([dir, s]) => [dir.name, s])), perRound, rssOverMiB, hotPath }, null, 2))
  }
}

/** A data dir with the bench user, its schema made by the binary itself, and `ids` live revoked ids written directly. */
async function prepareDataDir(name: string, ids: number): Promise<DataDir> {
  const path = mkdtempSync(join(tmpdir(), 'softphone-bench-revocations-'))
  onExit(() => rmSync(path, { recursive: true, force: true }))
  await new ServerProcess(path).addUser(USER.name, USER.password)
  if (ids > 0) {
    progress(`${name}: writing ${ids} revoked ids`)
    const started = performance.now()
    writeRevokedIds(join(path, 'softphone.db'), ids)
    progress(`${name}: written in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  }
  return { name, path, ids }
}

/** Random ids like ours, expiring within the next day; inserted in key order without fsyncs, which only the bench may do. */
function writeRevokedIds(dbPath: string, ids: number): void {
  const db = new Database(dbPath, { strict: true })
  db.run('PRAGMA synchronous = OFF')
  const now = Math.floor(Date.now() / 1000)
  const jtis = Array.from({ length: ids }, () => randomBytes(16).toString('base64url')).sort()
  const insert = db.query<unknown, [string, number]>('INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)')
  db.transaction(() => {
    for (const jti of jtis) insert.run(jti, now + 3600 + Math.floor(Math.random() * 82_800))
  })()
  db.close()
}

interface Startup {
  healthMs: number
  loadedMs: number
  /** What the server itself says the load took. */
  serverLoadMs: number
}

/** Starts the binary on `dir` and waits until every id is in memory. */
async function startOn(dir: DataDir): Promise<Startup & { server: ServerProcess }> {
  const server = new ServerProcess(dir.path)
  onExit(() => server.stop('SIGKILL'))
  const exec = performance.now()
  await server.start()
  while ((await get(`${server.baseUrl}/health`).catch(() => undefined))?.status !== 200) {
    if (performance.now() - exec > 10_000) throw new Error(`${dir.name}: /health did not answer 200 within 10 s of exec`)
    await Bun.sleep(1)
  }
  const healthMs = performance.now() - exec
  let line: RegExpExecArray | null
  while (!(line = LOADED_LINE.exec(server.stdout))) {
    if (performance.now() - exec > LOAD_TIMEOUT_MS) throw new Error(`${dir.name}: ids not in memory within ${LOAD_TIMEOUT_MS / 1000} s: ${server.stderr}`)
    await Bun.sleep(1)
  }
  const loadedMs = performance.now() - exec
  if (Number(line[1]) !== dir.ids) throw new Error(`${dir.name}: the server loaded ${line[1]} ids, not ${dir.ids}`)
  return { server, healthMs, loadedMs, serverLoadMs: Number(line[2]) }
}

interface HotPathCase {
  name: string
  setNs: number
  mapNs: number
}

/**
 * isTokenIdRevoked on the full data dir's ids, opened in this process, against a Map of the same strings: a thousand
 * ids asked in turn, which stay in the CPU caches as the few tokens of a busy moment do, and every id once, which don't.
 */
async function measureHotPath(dir: DataDir): Promise<{ loadMs: number; cases: HotPathCase[] }> {
  progress('hot path in process')
  const db = openStore(join(dir.path, 'softphone.db'))
  try {
    const revocations = new SqliteRevocations(db, systemClock)
    const { ms: loadMs } = await revocations.idsLoaded
    const stored = db.query<{ jti: string; expires_at: number }, []>('SELECT jti, expires_at FROM revoked_tokens').all()
    const map = new Map(stored.map((row) => [row.jti, row.expires_at]))
    const revoked = stored.map((row) => row.jti)
    const shuffled = [...revoked].sort(() => Math.random() - 0.5)
    const unrevoked = Array.from({ length: 1000 }, () => randomBytes(16).toString('base64url'))
    const cases: Array<[string, string[], boolean]> = [
      ['1 000 revoked, in turn', shuffled.slice(0, 1000), true],
      ['1 000 not revoked, in turn', unrevoked, false],
      [`all ${revoked.length} revoked, shuffled`, shuffled, true],
    ]
    return {
      loadMs,
      cases: cases.map(([name, ids, revoked]) => ({
        name,
        setNs: fastestNs(name, ids, revoked, (id) => revocations.isTokenIdRevoked(id)),
        mapNs: fastestNs(name, ids, revoked, (id) => map.has(id)),
      })),
    }
  } finally {
    db.close()
  }
}

/** Also checks every answer, which keeps the calls from being optimised away. */
function fastestNs(name: string, ids: string[], revoked: boolean, isRevoked: (id: string) => boolean): number {
  let fastest = Infinity
  for (let timing = 0; timing < TIMINGS; timing++) {
    const start = performance.now()
    let hits = 0
    for (let call = 0; call < CALLS; call++) if (isRevoked(ids[call % ids.length]!)) hits++
    fastest = Math.min(fastest, performance.now() - start)
    if (hits !== (revoked ? CALLS : 0)) throw new Error(`hot path, ${name}: ${hits} of ${CALLS} calls said revoked`)
  }
  return (fastest * 1e6) / CALLS
}

function mediaUrl(server: ServerProcess): string {
  return `${server.baseUrl}/check-media-access`
}

function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` }
}
