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
import type { LoginThrottle } from '../throttle/throttle-rule'

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
   * A directory that answers at once needs no slot: the throttle admits the attempt (counting those
   * in flight, throttle-rule.ts), so parallel guesses can't all pass before one is counted.
   */
  private async attemptNow(username: string, password: string, ip: string, check: (username: string, password: string) => DirectoryUser | null): Promise<LoginOutcome> {
    const outcome = await this.admitted(username, ip, async () => check(username, password))
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
    const onArrival = await this.throttle.check(username, ip)
    if (!onArrival.allowed) return throttledFor(onArrival.retryAfter)
    try {
      return await this.slots.run(() => this.checkInSlot(username, password, ip, check))
    } catch (error) {
      if (error instanceof LimiterFullError) return BUSY
      throw error
    }
  }

  /** In its slot, the attempt is admitted again: failures recorded while it waited count here. */
  private checkInSlot<T>(username: string, password: string, ip: string, check: CredentialCheck<T>): Promise<LoginOutcome<T>> {
    return this.admitted(username, ip, () => check(username, password))
  }

  /** Runs `check` only if the throttle admits the attempt, and tells it how the attempt ended. */
  private async admitted<T>(username: string, ip: string, check: () => Promise<T | null>): Promise<LoginOutcome<T>> {
    const admission = await this.throttle.begin(username, ip)
    if (!admission.allowed) return throttledFor(admission.retryAfter)
    let user: T | null
    try {
      user = await check()
    } catch (error) {
      // The directory failed (an outage): nothing was learnt about the password.
      await this.throttle.finish(username, ip, 'uncounted')
      throw error
    }
    await this.throttle.finish(username, ip, user ? 'success' : 'failure')
    return user ? { ok: true, user } : INVALID
  }
}

const throttledFor = (retryAfter: number) => ({ ok: false, reason: 'throttled', retryAfter }) as const
