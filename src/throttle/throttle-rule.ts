/**
 * The login-throttle rule (README "Login throttling"), shared by the SQLite and Redis counters:
 * past a few free failures each further one doubles the wait, up to a cap; a key with no failure
 * for an hour starts again from zero.
 */
export interface ThrottleSettings {
  /** Failures allowed per (account, IP) before delays start. */
  accountFreeFailures: number
  /** Failures allowed per IP, across accounts, before delays start. */
  ipFreeFailures: number
  /** The longest delay, in seconds. */
  maxDelay: number
}

export type ThrottleDecision = { allowed: true } | { allowed: false; retryAfter: number }

/** A key with no failure for this long starts again from zero. */
export const FORGET_AFTER_SECONDS = 3600

export interface FailureCount {
  failures: number
  last_failure: number
  blocked_until: number
}

/** The count after one more failure at `now`. */
export function afterFailure(count: FailureCount | null, freeFailures: number, maxDelay: number, now: number): FailureCount {
  const failures = count && now - count.last_failure < FORGET_AFTER_SECONDS ? count.failures + 1 : 1
  const excess = failures - freeFailures
  const until = excess > 0 ? now + Math.min(2 ** (excess - 1), maxDelay) : 0
  return { failures, last_failure: now, blocked_until: until }
}

export const accountKey = (username: string, ip: string) => `account:${ip}:${username}`
export const ipKey = (ip: string) => `ip:${ip}`

/** Checked before any password work; both implementations are atomic per failure. */
export interface LoginThrottle {
  check(username: string, ip: string): Promise<ThrottleDecision>
  recordFailure(username: string, ip: string): Promise<void>
  /**
   * The account's counter for this address starts over. The address's own counter stays: a client
   * holding one valid account must not wipe the failures it spent guessing others.
   */
  recordSuccess(username: string, ip: string): Promise<void>
  /** Keys delayed right now (README "Metrics"). */
  delayedCount(): Promise<number>
  purgeExpired(): Promise<number>
}
