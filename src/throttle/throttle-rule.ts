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

/**
 * Would one more attempt be refused, counting the attempts still in flight as failures? An
 * attempt in flight is one begun (LoginThrottle.begin) whose credential is still being checked:
 * parallel guesses can't all pass the check before any of them is counted.
 */
export function blockedUntil(count: FailureCount | null, inFlight: number, freeFailures: number, maxDelay: number, now: number): number {
  let projected = count
  for (let i = 0; i < inFlight; i++) projected = afterFailure(projected, freeFailures, maxDelay, now)
  return projected?.blocked_until ?? 0
}

/** How an attempt begun with LoginThrottle.begin ended: only `failure` is counted. */
export type AttemptOutcome = 'failure' | 'success' | 'uncounted'

export const accountKey = (username: string, ip: string) => `account:${ip}:${username}`
export const ipKey = (ip: string) => `ip:${ip}`

/**
 * Checked before any password work. Only failures count, yet parallel attempts can't outrun the
 * counter: `begin` refuses an attempt that the attempts in flight would push past the limit, if
 * they all failed, and admits it atomically (in one turn of the event loop with SQLite, one Lua
 * script with Redis, so attempts spread over nodes count together).
 */
export interface LoginThrottle {
  /** The counters as stored, ignoring attempts in flight: a cheap first look on arrival. */
  check(username: string, ip: string): Promise<ThrottleDecision>
  /** Admits the attempt, in flight until `finish`, or refuses it. */
  begin(username: string, ip: string): Promise<ThrottleDecision>
  /**
   * Ends an admitted attempt. A failure is counted on both keys. A success starts the account's
   * counter for this address over; the address's own counter stays: a client holding one valid
   * account must not wipe the failures it spent guessing others.
   */
  finish(username: string, ip: string, outcome: AttemptOutcome): Promise<void>
  /** Keys delayed right now (README "Metrics"). */
  delayedCount(): Promise<number>
  purgeExpired(): Promise<number>
}
