/**
 * MikoPBX's own database (README "Running on MikoPBX"), opened read-only: never created, written,
 * migrated or switched to another journal mode, since the PBX owns it. The file may be replaced
 * (an upgrade renames a new one over it) or briefly missing; the connection follows the path,
 * not the inode it first opened.
 */
import { Database } from 'bun:sqlite'
import { systemClock, type Clock } from '../clock'
import { ConfigError } from '../config/load'
import { storeOutageOf } from '../store/database'
import { dataVersionCheck, watchDatabaseFile, type ChangeWatch } from '../store/change-watch'
import { fileIdentity } from '../store/file-identity'

/**
 * bun:sqlite waits for a lock synchronously, pausing the whole server: in rollback-journal mode a
 * PBX writer blocks readers, so a read gives up after this and the request gets 503.
 */
const BUSY_TIMEOUT_MS = 200
/**
 * After a read met the lock, reads fail at once for this long (the 503's Retry-After): however
 * many logins arrive during a long write, the server waits at most 200 ms a second.
 */
const BUSY_BACKOFF_MS = 1000
/**
 * Reads look at the path (a `stat`) at most this often. The watch on the directory reports a
 * deleted or replaced file at once; this bounds the delay where the watch misses it. A `stat` per
 * login cost a tenth of MikoPBX login throughput (bench/mikopbx-login.ts).
 */
const PATH_CHECK_INTERVAL_MS = 100
const REQUIRED_TABLES = ['m_Sip', 'm_Extensions'] as const

/** Carries a SQLite result code, so storeOutageOf (store/database.ts) makes it a 503. */
export class PbxFileError extends Error {
  override name = 'PbxFileError'
  constructor(
    message: string,
    readonly code: 'SQLITE_CANTOPEN' | 'SQLITE_BUSY' = 'SQLITE_CANTOPEN',
  ) {
    super(message)
  }
}

export class PbxDatabaseFile {
  /** `dev:ino` of the file at the path when last looked, or null while there is none. */
  private identity: string | null
  /** A connection to that file, or null until one could be opened. */
  private db: Database | null = null
  private changeCheck: (() => void) | null = null
  private readonly watch: ChangeWatch
  /** Until then reads fail without touching the file (BUSY_BACKOFF_MS). */
  private busyUntil = 0
  /** When a read last looked at the path (PATH_CHECK_INTERVAL_MS). */
  private pathCheckedAt = -Infinity
  /** Counts changes, so readers can tell whether what they remember predates the file's content. */
  generation = 0

  /** Opens `path` now (throws PbxFileError if it can't), then reports every change to `onChange`. */
  constructor(
    readonly path: string,
    private readonly onChange: () => void,
    private readonly clock: Clock = systemClock,
  ) {
    this.identity = fileIdentity(path)
    this.open()
    this.watch = watchDatabaseFile(path, () => this.check())
  }

  /**
   * Runs `query` on the file now at the path: reopened if the file was replaced. Throws an outage
   * while the file is missing or the PBX's writer holds the lock.
   */
  read<T>(query: (db: Database) => T): T {
    this.ensureReadable()
    try {
      return query(this.connection())
    } catch (error) {
      this.noteBusy(error)
      throw error
    }
  }

  /**
   * Throws the outage a read would meet now, without reading: the file is missing (as last seen,
   * at most PATH_CHECK_INTERVAL_MS ago), or a read met the writer's lock within the last second.
   * For answers from memory that must fail as reads do. A replaced file counts as a change (see
   * `generation`).
   */
  ensureReadable(): void {
    if (this.backingOff()) throw new PbxFileError(`${this.path} is locked by its writer`, 'SQLITE_BUSY')
    const now = this.clock.now()
    if (now - this.pathCheckedAt >= PATH_CHECK_INTERVAL_MS) {
      this.pathCheckedAt = now
      this.followPath()
    }
    if (this.identity === null) throw new PbxFileError(`${this.path} is missing`)
  }

  private connection(): Database {
    if (!this.db) this.reopen()
    return this.db!
  }

  /** What the file watch and the 1 s timer run: a replaced, removed or restored file, or another process's commit. */
  check(): void {
    try {
      const moved = this.followPath()
      if (this.identity === null || this.backingOff()) return
      if (!this.db) this.reopen()
      else if (!moved) this.changeCheck?.()
    } catch (error) {
      // Locked by the PBX's writer, or half-written: a later check or request tries again.
      this.noteBusy(error)
    }
  }

  close(): void {
    this.watch.close()
    this.drop()
  }

  private changed(): void {
    this.generation++
    this.onChange()
  }

  private backingOff(): boolean {
    return this.clock.now() < this.busyUntil
  }

  private noteBusy(error: unknown): void {
    if (storeOutageOf(error) === 'busy') this.busyUntil = this.clock.now() + BUSY_BACKOFF_MS
  }

  /** Drops the connection when the path now names another file, or none; true if it did. */
  private followPath(): boolean {
    const identity = fileIdentity(this.path)
    if (identity === this.identity) return false
    this.identity = identity
    this.drop()
    this.changed()
    return true
  }

  /** Whatever was cached may predate the file now opened, so a reopen is a change. */
  private reopen(): void {
    try {
      this.open()
    } catch (error) {
      // A locked file stays a busy outage; anything else is retried by the next request, as unavailable.
      if (storeOutageOf(error)) throw error
      throw new PbxFileError((error as Error).message)
    }
    this.changed()
  }

  private open(): void {
    const db = openReadOnly(this.path)
    try {
      this.changeCheck = dataVersionCheck(db, () => this.changed())
    } catch (error) {
      db.close()
      throw error
    }
    this.db = db
  }

  private drop(): void {
    this.db?.close()
    this.db = null
    this.changeCheck = null
  }
}

/**
 * For serve and `config check`: the file must be a readable MikoPBX database at start, else one
 * line naming the key (exit 78); later outages are only retried.
 */
export function openAtStart(path: string, onChange: () => void, clock: Clock = systemClock): PbxDatabaseFile {
  try {
    return new PbxDatabaseFile(path, onChange, clock)
  } catch (error) {
    const reason = fileIdentity(path) === null ? 'does not exist' : `is unusable: ${(error as Error).message}`
    throw new ConfigError(`config error: mikopbx_db ${path} ${reason} (directory = "mikopbx" reads MikoPBX's database there)`)
  }
}

/**
 * Opens and checks that it is MikoPBX's database, for serve and `config check`; the connection
 * is the caller's to close.
 */
export function openReadOnly(path: string): Database {
  let db: Database
  try {
    db = new Database(path, { readonly: true })
  } catch (error) {
    throw new PbxFileError(`cannot open ${path}: ${(error as Error).message}`)
  }
  try {
    db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
    const present = new Set(db.query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((row) => row.name))
    const missing = REQUIRED_TABLES.filter((table) => !present.has(table))
    if (missing.length > 0) throw new PbxFileError(`${path} is not a MikoPBX database (no ${missing.join(', ')} table)`)
  } catch (error) {
    db.close()
    throw error
  }
  return db
}
