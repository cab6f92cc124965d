/**
 * The sessions table (README "Sessions and refresh rotation"): one row per login, holding its
 * refresh-token family by hash only.
 */
import type { Database } from 'bun:sqlite'
import { createHash } from 'node:crypto'
import type { Role } from '../directory/directory'
import { GroupCommit } from '../store/group-commit'
import { SESSION_REVOCATION_MARGIN } from '../tokens/revocations'

const PURGE_BATCH = 500

export interface SessionRow {
  id: string
  username: string
  role: Role
  user_id: number
  created_at: number
  last_used_at: number
  ip: string
  user_agent: string
  current_hash: string
  current_iat: number
  current_exp: number
  previous_hash: string | null
  revoked_at: number | null
  revoke_reason: string | null
}

export type NewSession = Pick<
  SessionRow,
  'id' | 'username' | 'role' | 'user_id' | 'created_at' | 'ip' | 'user_agent' | 'current_iat' | 'current_exp' | 'previous_hash'
> & { currentJti: string }

/** Refresh token ids are stored as SHA-256 hashes: a copy of the database yields no usable id. */
export const hashTokenId = (jti: string): string => createHash('sha256').update(jti).digest('base64url')

export class SessionStore {
  private readonly byId
  private readonly insert
  private readonly rotateStatement
  private readonly touchStatement
  private readonly revokeStatement
  private readonly newSessions: GroupCommit

  constructor(private readonly db: Database) {
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
       WHERE id = $id AND current_hash = $current AND revoked_at IS NULL`,
    )
    this.touchStatement = db.query('UPDATE sessions SET last_used_at = $now, ip = $ip, user_agent = $ua WHERE id = $id')
    this.revokeStatement = db.query(
      'UPDATE sessions SET revoked_at = $now, revoke_reason = $reason WHERE id = $id AND revoked_at IS NULL',
    )
  }

  /** Runs `work` in one IMMEDIATE transaction: the write lock is taken before anything is read. */
  atomically<T>(work: () => T): T {
    return this.db.transaction(work).immediate()
  }

  create(session: NewSession): void {
    const { currentJti, ...row } = session
    this.insert.run({ ...row, current_hash: hashTokenId(currentJti) })
  }

  /** Creates it in the next group commit (store/group-commit.ts); resolves once that is written. */
  createDurably(session: NewSession): Promise<void> {
    return this.newSessions.submit(() => this.create(session))
  }

  get(id: string): SessionRow | null {
    return this.byId.get(id)
  }

  /** Moves the family one step; false if another request rotated or revoked it first. */
  rotate(id: string, change: { currentJti: string; nextJti: string; iat: number; exp: number; now: number; ip: string; ua: string }): boolean {
    const { changes } = this.rotateStatement.run({
      id,
      current: hashTokenId(change.currentJti),
      next: hashTokenId(change.nextJti),
      iat: change.iat,
      exp: change.exp,
      now: change.now,
      ip: change.ip,
      ua: change.ua,
    })
    return changes === 1
  }

  touch(id: string, now: number, ip: string, ua: string): void {
    this.touchStatement.run({ id, now, ip, ua })
  }

  /** Returns whether this call revoked it (false if it was already revoked or doesn't exist). */
  revoke(id: string, reason: string, now: number): boolean {
    return this.revokeStatement.run({ id, reason, now }).changes === 1
  }

  /** Sessions neither revoked nor expired, counted when metrics are scraped (README "Metrics"). */
  countActive(now: number): number {
    return this.db.query<{ active: number }, [number]>('SELECT count(*) AS active FROM sessions WHERE revoked_at IS NULL AND current_exp > ?').get(now)!.active
  }

  activeForUser(username: string, now: number): SessionRow[] {
    return this.db
      .query<SessionRow, [string, number]>(
        'SELECT * FROM sessions WHERE username = ? AND revoked_at IS NULL AND current_exp > ? ORDER BY created_at, id',
      )
      .all(username, now)
  }

  /** Users with at least one active session (`secret rotate --revoke-all`). */
  activeUsernames(now: number): string[] {
    return this.db
      .query<{ username: string }, [number]>('SELECT DISTINCT username FROM sessions WHERE revoked_at IS NULL AND current_exp > ? ORDER BY username')
      .all(now)
      .map((row) => row.username)
  }

  /** Deletes sessions no token of which can still be valid, in small batches. */
  purgeExpired(now: number): number {
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
}
