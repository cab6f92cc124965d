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

export class GroupCommit {
  private batch: Pending[] = []

  constructor(private readonly db: Database) {}

  submit(write: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      // setImmediate runs after the I/O poll: requests read in this turn join the batch.
      if (this.batch.push({ write, resolve, reject }) === 1) setImmediate(() => this.commit())
    })
  }

  private commit(): void {
    const batch = this.batch
    this.batch = []
    try {
      this.db.transaction(() => {
        for (const pending of batch) pending.write()
      }).immediate()
    } catch (error) {
      for (const pending of batch) pending.reject(error)
      return
    }
    for (const pending of batch) pending.resolve()
  }
}
