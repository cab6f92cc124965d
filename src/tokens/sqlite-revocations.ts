/**
 * Revocations recorded in the service's SQLite file (store = "sqlite"): the record is SQLite, the
 * hot path reads the in-memory copy (revocations.ts), loaded at start and updated after every
 * commit (README "Security notes and decisions").
 */
import type { Database, Statement } from 'bun:sqlite'
import { unixSeconds, type Clock } from '../clock'
import { Revocations, SESSION_REVOCATION_MARGIN } from './revocations'

const PURGE_BATCH = 500

/** How revoked token ids get from SQLite into memory at start. */
export interface IdLoading {
  /** Rows read per step. The first step runs in the constructor: a table this small is loaded there and then. */
  chunkRows: number
  /** Runs the next step later; between steps the server answers requests. */
  schedule(step: () => void): void
}

/**
 * A million ids take most of a second to read (bench/revocations.ts), too long to hold up the
 * start, so the server reads them in steps of a few milliseconds.
 */
const IN_THE_BACKGROUND: IdLoading = { chunkRows: 10_000, schedule: (step) => void setImmediate(step) }

export class SqliteRevocations extends Revocations {
  /** Set while ids are still being loaded: until then a miss in memory is looked up in SQLite. */
  private storedId: Statement<unknown, [string]> | null = null
  /** Resolves once every stored id is in memory: how many there are then, and how long it took. */
  readonly idsLoaded: Promise<{ ids: number; ms: number }>
  private readonly loadRevokedSessions
  private readonly loadCutoffs
  private readonly insertId
  private readonly upsertNotBefore
  private readonly purgeBatch

  constructor(db: Database, clock: Clock, loading: IdLoading = IN_THE_BACKGROUND) {
    const now = unixSeconds(clock)
    const { live } = db.query<{ live: number }, [number]>('SELECT count(*) AS live FROM revoked_tokens WHERE expires_at > ?').get(now)!
    super(clock, live)
    this.insertId = db.query<unknown, [string, number]>(
      'INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING',
    )
    this.upsertNotBefore = db.query<unknown, [string, number]>(
      `INSERT INTO legacy_not_before (username, not_before) VALUES (?1, ?2)
       ON CONFLICT (username) DO UPDATE SET not_before = max(not_before, ?2)`,
    )
    this.purgeBatch = db.query<unknown, [number, number]>(
      'DELETE FROM revoked_tokens WHERE jti IN (SELECT jti FROM revoked_tokens WHERE expires_at <= ? LIMIT ?)',
    )
    this.idsLoaded = this.loadIds(db, now, loading)
    this.loadCutoffs = db.query<{ username: string; not_before: number }, []>('SELECT * FROM legacy_not_before')
    this.loadRevokedSessions = db.query<{ id: string; current_exp: number }, [number]>(
      'SELECT id, current_exp FROM sessions WHERE revoked_at IS NOT NULL AND current_exp > ?',
    )
    this.reload()
  }

  /**
   * Re-reads session revocations and legacy cut-offs, for commits made by another process (the
   * `sessions revoke` CLI). Token ids are only ever revoked by the server itself, so they stay.
   */
  reload(): void {
    this.replaceSessionsAndCutoffs(this.loadRevokedSessions.iterate(unixSeconds(this.clock) - SESSION_REVOCATION_MARGIN), this.loadCutoffs.iterate())
  }

  /**
   * Writes a token id's revocation; call inside the caller's transaction, and noteTokenIdRevoked
   * once it has committed, so memory never claims what the disk may not hold.
   */
  writeTokenIdRevocation(jti: string, expiresAt: number): void {
    this.insertId.run(jti, expiresAt)
  }

  /** Writes that every legacy token of `username` issued at or before `at` (Unix seconds) is revoked; as above, noteLegacyCutoff after the commit. */
  writeLegacyCutoff(username: string, at: number): void {
    this.upsertNotBefore.run(username, at)
  }

  /** Deletes expired ids in small batches so no single write holds the lock long. */
  override purgeExpired(): number {
    const now = unixSeconds(this.clock)
    let total = 0
    for (;;) {
      const { changes } = this.purgeBatch.run(now, PURGE_BATCH)
      total += changes
      if (changes < PURGE_BATCH) break
    }
    this.forgetExpired(now, this.storedId === null)
    return total
  }

  protected override isStoredIdRevoked(jti: string): boolean {
    return this.storedId !== null && this.storedId.get(jti) !== null
  }

  /**
   * Reads the live ids in key order, which is the set's slot order, so the set fills front to
   * back; it was sized for all of them, so it never rehashes on the way. The first step runs now
   * and throws like any start-up read; if a later one fails, misses keep going to SQLite.
   */
  private loadIds(db: Database, now: number, { chunkRows, schedule }: IdLoading): Promise<{ ids: number; ms: number }> {
    const started = performance.now()
    const chunk = db.query<{ jti: string; expires_at: number }, [string, number, number]>(
      'SELECT jti, expires_at FROM revoked_tokens WHERE jti > ? AND expires_at > ? ORDER BY jti LIMIT ?',
    )
    let after = ''
    const step = (): boolean => {
      let rows = 0
      for (const row of chunk.iterate(after, now, chunkRows)) {
        this.revokedIds.add(row.jti, row.expires_at)
        after = row.jti
        rows++
      }
      return rows < chunkRows
    }
    const done = () => ({ ids: this.revokedIds.size, ms: performance.now() - started })
    if (step()) return Promise.resolve(done())
    this.storedId = db.query<unknown, [string]>('SELECT 1 FROM revoked_tokens WHERE jti = ?')
    return new Promise((resolve) => {
      const next = () => {
        try {
          if (!step()) return schedule(next)
        } catch (error) {
          console.error(`revoked token ids: loading stopped, the rest are looked up in the database: ${(error as Error).message}`)
          return
        }
        this.storedId = null
        resolve(done())
      }
      schedule(next)
    })
  }
}
