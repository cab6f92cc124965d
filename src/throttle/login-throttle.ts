/**
 * Login throttling (README "Login throttling"), checked before any password work. Failures are
 * counted per (account, client IP) and per client IP; past a few free failures each further one
 * doubles the wait, up to a cap. Only failures count: concurrent attempts are bounded by the
 * password-check slots they are checked in (auth/password-login.ts), so a burst can't outrun
 * the counter and correct logins never spend it. Only the failing client's address is slowed, so
 * nobody elsewhere can lock a user out, and the cap keeps even a shared address from being locked
 * out for long. The counters live in SQLite: a restart doesn't reset them.
 */
import type { Database } from 'bun:sqlite'
import { unixSeconds, type Clock } from '../clock'

export interface ThrottleSettings {
  /** Failures allowed per (account, IP) before delays start. */
  accountFreeFailures: number
  /** Failures allowed per IP, across accounts, before delays start. */
  ipFreeFailures: number
  /** The longest delay, in seconds. */
  maxDelay: number
}

/** A key with no failure for this long starts again from zero. */
const FORGET_AFTER_SECONDS = 3600

interface FailureRow {
  failures: number
  last_failure: number
  blocked_until: number
}

export type ThrottleDecision = { allowed: true } | { allowed: false; retryAfter: number }

/**
 * Counters are mirrored in memory up to this many, so a check costs no read transaction; past it
 * (a spread-out storm), SQLite alone answers until the hourly purge brings the count back down.
 */
const MIRROR_LIMIT = 100_000

export class LoginThrottle {
  private readonly read
  private readonly write
  private readonly forget
  /**
   * Every row of login_failures while there are at most MIRROR_LIMIT, else null. Exact because this
   * process is the table's only writer (no CLI command touches it), and it changes only after a commit.
   */
  private mirror: Map<string, FailureRow> | null = null

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly settings: ThrottleSettings,
  ) {
    this.read = db.query<FailureRow, [string]>('SELECT failures, last_failure, blocked_until FROM login_failures WHERE key = ?')
    this.write = db.query(
      `INSERT INTO login_failures (key, failures, last_failure, blocked_until) VALUES ($key, $failures, $now, $until)
       ON CONFLICT (key) DO UPDATE SET failures = $failures, last_failure = $now, blocked_until = $until`,
    )
    this.forget = db.query<unknown, [string]>('DELETE FROM login_failures WHERE key = ?')
    this.loadMirror()
  }

  check(username: string, ip: string): ThrottleDecision {
    const now = unixSeconds(this.clock)
    const until = Math.max(this.row(accountKey(username, ip))?.blocked_until ?? 0, this.row(ipKey(ip))?.blocked_until ?? 0)
    return until > now ? { allowed: false, retryAfter: until - now } : { allowed: true }
  }

  recordFailure(username: string, ip: string): void {
    const now = unixSeconds(this.clock)
    const rows = [this.bumped(accountKey(username, ip), this.settings.accountFreeFailures, now), this.bumped(ipKey(ip), this.settings.ipFreeFailures, now)]
    this.db.transaction(() => {
      for (const [key, row] of rows) this.write.run({ key, failures: row.failures, now, until: row.blocked_until })
    }).immediate()
    for (const [key, row] of rows) this.mirror?.set(key, row)
    if (this.mirror && this.mirror.size > MIRROR_LIMIT) this.mirror = null
  }

  /**
   * The account's counter for this address starts over. The address's own counter stays: a client
   * holding one valid account must not wipe the failures it spent guessing others.
   */
  recordSuccess(username: string, ip: string): void {
    // Usually there is nothing to forget, and so no commit per login.
    const key = accountKey(username, ip)
    if (!this.row(key)) return
    this.forget.run(key)
    this.mirror?.delete(key)
  }

  /** Keys (account and address, or address alone) delayed right now, counted when metrics are scraped (README "Metrics"). */
  delayedCount(): number {
    return this.db.query<{ delayed: number }, [number]>('SELECT count(*) AS delayed FROM login_failures WHERE blocked_until > ?').get(unixSeconds(this.clock))!.delayed
  }

  purgeExpired(): number {
    const cutoff = unixSeconds(this.clock) - FORGET_AFTER_SECONDS
    const purged = this.db.query<unknown, [number]>('DELETE FROM login_failures WHERE last_failure < ?').run(cutoff).changes
    if (this.mirror) {
      for (const [key, row] of this.mirror) if (row.last_failure < cutoff) this.mirror.delete(key)
    } else {
      this.loadMirror()
    }
    return purged
  }

  private row(key: string): FailureRow | null {
    return this.mirror ? (this.mirror.get(key) ?? null) : this.read.get(key)
  }

  private bumped(key: string, freeFailures: number, now: number): [string, FailureRow] {
    const row = this.row(key)
    const failures = row && now - row.last_failure < FORGET_AFTER_SECONDS ? row.failures + 1 : 1
    const excess = failures - freeFailures
    const until = excess > 0 ? now + Math.min(2 ** (excess - 1), this.settings.maxDelay) : 0
    return [key, { failures, last_failure: now, blocked_until: until }]
  }

  private loadMirror(): void {
    const rows = this.db.query<FailureRow & { key: string }, [number]>('SELECT key, failures, last_failure, blocked_until FROM login_failures LIMIT ?').all(MIRROR_LIMIT + 1)
    this.mirror = rows.length > MIRROR_LIMIT ? null : new Map(rows.map(({ key, ...row }) => [key, row]))
  }
}

const accountKey = (username: string, ip: string) => `account:${ip}:${username}`
const ipKey = (ip: string) => `ip:${ip}`
