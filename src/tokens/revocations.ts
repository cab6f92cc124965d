/**
 * What is revoked: token ids (logout), sessions (logout, logout-all, reuse, admin), and per-user
 * cut-offs for legacy tokens (issued by the PHP module, without `jti`). SQLite is the record; the
 * hot path reads the in-memory copy, which is loaded at start and updated on every write
 * (README "Security notes and decisions").
 */
import type { Database, Statement } from 'bun:sqlite'
import { unixSeconds, type Clock } from '../clock'
import { RevokedIdSet } from './revoked-id-set'

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

/**
 * An access token minted at a session's last refresh can outlive the refresh token by up to the
 * largest access_ttl allowed (86400 s), so a revoked session is remembered that much longer.
 */
export const SESSION_REVOCATION_MARGIN = 86_400

export class Revocations {
  /** With each id's expiry, so a purge can drop entries without reloading. */
  private readonly revokedIds: RevokedIdSet
  /** Set while ids are still being loaded: until then a miss in memory is looked up in SQLite. */
  private storedId: Statement<unknown, [string]> | null = null
  /** Resolves once every stored id is in memory: how many there are then, and how long it took. */
  readonly idsLoaded: Promise<{ ids: number; ms: number }>
  private readonly notBefore = new Map<string, number>()
  /** sid → until when (Unix seconds) it must be remembered. */
  private readonly revokedSessions = new Map<string, number>()
  private readonly loadRevokedSessions
  private readonly loadCutoffs
  private readonly insertId
  private readonly upsertNotBefore
  private readonly purgeBatch

  constructor(
    db: Database,
    private readonly clock: Clock,
    loading: IdLoading = IN_THE_BACKGROUND,
  ) {
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
    const now = unixSeconds(clock)
    const { live } = db.query<{ live: number }, [number]>('SELECT count(*) AS live FROM revoked_tokens WHERE expires_at > ?').get(now)!
    this.revokedIds = new RevokedIdSet(live)
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
    this.notBefore.clear()
    for (const row of this.loadCutoffs.iterate()) this.notBefore.set(row.username, row.not_before)
    this.revokedSessions.clear()
    for (const row of this.loadRevokedSessions.iterate(unixSeconds(this.clock) - SESSION_REVOCATION_MARGIN)) {
      this.revokedSessions.set(row.id, row.current_exp + SESSION_REVOCATION_MARGIN)
    }
  }

  /** Mirrors a session revocation the caller has just committed. */
  noteSessionRevoked(sid: string, refreshExpiresAt: number): void {
    this.revokedSessions.set(sid, refreshExpiresAt + SESSION_REVOCATION_MARGIN)
  }

  isSessionRevoked(sid: string): boolean {
    return this.revokedSessions.has(sid)
  }

  /**
   * Writes a token id's revocation; call inside the caller's transaction, and noteTokenIdRevoked
   * once it has committed, so memory never claims what the disk may not hold.
   */
  writeTokenIdRevocation(jti: string, expiresAt: number): void {
    this.insertId.run(jti, expiresAt)
  }

  noteTokenIdRevoked(jti: string, expiresAt: number): void {
    this.revokedIds.add(jti, expiresAt)
  }

  /** Revoked token ids held in memory (README "Metrics"). */
  get revokedIdCount(): number {
    return this.revokedIds.size
  }

  isTokenIdRevoked(jti: string): boolean {
    return this.revokedIds.has(jti) || (this.storedId !== null && this.storedId.get(jti) !== null)
  }

  /** Writes that every legacy token of `username` issued at or before `at` (Unix seconds) is revoked; as above, noteLegacyCutoff after the commit. */
  writeLegacyCutoff(username: string, at: number): void {
    this.upsertNotBefore.run(username, at)
  }

  noteLegacyCutoff(username: string, at: number): void {
    this.notBefore.set(username, Math.max(at, this.notBefore.get(username) ?? 0))
  }

  isLegacyTokenRevoked(username: string, issuedAt: number): boolean {
    const cutoff = this.notBefore.get(username)
    return cutoff !== undefined && issuedAt <= cutoff
  }

  /** Deletes expired ids in small batches so no single write holds the lock long. */
  purgeExpired(): number {
    const now = unixSeconds(this.clock)
    let total = 0
    for (;;) {
      const { changes } = this.purgeBatch.run(now, PURGE_BATCH)
      total += changes
      if (changes < PURGE_BATCH) break
    }
    // Purging may shrink the set, and the rest of a load would then grow it in key order, which
    // linear probing does badly; expired ids stay in memory until the next purge, harmlessly.
    if (this.storedId === null) this.revokedIds.purge(now)
    for (const [sid, until] of this.revokedSessions) {
      if (until <= now) this.revokedSessions.delete(sid)
    }
    return total
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
