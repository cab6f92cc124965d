/**
 * What is revoked: token ids (logout), sessions (logout, logout-all, reuse, admin), and per-user
 * cut-offs for legacy tokens (issued by the PHP module, without `jti`). This is the node's
 * in-memory copy that every request reads; the store keeps the record and feeds it: SQLite
 * (sqlite-revocations.ts) at start and after every commit, Redis (README "Several nodes") from
 * its announcements and a reload after every reconnect.
 */
import { unixSeconds, type Clock } from '../clock'
import { RevokedIdSet } from './revoked-id-set'

/**
 * An access token minted at a session's last refresh can outlive the refresh token by up to the
 * largest access_ttl allowed (86400 s), so a revoked session is remembered that much longer.
 */
export const SESSION_REVOCATION_MARGIN = 86_400

export class Revocations {
  /** With each id's expiry, so a purge can drop entries without reloading. */
  protected readonly revokedIds: RevokedIdSet
  private readonly notBefore = new Map<string, number>()
  /** sid → until when (Unix seconds) it must be remembered. */
  private readonly revokedSessions = new Map<string, number>()
  /**
   * Set by the store: false while this copy may lack revocations made elsewhere for too long
   * (Redis unreachable past redis_stale_seconds). Verification then fails closed (503).
   */
  usable: () => boolean = () => true

  /** `expectedIds`: how many ids a bulk load will add (RevokedIdSet sizes for them). */
  constructor(
    protected readonly clock: Clock,
    expectedIds = 0,
  ) {
    this.revokedIds = new RevokedIdSet(expectedIds)
  }

  /** Remembers a session revocation the store has just recorded. */
  noteSessionRevoked(sid: string, refreshExpiresAt: number): void {
    this.revokedSessions.set(sid, refreshExpiresAt + SESSION_REVOCATION_MARGIN)
  }

  isSessionRevoked(sid: string): boolean {
    return this.revokedSessions.has(sid)
  }

  /** Room for a reload of `count` token ids (redis-revocations.ts). */
  reserveTokenIds(count: number): void {
    this.revokedIds.reserve(count)
  }

  noteTokenIdRevoked(jti: string, expiresAt: number): void {
    this.revokedIds.add(jti, expiresAt)
  }

  /** Revoked token ids held in memory (README "Metrics"). */
  get revokedIdCount(): number {
    return this.revokedIds.size
  }

  isTokenIdRevoked(jti: string): boolean {
    return this.revokedIds.has(jti) || this.isStoredIdRevoked(jti)
  }

  noteLegacyCutoff(username: string, at: number): void {
    this.notBefore.set(username, Math.max(at, this.notBefore.get(username) ?? 0))
  }

  isLegacyTokenRevoked(username: string, issuedAt: number): boolean {
    const cutoff = this.notBefore.get(username)
    return cutoff !== undefined && issuedAt <= cutoff
  }

  /** Drops from memory what can no longer matter; returns how many records the store itself dropped. */
  purgeExpired(): number {
    this.forgetExpired(unixSeconds(this.clock), true)
    return 0
  }

  /** A miss in memory while ids are still loading is looked up in the store (sqlite-revocations.ts). */
  protected isStoredIdRevoked(_jti: string): boolean {
    return false
  }

  /** Session revocations and cut-offs, replaced by a full re-read of the store. */
  protected replaceSessionsAndCutoffs(sessions: Iterable<{ id: string; current_exp: number }>, cutoffs: Iterable<{ username: string; not_before: number }>): void {
    this.notBefore.clear()
    for (const row of cutoffs) this.notBefore.set(row.username, row.not_before)
    this.revokedSessions.clear()
    for (const row of sessions) this.noteSessionRevoked(row.id, row.current_exp)
  }

  protected forgetExpired(now: number, ids: boolean): void {
    // Purging may shrink the set, and the rest of a load would then grow it in key order, which
    // linear probing does badly; expired ids stay in memory until the next purge, harmlessly.
    if (ids) this.revokedIds.purge(now)
    for (const [sid, until] of this.revokedSessions) {
      if (until <= now) this.revokedSessions.delete(sid)
    }
  }
}
