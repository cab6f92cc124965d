/**
 * Group commit: writes submitted during one turn of the event loop commit together, in one
 * IMMEDIATE transaction and so one fsync (synchronous=FULL, store/database.ts). Each caller's
 * promise settles only after that commit, so nothing is acknowledged before it is durable; if the
 * commit fails, every write of the batch is rolled back and every caller gets the error.
 * Concurrent logins then share the disk's flush instead of queueing for one each
 * (README "Sessions and refresh rotation").
 */
import type { Database } from 'bun:sqlite'

interface Pending {
  write: () => void
  resolve: () => void
  reject: (error: unknown) => void
}

/**
 * `flushed`: each commit waits for the disk (synchronous=FULL). `written`: it waits only for the
 * operating system (synchronous=NORMAL in WAL mode), so it survives a killed process but not a
 * power loss; for writes whose loss can only refuse something later, never allow it.
 */
export type Durability = 'flushed' | 'written'

export class GroupCommit {
  private batch: Pending[] = []

  constructor(
    private readonly db: Database,
    private readonly durability: Durability = 'flushed',
  ) {}

  submit(write: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      // setImmediate runs after the I/O poll: requests read in this turn join the batch.
      if (this.batch.push({ write, resolve, reject }) === 1) setImmediate(() => this.commit())
    })
  }

  private commit(): void {
    const batch = this.batch
    this.batch = []
    const relaxed = this.durability === 'written'
    try {
      if (relaxed) this.db.run('PRAGMA synchronous = NORMAL')
      this.db.transaction(() => {
        for (const pending of batch) pending.write()
      }).immediate()
    } catch (error) {
      for (const pending of batch) pending.reject(error)
      return
    } finally {
      if (relaxed) this.db.run('PRAGMA synchronous = FULL')
    }
    for (const pending of batch) pending.resolve()
  }
}
