/**
 * The api_keys table (README "API keys"): one row per key, holding its SHA-256 only. Every
 * statement is prepared once; the hot path (api-key-service.ts) reads none of them.
 */
import type { Database } from 'bun:sqlite'

export interface ApiKeyRow {
  id: number
  user_id: number
  username: string
  name: string
  hash: string
  prefix: string
  created_at: number
  last_used_at: number | null
  expires_at: number | null
  /** Set for self-made keys: unused this long, the key stops working. */
  idle_minutes: number | null
  /** Set for self-made keys: the client address that made it, the only one it works from. */
  bound_ip: string | null
  /** `self`, `admin:<username>` or `cli:<operator>`. */
  created_by: string
  revoked_at: number | null
}

export type NewApiKey = Omit<ApiKeyRow, 'id' | 'last_used_at' | 'revoked_at'>

/** Dead keys stay listed in the table this long after they died, then are deleted. */
export const DEAD_KEY_RETENTION_SECONDS = 30 * 24 * 3600

export class ApiKeyStore {
  private readonly insertStatement
  private readonly byIdStatement
  private readonly activeStatement
  private readonly revokeStatement
  private readonly touchStatement
  private readonly purgeStatement

  constructor(private readonly db: Database) {
    this.insertStatement = db.query<{ id: number }, NewApiKey>(
      `INSERT INTO api_keys (user_id, username, name, hash, prefix, created_at, expires_at, idle_minutes, bound_ip, created_by)
       VALUES ($user_id, $username, $name, $hash, $prefix, $created_at, $expires_at, $idle_minutes, $bound_ip, $created_by)
       RETURNING id`,
    )
    this.byIdStatement = db.query<ApiKeyRow, [number]>('SELECT * FROM api_keys WHERE id = ?')
    this.activeStatement = db.query<ApiKeyRow, []>('SELECT * FROM api_keys WHERE revoked_at IS NULL ORDER BY id')
    this.revokeStatement = db.query<unknown, { id: number; now: number }>('UPDATE api_keys SET revoked_at = $now WHERE id = $id AND revoked_at IS NULL')
    // max(): a use flushed by another process (none today) is never moved back.
    this.touchStatement = db.query<unknown, { id: number; at: number }>(
      'UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), $at) WHERE id = $id',
    )
    this.purgeStatement = db.query<unknown, { before: number }>(
      `DELETE FROM api_keys WHERE revoked_at < $before OR expires_at < $before
         OR (idle_minutes IS NOT NULL AND coalesce(last_used_at, created_at) + idle_minutes * 60 < $before)`,
    )
  }

  insert(key: NewApiKey): ApiKeyRow {
    const { id } = this.insertStatement.get(key)!
    return { ...key, id, last_used_at: null, revoked_at: null }
  }

  get(id: number): ApiKeyRow | null {
    return this.byIdStatement.get(id)
  }

  /** Every key not revoked, expired or not: the service judges expiry with its clock. */
  notRevoked(): ApiKeyRow[] {
    return this.activeStatement.all()
  }

  /** True if this call revoked it. */
  revoke(id: number, now: number): boolean {
    return this.revokeStatement.run({ id, now }).changes === 1
  }

  /** Writes many last uses in one transaction: one commit for the whole batch. */
  recordLastUses(uses: ReadonlyArray<{ id: number; at: number }>): void {
    if (uses.length === 0) return
    this.db.transaction(() => {
      for (const use of uses) this.touchStatement.run(use)
    })()
  }

  /** Deletes keys dead (revoked, expired or idle) for longer than the retention. */
  purgeDead(now: number): number {
    return this.purgeStatement.run({ before: now - DEAD_KEY_RETENTION_SECONDS }).changes
  }
}
