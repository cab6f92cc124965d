/**
 * Call history on a large CDR file (issue 8): 1 000 000 legs over 365 days (about 2 700 a day) in a
 * `cdr_general` with MikoPBX's indexes (test/cdr-fixture.ts), queried in this process through the
 * same CallHistory the routes use. A busy user (201, about 5 % of all legs, some on its mobile), an
 * idle one (298, one call a week) and one busy until two months ago (297): `history` for one day,
 * `calls` first and second page over 31 days. Median of several runs after one warm-up. The file is generated once and kept in the
 * temp dir for later runs (delete it to regenerate).
 *   node_modules/.bin/bun bench/history.ts [--rows 1000000] [--runs 9] [--json]
 * Bar: every query < 50 ms. Missing it is reported, not fatal.
 */
import { Database } from 'bun:sqlite'
import { existsSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { DirectoryUser } from '../src/directory/directory'
import { addDays, CallHistory, partyNumbersOf, type CallRange } from '../src/history/call-history'
import { CdrSource, type LegPosition } from '../src/history/cdr-reader'
import { createCdrTable, MONITOR } from '../test/cdr-fixture'
import { median, positiveInt, printTable, progress, runBench, verdict } from './common'

const LAST_DAY = '2026-11-23'
const DAYS = 365
const BAR_MS = 50
const BUSY: DirectoryUser = { id: 1, username: '201', displayName: 'Busy', role: 'user', mobile: '9261234567', disabled: false }
const IDLE: DirectoryUser = { id: 2, username: '298', displayName: 'Idle', role: 'user', mobile: '9267654321', disabled: false }
/** As busy as 201 until 60 days before the last day, then away: many legs in all, none in the last month. */
const AWAY: DirectoryUser = { id: 3, username: '297', displayName: 'Away', role: 'user', mobile: '', disabled: false }
const AWAY_FROM = addDays(LAST_DAY, -60)

/** mulberry32: the same file on every machine. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function generate(path: string, rows: number): void {
  const next = random(8)
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
  const others = Array.from({ length: 100 }, (_, i) => String(200 + i)).filter((ext) => ![BUSY, IDLE, AWAY].some((user) => user.username === ext))
  let today = ''
  const extension = () => {
    const draw = next()
    return draw < 0.05 ? BUSY.username : draw < 0.1 && today < AWAY_FROM ? AWAY.username : pick(others)
  }
  const external = () => `7495${String(Math.floor(next() * 1e7)).padStart(7, '0')}`
  const temp = `${path}.part`
  rmSync(temp, { force: true })
  const db = new Database(temp, { create: true })
  db.run('PRAGMA journal_mode = WAL')
  db.run('PRAGMA synchronous = OFF')
  createCdrTable(db)
  const columns = ['start', 'endtime', 'answer', 'src_num', 'dst_num', 'UNIQUEID', 'linkedid', 'disposition', 'recordingfile', 'from_account', 'to_account', 'duration', 'billsec', 'transfer', 'a_transfer']
  const insert = db.prepare(`INSERT INTO cdr_general (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`)
  const perDay = Math.ceil(rows / DAYS)
  let written = 0
  let callNumber = 0
  const writeDay = db.transaction((day: string, idleCall: boolean) => {
    today = day
    const seconds = Array.from({ length: perDay }, () => Math.floor(next() * 86400)).sort((a, b) => a - b)
    for (let i = 0; i < seconds.length && written < rows; ) {
      const linkedid = `mikopbx-${++callNumber}`
      const kind = next()
      const caller = idleCall && i === 0 ? IDLE.username : kind < 0.2 ? extension() : kind < 0.6 ? external() : extension()
      const callees =
        kind < 0.1 ? [extension(), extension()] : kind < 0.6 ? [next() < 0.05 ? `+7${BUSY.mobile}` : extension()] : [kind < 0.8 ? extension() : external()]
      for (const callee of callees) {
        if (written >= rows || i >= seconds.length) break
        const at = seconds[i++]!
        const talk = next() < 0.7 ? Math.floor(next() * 300) + 1 : 0
        const start = `${day} ${clock(at)}.${String(Math.floor(next() * 1000)).padStart(3, '0')}`
        const uniqueid = `${linkedid}.${written}`
        insert.run(
          start,
          `${day} ${clock(Math.min(at + 10 + talk, 86399))}.000`,
          talk ? `${day} ${clock(Math.min(at + 10, 86399))}.000` : '',
          caller,
          callee,
          uniqueid,
          linkedid,
          talk ? 'ANSWERED' : 'NO ANSWER',
          talk ? `${MONITOR}/${day.replaceAll('-', '/')}/${clock(at).slice(0, 2)}/${uniqueid}.mp3` : '',
          /^\d{3}$/.test(caller) ? caller : 'SIP-TRUNK',
          /^\d{3}$/.test(callee) ? callee : 'SIP-TRUNK',
          10 + talk,
          talk,
          0,
          0,
        )
        written++
      }
    }
  })
  for (let d = DAYS - 1; d >= 0; d--) {
    writeDay(addDays(LAST_DAY, -d), d % 7 === 0)
    if (d % 73 === 0) progress(`${written} rows written`)
  }
  db.run('PRAGMA wal_checkpoint(TRUNCATE)')
  db.close()
  renameSync(temp, path)
}

function clock(second: number): string {
  const pad = (value: number) => String(value).padStart(2, '0')
  return `${pad(Math.floor(second / 3600))}:${pad(Math.floor(second / 60) % 60)}:${pad(second % 60)}`
}

interface Case {
  name: string
  run: () => number
}

function timeMs(run: () => number, runs: number): { ms: number; calls: number } {
  const calls = run()
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const started = Bun.nanoseconds()
    run()
    times.push((Bun.nanoseconds() - started) / 1e6)
  }
  return { ms: median(times), calls }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '9' }, json: { type: 'boolean', default: false } } })
  const rows = positiveInt('--rows', values.rows!)
  const runs = positiveInt('--runs', values.runs!)
  const path = join(tmpdir(), `softphone-bench-cdr-v2-${rows}.db`)
  if (!existsSync(path)) {
    progress(`generating ${rows} CDR legs into ${path} (once)`)
    generate(path, rows)
  }
  const source = new CdrSource(path)
  const history = new CallHistory(source, (number) => /^2\d\d$/.test(number))
  const day: CallRange = { from: LAST_DAY, to: LAST_DAY }
  const month: CallRange = { from: addDays(LAST_DAY, -30), to: LAST_DAY }
  const secondPage = (user: DirectoryUser): LegPosition | null => history.page(user, month, 100, null).next
  const cases: Case[] = []
  for (const [label, user] of [['busy 201', BUSY], ['idle 298', IDLE], ['away 297', AWAY]] as const) {
    const cursor = secondPage(user)
    cases.push(
      { name: `history ${label}: one day`, run: () => history.page(user, day, 500, null).calls.length },
      { name: `calls ${label}: 31 days, limit 100, page 1`, run: () => history.page(user, month, 100, null).calls.length },
      { name: `calls ${label}: 31 days, limit 500, page 1`, run: () => history.page(user, month, 500, null).calls.length },
    )
    if (cursor) cases.push({ name: `calls ${label}: 31 days, limit 100, page 2`, run: () => history.page(user, month, 100, cursor).calls.length })
  }
  const results = cases.map((each) => ({ name: each.name, ...timeMs(each.run, runs) }))
  source.close()
  const reader = new CdrSource(path)
  const opening = reader.open()
  const plans = opening.source === 'cdr'
    ? Object.fromEntries([BUSY, IDLE, AWAY].map((user) => [user.username, opening.reader.plan(partyNumbersOf(user), `${month.from} 00:00:00`, `${addDays(LAST_DAY, 1)} 00:00:00`).kind]))
    : {}
  reader.close()
  const plan = `31 days: 201 by ${plans['201']}, 298 by ${plans['298']}, 297 by ${plans['297']}`
  if (values.json) {
    console.log(JSON.stringify({ rows, runs, plan, results }, null, 2))
    return
  }
  console.log(`${rows} legs over ${DAYS} days; plan for ${plan}`)
  printTable([
    ['query', 'calls', 'median ms', `< ${BAR_MS} ms`],
    ...results.map((each) => [each.name, String(each.calls), each.ms.toFixed(2), verdict(each.ms < BAR_MS)]),
  ])
}

await runBench(main)
