/** Users stored in the service's own SQLite file, with argon2id password hashes. */
import type { Database } from 'bun:sqlite'
import { randomBytes } from 'node:crypto'
import { DEFAULT_DIGEST_REALM, digestHa1, type DigestAlgorithm } from '../auth/digest'
import { DIGEST_ALGORITHMS } from '../auth/digest-header'
import { unixSeconds, type Clock } from '../clock'
import { DEFAULT_SPACE_ID } from '../spaces/space-store'
import type { Directory, DirectoryUser, Role } from './directory'

/** NIST SP 800-63B's minimum for a password the user chose; `password_min_length` changes it. */
export const DEFAULT_PASSWORD_MIN_LENGTH = 8
/** Longer passwords could never log in: the login route refuses them (README, error table). */
const PASSWORD_MAX_BYTES = 1024

/** OWASP's argon2id minimum (m = 19 MiB, t = 2, p = 1). Bun's memoryCost is in KiB. */
export const ARGON2_PARAMS = { algorithm: 'argon2id', memoryCost: 19456, timeCost: 2 } as const

interface UserRow {
  id: number
  username: string
  display_name: string
  role: Role
  password_hash: string
  disabled: number
  mobile: string
  space_id: number
}

export class DirectoryError extends Error {
  override name = 'DirectoryError'
}

export class UserExistsError extends DirectoryError {
  override name = 'UserExistsError'
}

/** A change that would leave no enabled superadmin, where there was one (README "Admin API"). */
export class LastSuperadminError extends DirectoryError {
  override name = 'LastSuperadminError'
}

/** What an admin may change of a user; a password comes hashed already (`preparePassword`). */
export interface UserChanges {
  displayName?: string
  role?: Role
  mobile?: string
  disabled?: boolean
  password?: PreparedPassword
}

/** A new password's argon2id hash and its Digest HA1s, computed before any transaction. */
export interface PreparedPassword {
  hash: string
  ha1: ReadonlyArray<{ algorithm: DigestAlgorithm; ha1: string }>
}

export interface UserPage {
  users: DirectoryUser[]
  total: number
}

