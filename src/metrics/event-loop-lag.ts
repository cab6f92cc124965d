/**
 * Event-loop lag (README "Metrics"): a timer due every `intervalMs` notes how late it fired. A loop
 * blocked by synchronous work (a long SQLite statement, a big JSON parse) shows as lag.
 */
const PROBE_INTERVAL_MS = 500

export class EventLoopLag {
  /** Seconds the latest probe fired after it was due. */
  lastSeconds = 0
  private due: number
  private timer: ReturnType<typeof setInterval> | null = null

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly intervalMs = PROBE_INTERVAL_MS,
  ) {
    this.due = now() + intervalMs
  }

  start(): this {
    this.due = this.now() + this.intervalMs
    this.timer = setInterval(() => this.fired(), this.intervalMs)
    this.timer.unref()
    return this
  }

  /** One probe: how late it is against when it was due, then when the next one is due. */
  fired(): void {
    const now = this.now()
    this.lastSeconds = Math.max(0, now - this.due) / 1000
    this.due = now + this.intervalMs
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }
}
