/**
 * Read-only access to MikoPBX's `cdr_general` table (README "Call history"). The file belongs to
 * MikoPBX: it is opened read-only, never created, written or migrated.
 */
import { Database } from 'bun:sqlite'
import { existsSync } from 'node:fs'
import { storeOutageOf } from '../store/database'
import { fileIdentity } from '../store/file-identity'

/**
 * bun:sqlite waits for a lock synchronously, pausing the whole server; a CDR read gives up soon
 * and answers 503 instead (the HTTP plugin maps SQLITE_BUSY).
 */
export const CDR_BUSY_TIMEOUT_MS = 200

/** `cdr`: calls were read; `none`: no CDR file; `unsupported_schema`: a file without the columns used here. */
export type HistorySource = 'cdr' | 'none' | 'unsupported_schema'

const REQUIRED_COLUMNS = [
  'id', 'start', 'endtime', 'answer', 'src_num', 'dst_num', 'UNIQUEID', 'linkedid', 'disposition',
  'recordingfile', 'duration', 'billsec',
] as const
/** Newer MikoPBX versions only (names), or not needed to list a call (transfer flags). */
const OPTIONAL_COLUMNS = ['src_name', 'dst_name', 'transfer', 'a_transfer'] as const

export interface CdrLeg {
  id: number
  start: string
  answer: string | null
  endtime: string | null
  src_num: string | null
  dst_num: string | null
  src_name: string | null
  dst_name: string | null
  linkedid: string | null
  uniqueid: string | null
  disposition: string | null
  duration: number | null
  billsec: number | null
  recordingfile: string | null
  transfer: number | null
  a_transfer: number | null
}

/** A leg's place in the (start, id) order that pages follow. */
export interface LegPosition {
  start: string
  id: number
}

/** At most this many exact `src_num`/`dst_num` values stand for one user (call-history.ts builds them). */
export const MAX_PARTY_NUMBERS = 8

/**
 * How a page finds the user's legs. `index`: through the `src_num` and `dst_num` indexes, within
 * the ids the range spans; cheap when the user has few legs there. `scan`: down the `start` index
 * from the newest leg, testing each; cheap when the user's legs are dense, since a page fills fast.
 */
export type LegPlan = { kind: 'index'; lo: number; hi: number } | { kind: 'scan' } | { kind: 'empty' }

/** Own legs in a range up to which the index plan is chosen (bench/history.ts). */
export const INDEX_PLAN_MAX_LEGS = 2000

export interface OwnLeg {
  id: number
  start: string
  call: string
}

interface Parties {
  src_num: string | null
  dst_num: string | null
}

interface RecordedLeg extends Parties {
  linkedid: string | null
  recordingfile: string | null
}

export type CdrOpening = { source: 'cdr'; reader: CdrReader } | { source: 'none' | 'unsupported_schema' }

export type WarnLog = (message: string) => void
const warnOnStderr: WarnLog = (message) => console.error(JSON.stringify({ level: 'warn', error: message }))

/** Opens the CDR file on first use, so a file MikoPBX creates after our start is picked up. */
export class CdrSource {
  private reader: CdrReader | null = null
  /** The file the reader has open (`dev:ino`). */
  private identity: string | null = null
  private warned = false

  constructor(
    readonly path: string | null,
    private readonly warn: WarnLog = warnOnStderr,
  ) {}

  open(): CdrOpening {
    if (this.reader) return { source: 'cdr', reader: this.reader }
    if (this.path === null || !existsSync(this.path)) return { source: 'none' }
    const db = new Database(this.path, { readonly: true, strict: true })
    try {
      db.run(`PRAGMA busy_timeout = ${CDR_BUSY_TIMEOUT_MS}`)
      const missing = missingColumns(db)
      if (missing.length > 0) return this.unsupported(db, `lacks cdr_general columns ${missing.join(', ')}`)
      this.reader = new CdrReader(db)
      this.identity = fileIdentity(this.path)
    } catch (error) {
      // Locked or unreadable: the HTTP plugin answers 503. Anything else (not a database) is a file we can't use.
      if (storeOutageOf(error)) {
        db.close()
        throw error
      }
      return this.unsupported(db, `is unusable (${(error as Error).message})`)
    }
    return { source: 'cdr', reader: this.reader }
  }

