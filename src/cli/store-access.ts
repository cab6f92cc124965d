/**
 * How each command may touch the data dir (README "Command line"): read-only commands open an
 * existing database read-only, changes to existing users need an existing database, and only
 * `users add`, `spaces add` (and `serve`) may create the data dir and the database.
 */
import type { Database } from 'bun:sqlite'
import { existsSync, mkdirSync } from 'node:fs'
import type { Config } from '../config/schema'
import { databasePath } from '../serve'
import { openStore, openStoreReadOnly } from '../store/database'

export type StoreAccess = 'read' | 'write' | 'create'

/** sysexits.h EX_NOINPUT: the database a command needs isn't there. */
export const EX_NOINPUT = 66
/** sysexits.h EX_CANTCREAT. */
export const EX_CANTCREAT = 73

export class NoDatabaseError extends Error {
  override name = 'NoDatabaseError'
}

export class DataDirError extends Error {
  override name = 'DataDirError'
}

export function ensureDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  } catch (error) {
    throw new DataDirError(`cannot create data directory ${dataDir}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  }
}

export function openCommandStore(config: Config, access: StoreAccess): Database {
  const path = databasePath(config)
  if (access === 'create') {
    ensureDataDir(config.data_dir)
    return openStore(path)
  }
  if (!existsSync(path)) {
    throw new NoDatabaseError(`no database at ${path} yet (wrong --data-dir?); \`softphone-backend users add\` creates it`)
  }
  return access === 'read' ? openStoreReadOnly(path) : openStore(path)
}
