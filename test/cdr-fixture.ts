/**
 * A MikoPBX `cdr.db` with known calls (README "Call history"): the table and indexes as MikoPBX's
 * CallDetailRecords model declares them, and one day of calls seen from extension 201.
 */
import { Database } from 'bun:sqlite'

/** Columns of every MikoPBX version; `src_name`, `dst_name` come with newer ones. */
export const CDR_COLUMNS = [
  'start', 'endtime', 'answer', 'src_chan', 'src_num', 'dst_chan', 'dst_num', 'UNIQUEID', 'linkedid', 'did',
  'disposition', 'recordingfile', 'from_account', 'to_account', 'dialstatus', 'appname', 'transfer', 'is_app',
  'duration', 'billsec', 'work_completed', 'src_call_id', 'dst_call_id', 'verbose_call_id', 'a_transfer',
] as const
const NAME_COLUMNS = ['src_name', 'dst_name'] as const

/** Single-column indexes, as MikoPBX's CallDetailRecords model declares them. */
export const CDR_INDEXED_COLUMNS = ['UNIQUEID', 'start', 'src_chan', 'dst_chan', 'src_num', 'dst_num', 'linkedid'] as const

const INTEGER_COLUMNS = new Set<string>(['transfer', 'is_app', 'duration', 'billsec', 'work_completed', 'a_transfer'])

export type CdrRow = Partial<Record<(typeof CDR_COLUMNS)[number] | (typeof NAME_COLUMNS)[number], string | number>> & { id?: number }

export const MONITOR = '/storage/usbdisk1/mikopbx/astspool/monitor'
export const FIXTURE_DAY = '2026-11-23'

export function createCdrTable(db: Database, { names = true }: { names?: boolean } = {}): void {
  const columns = [...CDR_COLUMNS, ...(names ? NAME_COLUMNS : [])]
  const typed = columns.map((name) => `${name} ${INTEGER_COLUMNS.has(name) ? 'INTEGER' : 'TEXT'}`)
  db.run(`CREATE TABLE cdr_general (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, ${typed.join(', ')})`)
  for (const column of CDR_INDEXED_COLUMNS) db.run(`CREATE INDEX i_cdr_general_${column} ON cdr_general (${column})`)
}

export function insertRows(db: Database, rows: readonly CdrRow[]): void {
  const insert = db.transaction((batch: readonly CdrRow[]) => {
    for (const row of batch) {
      const names = Object.keys(row)
      db.query(`INSERT INTO cdr_general (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`).run(
        ...names.map((name) => row[name as keyof CdrRow] as string | number),
      )
    }
  })
  insert(rows)
}

/** One leg: `at` is HH:MM:SS on `day`, `talk` the seconds answered (0: not answered), `ring` before answering. */
export function leg(
  linkedid: string,
  at: string,
  src: string,
  dst: string,
  { talk = 0, ring = 5, day = FIXTURE_DAY, recorded = false, extra = {} }: { talk?: number; ring?: number; day?: string; recorded?: boolean; extra?: CdrRow } = {},
): CdrRow {
  const start = `${day} ${at}.000`
  const answer = talk > 0 ? shift(start, ring) : ''
  const uniqueid = `${linkedid}.${src}.${dst}`
  const hour = at.slice(0, 2)
  return {
    start,
    answer,
    endtime: shift(start, ring + talk),
    src_num: src,
    dst_num: dst,
    src_chan: `PJSIP/${src}-0001`,
    dst_chan: `PJSIP/${dst}-0002`,
    UNIQUEID: uniqueid,
    linkedid,
    disposition: talk > 0 ? 'ANSWERED' : 'NO ANSWER',
    recordingfile: recorded ? `${MONITOR}/${day.replaceAll('-', '/')}/${hour}/${uniqueid}.mp3` : '',
    from_account: /^\d{3}$/.test(src) ? src : '',
    to_account: /^\d{3}$/.test(dst) ? dst : '',
    transfer: 0,
    a_transfer: 0,
    duration: ring + talk,
    billsec: talk,
    work_completed: 1,
    ...extra,
  }
}

/** `YYYY-MM-DD HH:MM:SS.mmm` plus some seconds (same day in the fixture). */
function shift(time: string, seconds: number): string {
  const moved = new Date(Date.parse(`${time.replace(' ', 'T')}Z`) + seconds * 1000).toISOString()
  return `${moved.slice(0, 10)} ${moved.slice(11, 23)}`
}

/**
 * The day of 201 (mobile 0123456789), newest last. `mine` lists the linkedids 201 must see;
 * 'L-other' (202 → 203) is not 201's.
 */
export const FIXTURE_ROWS: readonly CdrRow[] = [
  leg('L-prev', '23:59:50', '201-WS', '202', { day: '2026-11-22', talk: 20 }),
  leg('L-inner', '09:00:00', '201', '202', { talk: 30, recorded: true, extra: { src_name: 'Alice', dst_name: 'Bob' } }),
  leg('L-in', '09:10:00', '74951112233', '201', { talk: 60, recorded: true, extra: { from_account: 'SIP-TRUNK', src_name: 'ACME Ltd' } }),
  leg('L-out', '09:20:00', '201', '84957654321', { talk: 45, extra: { to_account: 'SIP-TRUNK' } }),
  leg('L-missed', '09:30:00', '89005556677', '201', { ring: 20 }),
  // An incoming call answered by 202, then transferred by 202 to 201: two legs under one linkedid.
  leg('L-transfer', '09:40:00', '74950001122', '202', { talk: 30, recorded: true }),
  leg('L-transfer', '09:40:35', '202', '201', { talk: 90, recorded: true, extra: { transfer: 1 } }),
  // A queue ringing 203 and 201 at once; 203 answers, so for 201 it is missed.
  leg('L-queue', '09:50:00', '74953334455', '203', { talk: 15, ring: 3 }),
  leg('L-queue', '09:50:00', '74953334455', '201', { ring: 3 }),
  leg('L-other', '10:00:00', '202', '203', { talk: 10, recorded: true }),
  // Forwarded to 201's mobile, which the CDR writes with a country prefix.
  leg('L-mobile', '10:10:00', '74956667788', '+70123456789', { talk: 25, extra: { from_account: 'SIP-TRUNK', to_account: 'SIP-TRUNK' } }),
  // A call to 201's WebRTC peer.
  leg('L-ws', '10:20:00', '202', '201-WS', { talk: 12, extra: { to_account: '201-WS' } }),
  leg('L-late', '23:59:59', '201', '203', { talk: 5, ring: 1 }),
]

export const FIXTURE_CALLS_OF_201 = ['L-late', 'L-ws', 'L-mobile', 'L-queue', 'L-transfer', 'L-missed', 'L-out', 'L-in', 'L-inner'] as const

/** Writes the fixture into a new file at `path`. */
export function createCdrFixture(path: string, { rows = FIXTURE_ROWS, names = true, wal = true }: { rows?: readonly CdrRow[]; names?: boolean; wal?: boolean } = {}): void {
  const db = new Database(path, { create: true })
  if (wal) db.run('PRAGMA journal_mode = WAL')
  createCdrTable(db, { names })
  insertRows(db, rows)
  db.close()
}
