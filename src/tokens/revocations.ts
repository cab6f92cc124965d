/**
 * Revoked token ids, and per-user cut-offs for legacy tokens (issued by the PHP module, without `jti`).
 * SQLite is the record; the hot path reads the
 * in-memory copy, which is loaded at start and updated on every write (SPEC §6).
 */
import type { Database } from 'bun:sqlite'
import { unixSeconds, type Clock } from '../clock'

const PURGE_BATCH = 500

export class Revocations {
  /** jti → expiry (Unix seconds), so a purge can drop entries without reloading. */
  private readonly revokedIds = new Map<string, number>()
  private readonly notBefore = new Map<string, number>()
  private readonly insertId
  private readonly upsertNotBefore
  private readonly purgeBatch

  constructor(
    db: Database,
    private readonly clock: Clock,
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
    const live = db.query<{ jti: string; expires_at: number }, [number]>('SELECT * FROM revoked_tokens WHERE expires_at > ?')
    for (const row of live.iterate(now)) this.revokedIds.set(row.jti, row.expires_at)
    for (const row of db.query<{ username: string; not_before: number }, []>('SELECT * FROM legacy_not_before').iterate()) {
      this.notBefore.set(row.username, row.not_before)
    }
  }

  /** Durable before it returns: the caller acknowledges the logout only after this. */
  revokeTokenId(jti: string, expiresAt: number): void {
    this.insertId.run(jti, expiresAt)
    this.revokedIds.set(jti, expiresAt)
  }

  isTokenIdRevoked(jti: string): boolean {
    return this.revokedIds.has(jti)
  }

  /** Every legacy token of `username` issued at or before `at` (Unix seconds) stops working. */
  revokeLegacyTokensIssuedBy(username: string, at: number): void {
    this.upsertNotBefore.run(username, at)
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
    for (const [jti, expiresAt] of this.revokedIds) {
      if (expiresAt <= now) this.revokedIds.delete(jti)
    }
    return total
  }
}
