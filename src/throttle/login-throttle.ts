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

/** `accountFailures`: whether the (account, IP) counter has a row, which a success then deletes. */
export type ThrottleDecision = { allowed: true; accountFailures: boolean } | { allowed: false; retryAfter: number }

export class LoginThrottle {
  private readonly read
  private readonly latestBlock
  private readonly write
  private readonly forget

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly settings: ThrottleSettings,
  ) {
    this.read = db.query<FailureRow, [string]>('SELECT failures, last_failure, blocked_until FROM login_failures WHERE key = ?')
    this.latestBlock = db.query<{ until: number | null; account: number | null }, [string, string]>(
      'SELECT MAX(blocked_until) AS until, MAX(key = ?1) AS account FROM login_failures WHERE key IN (?1, ?2)',
    )
    this.write = db.query(
      `INSERT INTO login_failures (key, failures, last_failure, blocked_until) VALUES ($key, $failures, $now, $until)
       ON CONFLICT (key) DO UPDATE SET failures = $failures, last_failure = $now, blocked_until = $until`,
    )
    this.forget = db.query<unknown, [string]>('DELETE FROM login_failures WHERE key = ?')
  }

  check(username: string, ip: string): ThrottleDecision {
    const now = unixSeconds(this.clock)
    const { until, account } = this.latestBlock.get(accountKey(username, ip), ipKey(ip))!
    return until !== null && until > now ? { allowed: false, retryAfter: until - now } : { allowed: true, accountFailures: account === 1 }
  }

  recordFailure(username: string, ip: string): void {
    this.db.transaction(() => {
      this.bump(accountKey(username, ip), this.settings.accountFreeFailures)
      this.bump(ipKey(ip), this.settings.ipFreeFailures)
    }).immediate()
  }

  /**
   * The account's counter for this address starts over. The address's own counter stays: a client
   * holding one valid account must not wipe the failures it spent guessing others.
   */
  recordSuccess(username: string, ip: string, accountFailures?: boolean): void {
    // Usually there is nothing to forget: a read (or the caller's knowledge), not a commit, per login.
    const key = accountKey(username, ip)
    if (accountFailures ?? this.read.get(key) !== null) this.forget.run(key)
  }

  /** Keys (account and address, or address alone) delayed right now, counted when metrics are scraped (README "Metrics"). */
  delayedCount(): number {
    return this.db.query<{ delayed: number }, [number]>('SELECT count(*) AS delayed FROM login_failures WHERE blocked_until > ?').get(unixSeconds(this.clock))!.delayed
  }

  purgeExpired(): number {
    return this.db.query<unknown, [number]>('DELETE FROM login_failures WHERE last_failure < ?').run(unixSeconds(this.clock) - FORGET_AFTER_SECONDS).changes
  }

  private bump(key: string, freeFailures: number): void {
    const now = unixSeconds(this.clock)
    const row = this.read.get(key)
    const failures = row && now - row.last_failure < FORGET_AFTER_SECONDS ? row.failures + 1 : 1
    const excess = failures - freeFailures
    const until = excess > 0 ? now + Math.min(2 ** (excess - 1), this.settings.maxDelay) : 0
    this.write.run({ key, failures, now, until })
  }
}

const accountKey = (username: string, ip: string) => `account:${ip}:${username}`
const ipKey = (ip: string) => `ip:${ip}`
