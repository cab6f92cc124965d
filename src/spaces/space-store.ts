/** The `spaces` table (README "Spaces") and the user counts that guard its removal. */
import type { Database } from 'bun:sqlite'

/** The row the migration creates: existing users, new ones without `--space`, and every MikoPBX user. */
export const DEFAULT_SPACE_ID = 1

export interface SpaceRow {
  id: number
  domain: string
  /** Unix seconds, or null: never expires. */
  expire_at: number | null
  created_at: number
}

export interface SpaceListing extends SpaceRow {
  users: number
}

export type SpaceProblem = 'unknown' | 'exists' | 'has_users' | 'default'

export class SpaceError extends Error {
  override name = 'SpaceError'
  constructor(
    readonly problem: SpaceProblem,
    message: string,
  ) {
    super(message)
  }
}

export class SpaceStore {
  private readonly byDomain

  constructor(private readonly db: Database) {
    this.byDomain = db.query<SpaceRow, [string]>('SELECT id, domain, expire_at, created_at FROM spaces WHERE domain = ?')
  }

  all(): SpaceListing[] {
    return this.db
      .query<SpaceListing, []>(
        `SELECT s.id, s.domain, s.expire_at, s.created_at, (SELECT count(*) FROM users u WHERE u.space_id = s.id) AS users
         FROM spaces s ORDER BY s.domain`,
      )
      .all()
  }

  find(domain: string): SpaceRow | null {
    return this.byDomain.get(domain)
  }

  /** Throws SpaceError('unknown') naming the domain. */
  existing(domain: string): SpaceRow {
    const row = this.find(domain)
    if (!row) throw new SpaceError('unknown', `no such space: ${domain}`)
    return row
  }

  add(domain: string, expireAt: number | null, now: number): SpaceRow {
    return this.db.transaction(() => {
      if (this.find(domain)) throw new SpaceError('exists', `space ${domain} already exists`)
      this.db.query('INSERT INTO spaces (domain, expire_at, created_at) VALUES (?, ?, ?)').run(domain, expireAt, now)
      return this.find(domain)!
    }).immediate()
  }

  setExpiry(domain: string, expireAt: number | null): SpaceRow {
    return this.db.transaction(() => {
      const row = this.existing(domain)
      this.db.query('UPDATE spaces SET expire_at = ? WHERE id = ?').run(expireAt, row.id)
      return { ...row, expire_at: expireAt }
    }).immediate()
  }

  /** The default space stays (MikoPBX users belong to it), and so does a space with users. */
  remove(domain: string): void {
    this.db.transaction(() => {
      const row = this.existing(domain)
      if (row.id === DEFAULT_SPACE_ID) throw new SpaceError('default', `space ${domain} is the default space and stays`)
      const users = this.db.query<{ n: number }, [number]>('SELECT count(*) AS n FROM users WHERE space_id = ?').get(row.id)!.n
      if (users > 0) throw new SpaceError('has_users', `space ${domain} still has ${users} users; move or remove them first`)
      this.db.query('DELETE FROM spaces WHERE id = ?').run(row.id)
    }).immediate()
  }

  /** What the access check keeps in memory: each space's expiry by id. */
  expiries(): Map<number, number | null> {
    const rows = this.db.query<{ id: number; expire_at: number | null }, []>('SELECT id, expire_at FROM spaces').all()
    return new Map(rows.map((row) => [row.id, row.expire_at]))
  }
}
