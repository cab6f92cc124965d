/**
 * At most `limit` tasks at once; the rest wait in FIFO order, up to `maxWaiting` of them. Keeps
 * argon2 from starving the event loop's peers, and a login storm from queueing without end.
 */
export class LimiterFullError extends Error {
  override name = 'LimiterFullError'
}

export class ConcurrencyLimiter {
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor(
    private readonly limit: number,
    private readonly maxWaiting = Number.POSITIVE_INFINITY,
  ) {}

  /** `task` learns whether it had to wait for its turn (anything may have changed meanwhile). */
  async run<T>(task: (waited: boolean) => Promise<T>): Promise<T> {
    const waited = this.active >= this.limit
    if (!waited) this.active++
    else if (this.waiting.length >= this.maxWaiting) throw new LimiterFullError('too many tasks waiting')
    else await new Promise<void>((resolve) => this.waiting.push(resolve))
    try {
      return await task(waited)
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.active--
    }
  }
}
