/**
 * Login-throttle counters in the service's SQLite file (store = "sqlite"; the rule is in
 * throttle-rule.ts). Only failures count: concurrent attempts are bounded by the password-check
 * slots they are checked in (auth/password-login.ts), so a burst can't outrun the counter and
 * correct logins never spend it. Only the failing client's address is slowed, so nobody elsewhere
 * can lock a user out, and the cap keeps even a shared address from being locked out for long.
 * The counters survive a restart.
 */
import type { Database } from 'bun:sqlite'
import { unixSeconds, type Clock } from '../clock'
import {
  accountKey,
  afterFailure,
  blockedUntil,
  FORGET_AFTER_SECONDS,
  ipKey,
  type AttemptOutcome,
  type FailureCount,
  type LoginThrottle,
  type ThrottleDecision,
  type ThrottleSettings,
} from './throttle-rule'

type FailureRow = FailureCount

/**
 * Counters are mirrored in memory up to this many, so a check costs no read transaction; past it
 * (a spread-out storm), SQLite alone answers until the hourly purge brings the count back down.
 */
const MIRROR_LIMIT = 100_000

export class SqliteLoginThrottle implements LoginThrottle {
  private readonly read
  private readonly write
  private readonly forget
  /**
   * Every row of login_failures while there are at most MIRROR_LIMIT, else null. Exact because this
   * process is the table's only writer (no CLI command touches it), and it changes only after a commit.
   */
  private mirror: Map<string, FailureRow> | null = null
  /** Attempts begun and not yet finished, per key: this process is the only one checking them. */
  private readonly inFlight = new Map<string, number>()

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

  async check(username: string, ip: string): Promise<ThrottleDecision> {
    const now = unixSeconds(this.clock)
    const until = Math.max(this.row(accountKey(username, ip))?.blocked_until ?? 0, this.row(ipKey(ip))?.blocked_until ?? 0)
    return until > now ? { allowed: false, retryAfter: until - now } : { allowed: true }
  }

  async begin(username: string, ip: string): Promise<ThrottleDecision> {
    const now = unixSeconds(this.clock)
    const keys = this.keysOf(username, ip)
    const until = Math.max(...keys.map(([key, free]) => blockedUntil(this.row(key), this.inFlight.get(key) ?? 0, free, this.settings.maxDelay, now)))
    if (until > now) return { allowed: false, retryAfter: until - now }
    for (const [key] of keys) this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1)
    return { allowed: true }
  }

  async finish(username: string, ip: string, outcome: AttemptOutcome): Promise<void> {
    for (const [key] of this.keysOf(username, ip)) {
      const left = (this.inFlight.get(key) ?? 1) - 1
      if (left > 0) this.inFlight.set(key, left)
      else this.inFlight.delete(key)
    }
    if (outcome === 'failure') this.recordFailure(username, ip)
    else if (outcome === 'success') this.recordSuccess(username, ip)
  }

  private keysOf(username: string, ip: string): Array<[string, number]> {
    return [
      [accountKey(username, ip), this.settings.accountFreeFailures],
      [ipKey(ip), this.settings.ipFreeFailures],
    ]
  }

  private recordFailure(username: string, ip: string): void {
    const now = unixSeconds(this.clock)
    const rows = [this.bumped(accountKey(username, ip), this.settings.accountFreeFailures, now), this.bumped(ipKey(ip), this.settings.ipFreeFailures, now)]
    this.db.transaction(() => {
      for (const [key, row] of rows) this.write.run({ key, failures: row.failures, now, until: row.blocked_until })
    }).immediate()
    for (const [key, row] of rows) this.mirror?.set(key, row)
    if (this.mirror && this.mirror.size > MIRROR_LIMIT) this.mirror = null
  }

  private recordSuccess(username: string, ip: string): void {
    // Usually there is nothing to forget, and so no commit per login.
    const key = accountKey(username, ip)
    if (!this.row(key)) return
    this.forget.run(key)
    this.mirror?.delete(key)
  }

  async delayedCount(): Promise<number> {
    return this.db.query<{ delayed: number }, [number]>('SELECT count(*) AS delayed FROM login_failures WHERE blocked_until > ?').get(unixSeconds(this.clock))!.delayed
  }

  async purgeExpired(): Promise<number> {
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
    return [key, afterFailure(this.row(key), freeFailures, this.settings.maxDelay, now)]
  }

  private loadMirror(): void {
    const rows = this.db.query<FailureRow & { key: string }, [number]>('SELECT key, failures, last_failure, blocked_until FROM login_failures LIMIT ?').all(MIRROR_LIMIT + 1)
    this.mirror = rows.length > MIRROR_LIMIT ? null : new Map(rows.map(({ key, ...row }) => [key, row]))
  }
}