export class EmbeddedDirectory implements Directory {
  private dummyHash: Promise<string> | undefined
  private readonly byUsername
  private readonly byId

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly passwordMinLength = DEFAULT_PASSWORD_MIN_LENGTH,
    /** The realm whose HA1 is stored with each new password (README "HTTP Digest"). */
    private readonly digestRealm = DEFAULT_DIGEST_REALM,
  ) {
    this.byUsername = db.query<UserRow, [string]>('SELECT * FROM users WHERE username = ?')
    this.byId = db.query<UserRow, [number]>('SELECT * FROM users WHERE id = ?')
  }

  async authenticate(username: string, password: string): Promise<DirectoryUser | null> {
    const row = this.byUsername.get(username)
    // A missing user is checked against a dummy hash with the same parameters, so timing matches.
    const hash = row?.password_hash ?? (await this.getDummyHash())
    const matches = await Bun.password.verify(password, hash)
    if (!row || !matches || row.disabled) return null
    return toUser(row)
  }

  findById(id: number): DirectoryUser | null {
    const row = this.byId.get(id)
    return row ? toUser(row) : null
  }

  findByUsername(username: string): DirectoryUser | null {
    const row = this.byUsername.get(username)
    return row ? toUser(row) : null
  }

  list(): DirectoryUser[] {
    return this.db.query<UserRow, []>('SELECT * FROM users ORDER BY username').all().map(toUser)
  }

  /** One page in username order; `search` is a case-insensitive substring of the username or display name. */
  page({ offset, limit, search }: { offset: number; limit: number; search: string }): UserPage {
    const pattern = `%${search.replace(/[\\%_]/g, '\\$&')}%`
    const where = "WHERE username LIKE $pattern ESCAPE '\\' OR display_name LIKE $pattern ESCAPE '\\'"
    const total = this.db.query<{ n: number }, Record<string, string>>(`SELECT COUNT(*) AS n FROM users ${where}`).get({ pattern })!.n
    const users = this.db
      .query<UserRow, Record<string, string | number>>(`SELECT * FROM users ${where} ORDER BY username LIMIT $limit OFFSET $offset`)
      .all({ pattern, limit, offset })
      .map(toUser)
    return { users, total }
  }

  /** Why `password` can't be a new password, or null; the same rule `add` and `setPassword` apply. */
  passwordProblem(password: string): string | null {
    try {
      this.checkNewPassword(password)
      return null
    } catch (error) {
      return (error as DirectoryError).message
    }
  }

  async preparePassword(username: string, password: string): Promise<PreparedPassword> {
    this.checkNewPassword(password)
    const ha1 = DIGEST_ALGORITHMS.map((algorithm) => ({ algorithm, ha1: digestHa1(algorithm, username, this.digestRealm, password) }))
    return { hash: await this.hash(password), ha1 }
  }

  /**
   * Applies every change at once, or none: refused with LastSuperadminError when it would disable
   * or demote the last enabled superadmin. `alongside` runs in the same transaction (ending the
   * user's sessions, say), so either both are stored or neither.
   */
  change(username: string, changes: UserChanges, alongside?: () => void): DirectoryUser {
    this.keepingASuperadmin(alongside, () => {
      const row = this.byUsername.get(username)
      if (!row) throw new DirectoryError(`no such user: ${username}`)
      this.db
        .query('UPDATE users SET display_name = ?, role = ?, mobile = ?, disabled = ?, password_hash = ? WHERE id = ?')
        .run(
          changes.displayName ?? row.display_name,
          changes.role ?? row.role,
          changes.mobile ?? row.mobile,
          changes.disabled === undefined ? row.disabled : Number(changes.disabled),
          changes.password?.hash ?? row.password_hash,
          row.id,
        )
      if (changes.password) this.replaceHa1(row.id, changes.password.ha1)
    })
    return this.findByUsername(username)!
  }

  /** `remove`, refused with LastSuperadminError for the last enabled superadmin; `alongside` as in `change`. */
  removeKeepingASuperadmin(username: string, alongside?: () => void): void {
    this.keepingASuperadmin(alongside, () => this.remove(username))
  }

  /**
   * Runs `change` in one IMMEDIATE transaction (no other process writes between the count and the
   * change) and rolls it back if it took away the last enabled superadmin.
   */
  private keepingASuperadmin(alongside: (() => void) | undefined, change: () => void): void {
    this.db
      .transaction(() => {
        const before = this.enabledSuperadmins()
        change()
        if (before > 0 && this.enabledSuperadmins() === 0) throw new LastSuperadminError('the last enabled superadmin must stay')
        alongside?.()
      })
      .immediate()
  }

  private enabledSuperadmins(): number {
    return this.db.query<{ n: number }, []>("SELECT COUNT(*) AS n FROM users WHERE role = 'superadmin' AND disabled = 0").get()!.n
  }

  /** `spaceId`: the default space when absent (README "Spaces"); the caller checks that it exists. */
  async add(input: { username: string; password: string; displayName: string; role: Role; mobile: string; spaceId?: number }): Promise<DirectoryUser> {
    const exists = () => {
      if (this.byUsername.get(input.username)) throw new UserExistsError(`user ${input.username} already exists`)
    }
    exists()
    this.checkNewPassword(input.password)
    const hash = await this.hash(input.password)
    // IMMEDIATE: a read that turns into a write under a deferred lock fails at once with SQLITE_BUSY
    // when another process writes meanwhile, instead of waiting out the busy timeout.
    this.db
      .transaction(() => {
        // Again: another request may have added the same user while the hash was computed.
        exists()
        const { lastInsertRowid } = this.db
          .query('INSERT INTO users (username, display_name, role, password_hash, mobile, created_at, space_id) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(input.username, input.displayName, input.role, hash, input.mobile, unixSeconds(this.clock), input.spaceId ?? DEFAULT_SPACE_ID)
        this.storeHa1(Number(lastInsertRowid), input.username, input.password)
      })
      .immediate()
    return this.findByUsername(input.username)!
  }

  async setPassword(username: string, password: string): Promise<void> {
    this.checkNewPassword(password)
    const hash = await this.hash(password)
    this.db.transaction(() => {
      this.update('UPDATE users SET password_hash = ? WHERE username = ?', hash, username)
      this.storeHa1(this.byUsername.get(username)!.id, username, password)
    })()
  }

  /** The stored HA1 of an enabled user for that realm and algorithm; null until a password is set after the upgrade. */
  digestHa1(username: string, realm: string, algorithm: DigestAlgorithm): string | null {
    const row = this.db
      .query<{ ha1: string }, [string, string, string]>(
        'SELECT d.ha1 FROM digest_ha1 d JOIN users u ON u.id = d.user_id WHERE u.username = ? AND u.disabled = 0 AND d.realm = ? AND d.algorithm = ?',
      )
      .get(username, realm, algorithm)
    return row?.ha1 ?? null
  }

  /** HA1s of an older password or realm go: only the current password, in the configured realm, answers Digest. */
  private storeHa1(userId: number, username: string, password: string): void {
    this.replaceHa1(
      userId,
      DIGEST_ALGORITHMS.map((algorithm) => ({ algorithm, ha1: digestHa1(algorithm, username, this.digestRealm, password) })),
    )
  }

  private replaceHa1(userId: number, entries: PreparedPassword['ha1']): void {
    this.db.query('DELETE FROM digest_ha1 WHERE user_id = ?').run(userId)
    const insert = this.db.query('INSERT INTO digest_ha1 (user_id, realm, algorithm, ha1) VALUES (?, ?, ?, ?)')
    for (const { algorithm, ha1 } of entries) insert.run(userId, this.digestRealm, algorithm, ha1)
  }

  setDisabled(username: string, disabled: boolean): void {
    this.update('UPDATE users SET disabled = ? WHERE username = ?', disabled ? 1 : 0, username)
  }

  /** Moves the user to another space; the caller checks that it exists. */
  setSpace(username: string, spaceId: number): void {
    this.update('UPDATE users SET space_id = ? WHERE username = ?', spaceId, username)
  }

  remove(username: string): void {
    this.update('DELETE FROM users WHERE username = ?', username)
  }

  /** Length in characters (code points), as NIST counts it; the upper limit is the login route's, in bytes. */
  private checkNewPassword(password: string): void {
    if ([...password].length < this.passwordMinLength) {
      throw new DirectoryError(`the password is shorter than ${this.passwordMinLength} characters (password_min_length)`)
    }
    if (Buffer.byteLength(password) > PASSWORD_MAX_BYTES) throw new DirectoryError(`the password is longer than ${PASSWORD_MAX_BYTES} bytes`)
  }

  private update(sql: string, ...params: Array<string | number>): void {
    const { changes } = this.db.query(sql).run(...params)
    if (changes === 0) throw new DirectoryError(`no such user: ${params.at(-1)}`)
  }

  private hash(password: string): Promise<string> {
    return Bun.password.hash(password, ARGON2_PARAMS)
  }

  private getDummyHash(): Promise<string> {
    this.dummyHash ??= this.hash(randomBytes(16).toString('hex'))
    return this.dummyHash
  }
}

function toUser(row: UserRow): DirectoryUser {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    role: row.role,
    mobile: row.mobile,
    disabled: row.disabled === 1,
    spaceId: row.space_id,
  }
}
