/**
 * One password login, in the order that makes throttling exact (README "Login throttling"):
 * a cheap throttle check on arrival, a wait for one of the few password-check slots, the
 * authoritative throttle check inside the slot, the directory's check, and the outcome recorded
 * before the slot is released. Only failures spend the throttle's budget, so any number of
 * concurrent correct logins from one address pass; and since at most `concurrency` outcomes are
 * ever pending, a guessing client gets at most the free failures plus `concurrency` checks before
 * its delay starts.
 */
import type { Directory, DirectoryUser } from '../directory/directory'
import { ConcurrencyLimiter, LimiterFullError } from './limiter'
import type { LoginThrottle } from '../throttle/login-throttle'

/**
 * Logins waiting for a slot beyond this get `busy` (the route answers 503): at ~20 argon2id
 * verifies a second per two slots, a longer queue only means answers nobody waits for.
 */
const MAX_WAITING = 128

export type LoginOutcome<T = DirectoryUser> =
  | { ok: true; user: T }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'throttled'; retryAfter: number }
  /** Every slot taken and the queue full: the same for every user, and it counts for nothing. */
  | { ok: false; reason: 'busy' }

const INVALID = { ok: false, reason: 'invalid' } as const
const BUSY = { ok: false, reason: 'busy' } as const

/** Who a password belongs to, or null: the directory's users, or another credential store (the core API's admin). */
export type CredentialCheck<T> = (username: string, password: string) => Promise<T | null>

export class PasswordLogin {
  private readonly slots: ConcurrencyLimiter
  private outcomeListener: (outcome: LoginOutcome<unknown>) => void = () => {}

  constructor(
    private readonly directory: Directory,
    private readonly throttle: LoginThrottle,
    concurrency: number,
    maxWaiting = MAX_WAITING,
  ) {
    this.slots = new ConcurrencyLimiter(concurrency, maxWaiting)
  }

  /** Told every attempt's outcome, for the metrics (README "Metrics"). */
  onOutcome(listener: (outcome: LoginOutcome<unknown>) => void): void {
    this.outcomeListener = listener
  }

  async attempt(username: string, password: string, ip: string): Promise<LoginOutcome> {
    const { directory } = this
    if (directory.authenticateNow) return this.attemptNow(username, password, ip, directory.authenticateNow.bind(directory))
    return this.attemptWith(username, password, ip, (name, secret) => directory.authenticate(name, secret))
  }

  /**
   * A directory that answers at once needs no slot: the throttle check, the comparison and the
   * recorded outcome happen in one turn of the event loop, so no other attempt can come between.
   */
  private attemptNow(username: string, password: string, ip: string, check: (username: string, password: string) => DirectoryUser | null): LoginOutcome {
    const outcome = this.throttled(username, ip) ?? this.recorded(username, ip, check(username, password))
    this.outcomeListener(outcome)
    return outcome
  }

  /**
   * The same order, slots and throttle for another credential check, so that guesses against the
   * core API's admin login (README "MikoPBX core-compatible API") and `auth/login` count together.
   */
  async attemptWith<T>(username: string, password: string, ip: string, check: CredentialCheck<T>): Promise<LoginOutcome<T>> {
    const outcome = await this.queuedAttempt(username, password, ip, check)
    this.outcomeListener(outcome)
    return outcome
  }

  private async queuedAttempt<T>(username: string, password: string, ip: string, check: CredentialCheck<T>): Promise<LoginOutcome<T>> {
    // A client already delayed is refused without queueing behind the others.
    const onArrival = this.throttled(username, ip)
    if (onArrival) return onArrival
    try {
      return await this.slots.run((waited) => this.checkInSlot(username, password, ip, check, waited))
    } catch (error) {
      if (error instanceof LimiterFullError) return BUSY
      throw error
    }
  }

  private async checkInSlot<T>(username: string, password: string, ip: string, check: CredentialCheck<T>, waited: boolean): Promise<LoginOutcome<T>> {
    // Failures recorded while this attempt waited for its slot count here.
    const inSlot = waited ? this.throttled(username, ip) : null
    return inSlot ?? this.recorded(username, ip, await check(username, password))
  }

  private recorded<T>(username: string, ip: string, user: T | null): LoginOutcome<T> {
    if (!user) {
      this.throttle.recordFailure(username, ip)
      return INVALID
    }
    this.throttle.recordSuccess(username, ip)
    return { ok: true, user }
  }

  private throttled(username: string, ip: string): Extract<LoginOutcome, { reason: 'throttled' }> | null {
    const decision = this.throttle.check(username, ip)
    return decision.allowed ? null : { ok: false, reason: 'throttled', retryAfter: decision.retryAfter }
  }
}
