/**
 * Sessions in the service's SQLite file (store = "sqlite", README "Sessions and refresh rotation"):
 * one row per login, holding its refresh-token family by hash only. Every change is one IMMEDIATE
 * transaction, and the in-memory revocation copy is updated only after the commit, so memory never
 * claims what the disk may not hold.
 */
import type { Database } from 'bun:sqlite'
import type { Clock } from '../clock'
import { GroupCommit } from '../store/group-commit'
import { SESSION_REVOCATION_MARGIN } from '../tokens/revocations'
import { SqliteRevocations } from '../tokens/sqlite-revocations'
import {
  decideRefresh,
  type EndedSession,
  type LogoutRequest,
  type NewSession,
  type RefreshDecision,
  type RefreshRequest,
  type SessionRecords,
  type SessionRow,
} from './session-records'

const PURGE_BATCH = 500

export class SqliteSessionRecords implements SessionRecords {
  private readonly byId
  private readonly insert
  private readonly rotateStatement
  private readonly touchStatement
  private readonly revokeStatement
  private readonly activeOfUser
  private readonly newSessions: GroupCommit

  constructor(
    private readonly db: Database,
    private readonly revocations: SqliteRevocations,
  ) {
    // A session lost to a power cut only fails its refresh; the app logs in again.
    this.newSessions = new GroupCommit(db, 'written')
    this.byId = db.query<SessionRow, [string]>('SELECT * FROM sessions WHERE id = ?')
    this.insert = db.query(
      `INSERT INTO sessions (id, username, role, user_id, created_at, last_used_at, ip, user_agent,
                             current_hash, current_iat, current_exp, previous_hash)
       VALUES ($id, $username, $role, $user_id, $created_at, $created_at, $ip, $user_agent,
               $current_hash, $current_iat, $current_exp, $previous_hash)`,
    )
    this.rotateStatement = db.query(
      `UPDATE sessions SET previous_hash = current_hash, current_hash = $next, current_iat = $iat, current_exp = $exp,
              last_used_at = $now, ip = $ip, user_agent = $ua
       WHERE id = $id`,
    )
    this.touchStatement = db.query('UPDATE sessions SET last_used_at = $now, ip = $ip, user_agent = $ua WHERE id = $id')
    this.revokeStatement = db.query(
      'UPDATE sessions SET revoked_at = $now, revoke_reason = $reason WHERE id = $id AND revoked_at IS NULL',
    )
    this.activeOfUser = db.query<SessionRow, [string, number]>(
      'SELECT * FROM sessions WHERE username = ? AND revoked_at IS NULL AND current_exp > ? ORDER BY created_at, id',
    )
  }

  /** Commits in the next group commit (store/group-commit.ts); resolves once that is written. */
  create(session: NewSession): Promise<void> {
    return this.newSessions.submit(() => this.insert.run(session))
  }

  async refresh(request: RefreshRequest): Promise<RefreshDecision> {
    const decision = this.atomically(() => {
      const stored = this.byId.get(request.sid)
      if (!stored && request.legacy) this.insert.run(request.legacy)
      const row = stored ?? (request.legacy ? this.byId.get(request.sid) : null)
      const decided = decideRefresh(row, request)
      this.apply(decided, request)
      return decided
    })
    if (decision.kind === 'reuse') this.revocations.noteSessionRevoked(request.sid, decision.exp)
    return decision
  }

  async logout({ tokenId, sid, legacyUser, now }: LogoutRequest): Promise<void> {
    const ended = this.atomically(() => {
      if (tokenId) this.revocations.writeTokenIdRevocation(tokenId.jti, tokenId.expiresAt)
      if (legacyUser) this.revocations.writeLegacyCutoff(legacyUser, now)
      return sid ? this.revoke(sid, 'logout', now) : null
    })
    // Memory follows the commit: had it failed, the token would still work and a retry could succeed.
    if (tokenId) this.revocations.noteTokenIdRevoked(tokenId.jti, tokenId.expiresAt)
    if (legacyUser) this.revocations.noteLegacyCutoff(legacyUser, now)
    if (ended) this.revocations.noteSessionRevoked(ended.id, ended.current_exp)
  }

