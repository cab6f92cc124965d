/**
 * The service's own SQLite file: embedded users, revocations and (later) sessions and throttling.
 *
 * synchronous=FULL: a revocation acknowledged to the client must survive power loss
 * (README "Security notes and decisions"). Writes happen only on login, refresh and logout, so one
 * extra fsync per commit costs little.
 */
import { Database } from 'bun:sqlite'
import { closeSync, openSync } from 'node:fs'
import { MIGRATIONS } from './migrations'
import { StoreUnavailableError } from './outage'

export class StoreError extends Error {
  override name = 'StoreError'
}

/** README "Upgrade": a database from a newer build is refused, never downgraded. */
class NewerSchemaError extends Error {
  override name = 'NewerSchemaError'
}

/** The schema version this build migrates to. */
export const SCHEMA_VERSION = MIGRATIONS.length

export function newerSchemaMessage(version: number): string {
  return `was written by a newer softphone-backend (schema version ${version}, this build knows up to ${SCHEMA_VERSION}); run that release or a later one, this one never downgrades`
}

const BUSY_TIMEOUT_MS = 5000

/**
 * Failures of the store that a client can retry later, by SQLite's primary result code:
 * another writer held the lock past the busy timeout, or the disk is full, failing or read-only.
 * Nothing was committed in either case (a failed statement or COMMIT rolls its transaction back).
 */
export type StoreOutage = 'busy' | 'unavailable'

const OUTAGES: Record<string, StoreOutage> = {
  SQLITE_BUSY: 'busy',
  SQLITE_LOCKED: 'busy',
  SQLITE_FULL: 'unavailable',
  SQLITE_IOERR: 'unavailable',
  SQLITE_READONLY: 'unavailable',
  SQLITE_CANTOPEN: 'unavailable',
}

export function storeOutageOf(error: unknown): StoreOutage | null {
  if (error instanceof StoreUnavailableError) return 'unavailable'
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return null
  // Extended codes carry the primary one as a prefix: SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED, …
  const primary = code.match(/^SQLITE_[A-Z]+/)![0]
  return OUTAGES[primary] ?? null
}

export function openStore(path: string): Database {
  let db: Database
  try {
    // Password hashes live here: create the file owner-only before SQLite does (WAL files inherit its mode).
    closeSync(openSync(path, 'a', 0o600))
    db = new Database(path, { create: true, readwrite: true, strict: true })
  } catch (error) {
    throw new StoreError(`cannot open database ${path}: ${(error as Error).message}`)
  }
  try {
    db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
    db.run('PRAGMA journal_mode = WAL')
    db.run('PRAGMA synchronous = FULL')
    db.run('PRAGMA foreign_keys = ON')
    migrate(db)
  } catch (error) {
    db.close()
    if (error instanceof NewerSchemaError) throw new StoreError(`database ${path} ${error.message}; it was left untouched`)
    // Locked by another process past the busy timeout: nothing is wrong with the file (exit 75, src/main.ts).
    if (storeOutageOf(error) === 'busy') throw error
    throw new StoreError(
      `database ${path} is unusable (${(error as Error).message}); it was left untouched: restore it from a backup or move it away`,
    )
  }
  return db
}

/**
 * Opens an existing store for commands that only read: never creates the file, never migrates
 * (README "Command line"). The caller checks that the file exists.
 */
export function openStoreReadOnly(path: string): Database {
  let db: Database
  try {
    db = new Database(path, { readonly: true, strict: true })
  } catch (error) {
    throw new StoreError(`cannot open database ${path}: ${(error as Error).message}`)
  }
  try {
    db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
    const current = schemaVersion(db)
    if (current > MIGRATIONS.length) throw new NewerSchemaError(newerSchemaMessage(current))
    if (current < MIGRATIONS.length) throw new Error(`schema version ${current} is older than this build's; start the server once to upgrade it`)
  } catch (error) {
    db.close()
    if (error instanceof NewerSchemaError) throw new StoreError(`database ${path} ${error.message}; it was left untouched`)
    // Locked by another process past the busy timeout: nothing is wrong with the file (exit 75, src/main.ts).
    if (storeOutageOf(error) === 'busy') throw error
    throw new StoreError(`database ${path} is unusable (${(error as Error).message}); it was left untouched`)
  }
  return db
}

export const schemaVersion = (db: Database): number => db.query<{ user_version: number }, []>('PRAGMA user_version').get()!.user_version

function migrate(db: Database): void {
  // Current already: no write lock needed, so opening never waits for another process's write.
  if (schemaVersion(db) === MIGRATIONS.length) return
  // Otherwise the version is read again under the write lock: two processes opening a new file at
  // once (two `users add`, or one and the server) must not both apply the same migration.
  db.transaction(() => {
    const current = schemaVersion(db)
    if (current > MIGRATIONS.length) throw new NewerSchemaError(newerSchemaMessage(current))
    for (let version = current; version < MIGRATIONS.length; version++) db.run(MIGRATIONS[version]!)
    if (current < MIGRATIONS.length) db.run(`PRAGMA user_version = ${MIGRATIONS.length}`)
  }).immediate()
}
