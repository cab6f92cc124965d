/**
 * `softphone-backend backup <file>` and `restore <file>` (README "Backup and restore"). A backup is
 * one SQLite file: a consistent copy of the store (VACUUM INTO, safe while the server writes) plus a
 * `softphone_backup` table with the legacy key, the key ring and what wrote them. Mode 0600.
 */
import { Database } from 'bun:sqlite'
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'
import type { Config } from '../config/schema'
import { databasePath } from '../serve'
import { openStoreReadOnly, SCHEMA_VERSION, newerSchemaMessage, schemaVersion } from '../store/database'
import { EMPTY_RING, parseRing, readRingFile, ringPathFor, serializeRing, writeFileAtomically } from '../tokens/key-ring'
import { readSecretKey, SecretKeyError } from '../tokens/secret-key'
import { VERSION } from '../version'
import { UsageError, type ParsedArgs } from './args'
import type { OperatorCommand } from './secret-command'
import { ensureDataDir, NoDatabaseError } from './store-access'

const FORMAT = 'softphone-backend backup 1'
const KEY_TEXT = /^[0-9a-fA-F]{64}$/

/** sysexits.h EX_DATAERR: the file given to restore is not a backup. */
export const EX_DATAERR = 65
/** sysexits.h EX_TEMPFAIL: the server (or another command) has the database open; stop it and retry. */
export const EX_TEMPFAIL = 75
/** The backup comes from a newer release (sysexits.h EX_PROTOCOL, the nearest fit). */
export const EX_NEWER = 76

export class NotABackupError extends Error {
  override name = 'NotABackupError'
}
export class ServerRunningError extends Error {
  override name = 'ServerRunningError'
}
export class NewerBackupError extends Error {
  override name = 'NewerBackupError'
}

export const BACKUP_HELP = `softphone-backend backup <file>
  a consistent copy of the database and the signing keys, taken while the server runs,
  written to <file> with mode 0600 (one SQLite file)`

export const RESTORE_HELP = `softphone-backend restore <file>
  replaces the database and the signing keys with those of a backup; refuses while the server
  (or any other process) has the database open: stop the service first`

export function parseBackupCommand(args: ParsedArgs, help: string, run: (config: Config, file: string) => void): OperatorCommand {
  const file = args.positionals[1]
  if (!file || args.positionals.length > 2) throw new UsageError(help)
  return async ({ config }) => run(config, file)
}

export function backup(config: Config, file: string): void {
  const source = databasePath(config)
  if (!existsSync(source)) throw new NoDatabaseError(`no database at ${source} to back up (wrong --data-dir?)`)
  const legacyKey = readSecretKey(config.secret_key_path)
  if (!legacyKey) throw new SecretKeyError(`no key file at ${config.secret_key_path} to back up (wrong --secret-key-path?)`)
  const ring = readRingFile(ringPathFor(config.secret_key_path))
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  // VACUUM INTO writes into an existing empty file, so the copy is owner-only from its first byte.
  closeSync(openSync(temp, 'wx', 0o600))
  try {
    const db = openStoreReadOnly(source)
    try {
      db.run('VACUUM INTO ?', [temp])
    } finally {
      db.close()
    }
    addKeys(temp, Buffer.from(legacyKey).toString('latin1'), serializeRing(ring))
    fsyncFile(temp)
    renameSync(temp, file)
    fsyncFile(dirname(file))
  } catch (error) {
    try {
      unlinkSync(temp)
    } catch {}
    throw error
  }
  console.log(`backup of ${source} and its keys written to ${file}`)
}

function addKeys(path: string, legacyKey: string, ring: string): void {
  const db = new Database(path, { strict: true })
  try {
    db.run('PRAGMA journal_mode = DELETE')
    db.run('CREATE TABLE softphone_backup (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID')
    const insert = db.query('INSERT INTO softphone_backup (name, value) VALUES (?, ?)')
    const rows: Array<[string, string]> = [
      ['format', FORMAT],
      ['version', VERSION],
      ['created_at', new Date().toISOString()],
      ['legacy_key', legacyKey],
      ['key_ring', ring],
    ]
    db.transaction(() => rows.forEach((row) => insert.run(...row)))()
  } finally {
    db.close()
  }
}

interface BackupContents {
  schema: number
  createdAt: string
  legacyKey: string
  ring: string
}

