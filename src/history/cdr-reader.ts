/**
 * Read-only access to MikoPBX's `cdr_general` table (README "Call history"). The file belongs to
 * MikoPBX: it is opened read-only, never created, written or migrated.
 */
import { Database } from 'bun:sqlite'
import { existsSync } from 'node:fs'

/**
 * bun:sqlite waits for a lock synchronously, pausing the whole server; a CDR read gives up soon
 * and answers 503 instead (the HTTP plugin maps SQLITE_BUSY).
 */
export const CDR_BUSY_TIMEOUT_MS = 200

/** `cdr`: calls were read; `none`: no CDR file; `unsupported_schema`: a file without the columns used here. */
export type HistorySource = 'cdr' | 'none' | 'unsupported_schema'

const REQUIRED_COLUMNS = [
  'id', 'start', 'endtime', 'answer', 'src_num', 'dst_num', 'UNIQUEID', 'linkedid', 'disposition',
  'recordingfile', 'from_account', 'to_account', 'duration', 'billsec',
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
  from_account: string | null
  to_account: string | null
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

/** The numbers under which a user appears in CDRs: exact ones (extension, WebRTC peer) and a mobile's last 10 digits. */
export interface PartyNumbers {
  exact: readonly [string, string]
  mobile: string
}

export interface OwnLeg {
  id: number
  start: string
  call: string
}

export type CdrOpening = { source: 'cdr'; reader: CdrReader } | { source: 'none' | 'unsupported_schema' }

export type WarnLog = (message: string) => void
const warnOnStderr: WarnLog = (message) => console.error(JSON.stringify({ level: 'warn', error: message }))

/** Opens the CDR file on first use, so a file MikoPBX creates after our start is picked up. */
export class CdrSource {
  private reader: CdrReader | null = null
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
      if (missing.length > 0) {
        db.close()
        this.warnOnce(`CDR file ${this.path} lacks cdr_general columns ${missing.join(', ')}; call history is empty`)
        return { source: 'unsupported_schema' }
      }
      this.reader = new CdrReader(db)
    } catch (error) {
      db.close()
      throw error
    }
    return { source: 'cdr', reader: this.reader }
  }

  close(): void {
    this.reader?.close()
    this.reader = null
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

export class CdrReader {
  private readonly ownLegs
  private readonly legsByLinkedId
  private readonly legById

  constructor(private readonly db: Database) {
    const present = columnsOf(db)
    const optional = OPTIONAL_COLUMNS.map((name) => (present.has(name) ? name : `NULL AS ${name}`))
    const columns = [...REQUIRED_COLUMNS.map((name) => (name === 'UNIQUEID' ? 'UNIQUEID AS uniqueid' : name)), ...optional].join(', ')
    // The mobile is compared by its last 10 digits, which no index can serve; the scan follows the
    // index on `start` from the newest leg down and stops at the page's end (bench/history.ts).
    this.ownLegs = db.query<OwnLeg, [Record<string, string | number>]>(
      `SELECT id, start, ${CALL_KEY} AS call FROM cdr_general
       WHERE start >= $from AND (start < $beforeStart OR (start = $beforeStart AND id < $beforeId))
         AND (src_num IN ($ext, $peer) OR dst_num IN ($ext, $peer) OR from_account IN ($ext, $peer) OR to_account IN ($ext, $peer)
              OR ($mobile <> '' AND (substr(src_num, -10) = $mobile OR substr(dst_num, -10) = $mobile)))
       ORDER BY start DESC, id DESC LIMIT $limit`,
    )
    this.legsByLinkedId = db.query<CdrLeg, [string]>(`SELECT ${columns} FROM cdr_general WHERE linkedid = ? ORDER BY start, id`)
    this.legById = db.query<CdrLeg, [number]>(`SELECT ${columns} FROM cdr_general WHERE id = ?`)
  }

  /** The user's legs that start at or after `from` and come before `before`, newest first. */
  ownLegsBefore(numbers: PartyNumbers, from: string, before: LegPosition, limit: number): OwnLeg[] {
    const [ext, peer] = numbers.exact
    return this.ownLegs.all({ from, beforeStart: before.start, beforeId: before.id, ext, peer, mobile: numbers.mobile, limit })
  }

  /** Every leg of one call (the `call` key of an OwnLeg), in start order. */
  legsOf(call: string): CdrLeg[] {
    if (call.startsWith('id:')) {
      const leg = this.legById.get(Number(call.slice(3)))
      return leg ? [leg] : []
    }
    return this.legsByLinkedId.all(call)
  }

  close(): void {
    this.db.close()
  }
}