  close(): void {
    this.reader?.close()
    this.reader = null
  }

  /**
   * Lets go of the open file when the path now names another one or none (MikoPBX replaced or
   * removed it), so the next open() reads what is there. True when it did.
   */
  followReplacement(): boolean {
    if (this.reader === null || this.path === null || fileIdentity(this.path) === this.identity) return false
    this.close()
    return true
  }

  private unsupported(db: Database, problem: string): CdrOpening {
    db.close()
    this.warnOnce(`CDR file ${this.path} ${problem}; call history is empty`)
    return { source: 'unsupported_schema' }
  }

  private warnOnce(message: string): void {
    if (this.warned) return
    this.warned = true
    this.warn(message)
  }
}

function columnsOf(db: Database): Set<string> {
  const rows = db.query<{ name: string }, []>('PRAGMA table_info(cdr_general)').all()
  return new Set(rows.map((row) => row.name.toLowerCase()))
}

function missingColumns(db: Database): string[] {
  const present = columnsOf(db)
  return REQUIRED_COLUMNS.filter((name) => !present.has(name.toLowerCase()))
}

/** Legs without a linkedid form a call of their own. */
const CALL_KEY = "CASE WHEN linkedid IS NULL OR linkedid = '' THEN 'id:' || id ELSE linkedid END"

type Params = Record<string, string | number>

export class CdrReader {
  private readonly idBounds
  private readonly ownLegCount
  private readonly ownLegsByIndex
  private readonly ownLegsByScan
  private readonly legsByLinkedId
  private readonly legById
  private readonly legsByUniqueId
  private readonly partiesByLinkedId
  private readonly dataVersionQuery

  constructor(private readonly db: Database) {
    const present = columnsOf(db)
    const optional = OPTIONAL_COLUMNS.map((name) => (present.has(name) ? name : `NULL AS ${name}`))
    const columns = [...REQUIRED_COLUMNS.map((name) => (name === 'UNIQUEID' ? 'UNIQUEID AS uniqueid' : name)), ...optional].join(', ')
    const numbers = Array.from({ length: MAX_PARTY_NUMBERS }, (_, i) => `$n${i}`).join(', ')
    const inRange = 'start >= $from AND (start < $beforeStart OR (start = $beforeStart AND id < $beforeId))'
    const own = (column: string) =>
      `SELECT id, start, ${CALL_KEY} AS call FROM cdr_general WHERE ${column} IN (${numbers}) AND id BETWEEN $lo AND $hi AND ${inRange}`
    // Every leg of the range has an id between these two. The indexes on src_num and dst_num end in
    // the rowid, so the index plan seeks straight to the range's part of each number's entries.
    this.idBounds = db.query<{ lo: number | null; hi: number | null }, [Params]>(
      'SELECT min(id) AS lo, max(id) AS hi FROM cdr_general WHERE start >= $from AND start < $end',
    )
    const capped = (column: string) =>
      `SELECT count(*) FROM (SELECT 1 FROM cdr_general WHERE ${column} IN (${numbers}) AND id BETWEEN $lo AND $hi LIMIT $cap)`
    this.ownLegCount = db.query<{ legs: number }, [Params]>(`SELECT (${capped('src_num')}) + (${capped('dst_num')}) AS legs`)
    this.ownLegsByIndex = db.query<OwnLeg, [Params]>(`${own('src_num')} UNION ${own('dst_num')} ORDER BY start DESC, id DESC LIMIT $limit`)
    // The unary + keeps SQLite off the number indexes here, so it walks `start` and stops at the limit.
    this.ownLegsByScan = db.query<OwnLeg, [Params]>(
      `SELECT id, start, ${CALL_KEY} AS call FROM cdr_general
       WHERE ${inRange} AND (+src_num IN (${numbers}) OR +dst_num IN (${numbers}))
       ORDER BY start DESC, id DESC LIMIT $limit`,
    )
    // Sorted here: an ORDER BY costs SQLite a temp b-tree per call, more than the lookup itself.
    this.legsByLinkedId = db.query<CdrLeg, [string]>(`SELECT ${columns} FROM cdr_general WHERE linkedid = ?`)
    this.legById = db.query<CdrLeg, [number]>(`SELECT ${columns} FROM cdr_general WHERE id = ?`)
    // Both through MikoPBX's own indexes (UNIQUEID, linkedid); recordingfile has none.
    this.legsByUniqueId = db.query<RecordedLeg, [string]>('SELECT src_num, dst_num, linkedid, recordingfile FROM cdr_general WHERE UNIQUEID = ?')
    this.partiesByLinkedId = db.query<Parties, [string]>('SELECT src_num, dst_num FROM cdr_general WHERE linkedid = ?')
    this.dataVersionQuery = db.query<{ data_version: number }, []>('PRAGMA data_version')
  }

