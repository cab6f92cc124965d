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
  const version = db.query<{ data_version: number }, []>('PRAGMA data_version')
  let last = version.get()!.data_version
  const check = () => {
    const current = version.get()!.data_version
    if (current !== last) {
      last = current
      onChange()
    }
  }
  const name = basename(path)
  let watcher: FSWatcher | null = null
  try {
    // The directory, not the file: WAL commits land in `<name>-wal`, which may not exist yet.
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