  async end(username: string, sid: string, reason: string, now: number): Promise<EndedSession | null> {
    const ended = this.atomically(() => (this.byId.get(sid)?.username === username ? this.revoke(sid, reason, now) : null))
    if (ended) this.revocations.noteSessionRevoked(ended.id, ended.current_exp)
    return ended
  }

  async endAll(username: string, reason: string, now: number): Promise<EndedSession[]> {
    return this.endAllNow(username, reason, now)
  }

  /**
   * endAll, synchronously: inside a caller's transaction (the `users remove` CLI) it commits with
   * it. Memory is noted at once; a CLI's copy is thrown away, and the server reloads on the commit.
   */
  endAllNow(username: string, reason: string, now: number): EndedSession[] {
    const ended = this.atomically(() => {
      this.revocations.writeLegacyCutoff(username, now)
      return this.activeOfUser.all(username, now).flatMap((session) => this.revoke(session.id, reason, now) ?? [])
    })
    this.revocations.noteLegacyCutoff(username, now)
    for (const session of ended) this.revocations.noteSessionRevoked(session.id, session.current_exp)
    return ended
  }

  async get(sid: string): Promise<SessionRow | null> {
    return this.byId.get(sid)
  }

  async activeForUser(username: string, now: number): Promise<SessionRow[]> {
    return this.activeOfUser.all(username, now)
  }

  async activeUsernames(now: number): Promise<string[]> {
    return this.db
      .query<{ username: string }, [number]>('SELECT DISTINCT username FROM sessions WHERE revoked_at IS NULL AND current_exp > ? ORDER BY username')
      .all(now)
      .map((row) => row.username)
  }

  async countActive(now: number): Promise<number> {
    return this.db.query<{ active: number }, [number]>('SELECT count(*) AS active FROM sessions WHERE revoked_at IS NULL AND current_exp > ?').get(now)!.active
  }

  /** Deletes sessions no token of which can still be valid, in small batches. */
  async purgeExpired(now: number): Promise<number> {
    const purge = this.db.query<unknown, [number, number]>(
      'DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE current_exp <= ? LIMIT ?)',
    )
    let total = 0
    for (;;) {
      const { changes } = purge.run(now - SESSION_REVOCATION_MARGIN, PURGE_BATCH)
      total += changes
      if (changes < PURGE_BATCH) return total
    }
  }

  /** Runs `work` in one IMMEDIATE transaction: the write lock is taken before anything is read. */
  private atomically<T>(work: () => T): T {
    return this.db.transaction(work).immediate()
  }

  private apply(decision: RefreshDecision, request: RefreshRequest): void {
    const { sid: id, now, ip, ua } = request
    if (decision.kind === 'rotated') {
      this.rotateStatement.run({ id, next: request.successorHash, iat: request.nextIat, exp: request.nextExp, now, ip, ua })
    } else if (decision.kind === 'kept' || decision.kind === 'repeated') {
      this.touchStatement.run({ id, now, ip, ua })
    } else if (decision.kind === 'reuse') {
      this.revoke(id, 'reuse', now)
    }
  }

  /** The session this call revoked, or null if it was already revoked or doesn't exist. */
  private revoke(id: string, reason: string, now: number): EndedSession | null {
    if (this.revokeStatement.run({ id, reason, now }).changes !== 1) return null
    return { id, current_exp: this.byId.get(id)!.current_exp }
  }
}

/** For CLI commands on the SQLite file: the records with a revocation copy of their own. */
export function sqliteSessionRecords(db: Database, clock: Clock): SqliteSessionRecords {
  return new SqliteSessionRecords(db, new SqliteRevocations(db, clock))
}