  /**
   * The numbers on every leg of the call whose leg recorded `recordingFile` (MikoPBX names the file
   * after the leg's UNIQUEID), or null when no leg recorded exactly that file.
   */
  partiesOfRecording(uniqueid: string, recordingFile: string): Set<string> | null {
    const recorders = this.legsByUniqueId.all(uniqueid).filter((leg) => leg.recordingfile === recordingFile)
    if (recorders.length === 0) return null
    const parties = new Set<string>()
    const add = ({ src_num, dst_num }: Parties) => {
      if (src_num) parties.add(src_num)
      if (dst_num) parties.add(dst_num)
    }
    for (const leg of recorders) {
      if (leg.linkedid) this.partiesByLinkedId.all(leg.linkedid).forEach(add)
      else add(leg)
    }
    return parties
  }

  /** Changes whenever another connection (MikoPBX) commits to the file. */
  dataVersion(): number {
    return this.dataVersionQuery.get()!.data_version
  }

  /**
   * Picks how to find the user's legs that start in [from, end): by the number indexes when the user
   * has few legs in all, or few within the range's ids (finding those costs a walk over the range's
   * `start` entries), else by walking `start`, which fills a page quickly when legs are dense.
   */
  plan(numbers: readonly string[], from: string, end: string): LegPlan {
    const cap = INDEX_PLAN_MAX_LEGS + 1
    const everything = { kind: 'index', lo: 0, hi: Number.MAX_SAFE_INTEGER } as const
    if (this.ownLegCount.get({ ...numberParams(numbers), ...everything, cap })!.legs <= INDEX_PLAN_MAX_LEGS) return everything
    const { lo, hi } = this.idBounds.get({ from, end })!
    if (lo === null || hi === null) return { kind: 'empty' }
    const { legs } = this.ownLegCount.get({ ...numberParams(numbers), lo, hi, cap })!
    return legs <= INDEX_PLAN_MAX_LEGS ? { kind: 'index', lo, hi } : { kind: 'scan' }
  }

  /** The user's legs that start at or after `from` and come before `before`, newest first. */
  ownLegsBefore(plan: LegPlan, numbers: readonly string[], from: string, before: LegPosition, limit: number): OwnLeg[] {
    if (plan.kind === 'empty') return []
    const params = { ...numberParams(numbers), from, beforeStart: before.start, beforeId: before.id, limit }
    return plan.kind === 'index' ? this.ownLegsByIndex.all({ ...params, lo: plan.lo, hi: plan.hi }) : this.ownLegsByScan.all(params)
  }

  /** Every leg of one call (the `call` key of an OwnLeg), in start order. */
  legsOf(call: string): CdrLeg[] {
    if (call.startsWith('id:')) {
      const leg = this.legById.get(Number(call.slice(3)))
      return leg ? [leg] : []
    }
    return this.legsByLinkedId.all(call).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.id - b.id))
  }

  close(): void {
    this.db.close()
  }
}

/** $n0 … $n7: the numbers, the first repeated to fill the prepared statements' fixed arity. */
function numberParams(numbers: readonly string[]): Params {
  return Object.fromEntries(Array.from({ length: MAX_PARTY_NUMBERS }, (_, i) => [`n${i}`, numbers[i] ?? numbers[0]!]))
}
