/**
 * sd_notify(3) for `Type=notify` (README "systemd readiness and watchdog"): READY=1 once serving,
 * STOPPING=1 at shutdown, and WATCHDOG=1 every half of WatchdogSec, but only while a self-check
 * passes: the event loop runs its timers on time and the store answers. A failed check sends no
 * ping and looks again soon; if it keeps failing, systemd's watchdog restarts the service.
 *
 * Without NOTIFY_SOCKET (no systemd, as on stock MikoPBX) nothing is opened or loaded.
 */
import type { AmiStatus } from '../pbx/ami/ami-link'
import type { StoreCheck } from './store-check'
import { openUnixDatagram, type DatagramSender } from './unix-datagram'

export interface NotifierTimers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

const realTimers: NotifierTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

/** Without a watchdog the STATUS line is still refreshed this often. */
export const STATUS_PERIOD_MS = 15_000
/** A check that failed is repeated after this fraction of the period, so a brief lock costs no restart. */
const RETRY_FRACTION = 8
/** The loop counts as stuck when a timer fires this late (at most half the period). */
export const LAG_LIMIT_MS = 1000

export interface NotifierOptions {
  env: Readonly<Record<string, string | undefined>>
  pid: number
  log: (line: string) => void
  /** The store's half of the self-check; `store-check.ts`. */
  checkStore: () => StoreCheck
  /** The AMI link's state for STATUS; absent when AMI is off. */
  ami?: () => AmiStatus
  open?: (address: string) => DatagramSender
  timers?: NotifierTimers
  /** Monotonic milliseconds, for the loop's lag. */
  monotonic?: () => number
}

export interface Notifier {
  /** Sends STOPPING=1 and stops the watchdog; later calls do nothing. */
  stopping(reason: string): void
}

const silent: Notifier = { stopping() {} }

/** Half of WATCHDOG_USEC in ms, or null when systemd expects no pings from this process. */
export function watchdogPeriodMs(env: NotifierOptions['env'], pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC)
  if (!Number.isSafeInteger(usec) || usec <= 0) return null
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== pid) return null
  return usec / 2000
}

/** Opens the notify socket and sends READY=1; call once the listener is up and the store open. */
export function startNotifier(options: NotifierOptions): Notifier {
  const address = options.env.NOTIFY_SOCKET
  if (!address) return silent
  if (!address.startsWith('/') && !address.startsWith('@')) {
    options.log(`systemd notify: NOTIFY_SOCKET=${address} is neither an absolute path nor @name; not notifying`)
    return silent
  }
  let socket: DatagramSender
  try {
    socket = (options.open ?? openUnixDatagram)(address)
  } catch (error) {
    options.log(`systemd notify: ${(error as Error).message}; not notifying (README "systemd readiness and watchdog")`)
    return silent
  }
  return new WatchdogLoop(options, address, socket)
}

class WatchdogLoop implements Notifier {
  private readonly timers: NotifierTimers
  private readonly monotonic: () => number
  private readonly watchdog: boolean
  private readonly periodMs: number
  private readonly lagLimitMs: number
  private timer: unknown = null
  private due = 0
  private lastStatus = ''
  private failureLogged = false
  private stopped = false

  constructor(
    private readonly options: NotifierOptions,
    private readonly address: string,
    private readonly socket: DatagramSender,
  ) {
    this.timers = options.timers ?? realTimers
    this.monotonic = options.monotonic ?? (() => performance.now())
    const watchdogMs = watchdogPeriodMs(options.env, options.pid)
    this.watchdog = watchdogMs !== null
    this.periodMs = watchdogMs ?? STATUS_PERIOD_MS
    this.lagLimitMs = Math.min(LAG_LIMIT_MS, this.periodMs / 2)
    const check = this.options.checkStore()
    this.send(['READY=1', this.status(check.ok ? this.serving(check.sessions) : this.failed(check.reason))])
    this.schedule(this.periodMs)
  }

  stopping(reason: string): void {
    if (this.stopped) return
    this.stopped = true
    this.timers.clearTimeout(this.timer)
    this.send(['STOPPING=1', `STATUS=stopping (${reason})`])
    this.socket.close()
  }

  private schedule(ms: number): void {
    this.due = this.monotonic() + ms
    this.timer = this.timers.setTimeout(() => this.tick(), ms)
  }

  private tick(): void {
    if (this.stopped) return
    const lag = this.monotonic() - this.due
    const check: StoreCheck = lag > this.lagLimitMs ? { ok: false, reason: `event loop ${Math.round(lag)} ms late` } : this.options.checkStore()
    if (check.ok) {
      this.send([...(this.watchdog ? ['WATCHDOG=1'] : []), this.status(this.serving(check.sessions))])
      this.schedule(this.periodMs)
    } else {
      this.send([this.status(this.failed(check.reason))])
      this.schedule(this.periodMs / RETRY_FRACTION)
    }
  }

  private serving(sessions: number): string {
    return `serving, ${sessions} ${sessions === 1 ? 'session' : 'sessions'}, AMI ${this.options.ami?.() ?? 'off'}`
  }

  private failed(reason: string): string {
    return `${this.watchdog ? 'watchdog ping withheld' : 'self-check failed'}: ${reason}`
  }

  /** `STATUS=…` when it changed since the last one sent, else nothing. */
  private status(text: string): string {
    if (text === this.lastStatus) return ''
    this.lastStatus = text
    return `STATUS=${text}`
  }

  private send(fields: string[]): void {
    const message = fields.filter(Boolean).join('\n')
    if (!message) return
    const error = this.socket.send(message)
    if (!error) return
    // Lost with it: the next message repeats the STATUS line.
    this.lastStatus = ''
    if (this.failureLogged) return
    this.failureLogged = true
    this.options.log(`systemd notify: cannot send to NOTIFY_SOCKET ${this.address} (${error}); serving anyway, later failures are not logged`)
  }
}
