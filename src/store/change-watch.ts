/**
 * Notices commits made to a SQLite file by other processes (the `users` CLI, MikoPBX itself).
 * `PRAGMA data_version` changes exactly when another connection committed; reading it costs a
 * query, so it is read when the file system reports a write (inotify, milliseconds) and once a
 * second as a fallback, never per request.
 */
import type { Database } from 'bun:sqlite'
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'

const POLL_INTERVAL_MS = 1000

export interface ChangeWatch {
  /** Reads data_version now and reports a change; also what the watcher and the timer call. */
  check(): void
  close(): void
}

export function watchDatabaseChanges(db: Database, path: string, onChange: () => void): ChangeWatch {
  return watchDatabaseFile(path, dataVersionCheck(db, onChange))
}

/** A check that calls `onChange` when another connection committed since the last call. */
export function dataVersionCheck(db: Database, onChange: () => void): () => void {
  const version = db.query<{ data_version: number }, []>('PRAGMA data_version')
  let last = version.get()!.data_version
  return () => {
    const current = version.get()!.data_version
    if (current !== last) {
      last = current
      onChange()
    }
  }
}

/** Runs `check` whenever the file system reports a write to the file or its journals, and once a second. */
export function watchDatabaseFile(path: string, check: () => void): ChangeWatch {
  const name = basename(path)
  let watcher: FSWatcher | null = null
  try {
    // The directory, not the file: WAL commits land in `<name>-wal`, which may not exist yet,
    // and a file replaced by a rename is a new inode that a watch on the old one would miss.
    watcher = watch(dirname(path), (_event, file) => {
      if (file?.startsWith(name)) check()
    })
  } catch {
    // No inotify (exhausted watches, odd file systems): the timer alone still bounds the delay.
  }
  const timer = setInterval(check, POLL_INTERVAL_MS)
  timer.unref()
  return {
    check,
    close() {
      clearInterval(timer)
      watcher?.close()
    },
  }
}