export function restore(config: Config, file: string): void {
  const contents = readBackup(file)
  const target = databasePath(config)
  refuseWhileOpen(target)
  ensureDataDir(config.data_dir)
  const temp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    copyFile(file, temp)
    const db = new Database(temp, { strict: true })
    try {
      db.run('DROP TABLE softphone_backup')
    } finally {
      db.close()
    }
    fsyncFile(temp)
    // A journal left by the replaced database must never be applied to the restored one.
    for (const suffix of ['-wal', '-shm', '-journal']) removeIfPresent(`${target}${suffix}`)
    renameSync(temp, target)
    fsyncFile(config.data_dir)
  } catch (error) {
    removeIfPresent(temp)
    throw error
  }
  restoreKeys(config, contents)
  console.log(`restored ${file} (taken ${contents.createdAt}, schema version ${contents.schema}) into ${target}; start the server`)
}

/** The backup's contents, or the reason it can't be restored by this build. */
function readBackup(file: string): BackupContents {
  if (!existsSync(file)) throw new NotABackupError(`${file} does not exist`)
  let db: Database
  try {
    db = new Database(file, { readonly: true, strict: true })
  } catch {
    throw new NotABackupError(`${file} is not a softphone-backend backup (not an SQLite file)`)
  }
  try {
    const values = readBackupTable(db, file)
    if (values.get('format') !== FORMAT) {
      throw new NewerBackupError(`${file} is a backup in a format this build doesn't know (${values.get('format')}); restore it with a newer softphone-backend`)
    }
    const schema = schemaVersion(db)
    if (schema > SCHEMA_VERSION) throw new NewerBackupError(`backup ${file} ${newerSchemaMessage(schema)}; nothing was changed`)
    const legacyKey = values.get('legacy_key') ?? ''
    const ring = values.get('key_ring') ?? ''
    if (!KEY_TEXT.test(legacyKey)) throw new NotABackupError(`backup ${file} holds no valid legacy key; nothing was changed`)
    try {
      parseRing(ring, `in backup ${file}`)
    } catch (error) {
      throw new NotABackupError(`${(error as Error).message}; nothing was changed`)
    }
    return { schema, createdAt: values.get('created_at') ?? 'at an unknown time', legacyKey, ring }
  } finally {
    db.close()
  }
}

function readBackupTable(db: Database, file: string): Map<string, string> {
  try {
    const check = db.query<{ quick_check: string }, []>('PRAGMA quick_check').get()
    if (check?.quick_check !== 'ok') throw new Error('damaged')
    const rows = db.query<{ name: string; value: string }, []>('SELECT name, value FROM softphone_backup').all()
    return new Map(rows.map((row) => [row.name, row.value]))
  } catch {
    throw new NotABackupError(`${file} is not a softphone-backend backup (no softphone_backup table, or a damaged file); nothing was changed`)
  }
}

/**
 * Leaving WAL mode needs every other connection to the file closed: SQLite answers SQLITE_BUSY at
 * once (busy timeout 0) while the server, or any other command, has it open. On success the WAL is
 * checkpointed into the file and removed, so the replaced database leaves no journal behind.
 */
function refuseWhileOpen(path: string): void {
  if (!existsSync(path)) return
  let db: Database | null = null
  try {
    db = new Database(path, { readwrite: true })
    db.run('PRAGMA busy_timeout = 0')
    db.run('PRAGMA journal_mode = DELETE')
  } catch (error) {
    const code = String((error as { code?: unknown }).code ?? '')
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
      throw new ServerRunningError(`${path} is in use: stop the server (systemctl stop softphone-backend) and run restore again; nothing was changed`)
    }
    // A damaged database is what a restore replaces.
  } finally {
    db?.close()
  }
}

function restoreKeys(config: Config, { legacyKey, ring }: BackupContents): void {
  const current = existsSync(config.secret_key_path) ? readFileSync(config.secret_key_path, 'latin1').trimEnd() : null
  // The legacy key file may be ModuleSoftphoneBackend's own: rewritten only when it differs.
  if (current !== legacyKey) writeFileAtomically(config.secret_key_path, `${legacyKey}\n`)
  const ringPath = ringPathFor(config.secret_key_path)
  const state = parseRing(ring, 'in backup')
  if (state.keys.length === 0 && state.legacyRetiresAt === EMPTY_RING.legacyRetiresAt) removeIfPresent(ringPath)
  else writeFileAtomically(ringPath, ring)
}

function copyFile(from: string, to: string): void {
  const fd = openSync(to, 'wx', 0o600)
  try {
    writeSync(fd, readFileSync(from))
  } finally {
    closeSync(fd)
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function removeIfPresent(path: string): void {
  try {
    unlinkSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
}
