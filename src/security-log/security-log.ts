/**
 * The security log (SPEC §8): one JSON object per line. JSON string escaping turns control characters
 * and newlines into escapes, so an event is always exactly one line. Callers pass only fields listed in
 * SecurityEvent; there is no field for a password, token or key, so none can be logged by accident.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Clock } from '../clock'

export type SecurityEventName =
  | 'AUTH_SUCCESS'
  | 'AUTH_FAILED'
  | 'LOGOUT'
  | 'TOKEN_REFRESH'
  | 'TOKEN_REUSE'
  | 'LOGIN_THROTTLED'
  | 'SESSION_REVOKED'
  | 'MEDIA_ACCESS_DENIED'
  | 'KEY_GENERATED'
  | 'STARTUP'
  | 'SHUTDOWN'

export interface SecurityEvent {
  event: SecurityEventName
  user?: string
  ip?: string
  method?: 'password' | 'refresh' | 'access_token'
  reason?: string
  sid?: string
  jti?: string
  ua?: string | null
  version?: string
}

const MAX_USER = 64
const MAX_UA = 200
const REPORT_INTERVAL_MS = 60_000

export interface SecurityLogSink {
  record(event: SecurityEvent): void
}

export class SecurityLog implements SecurityLogSink {
  private fd: number | null = null
  private lastReport = -Infinity

  constructor(
    readonly path: string,
    private readonly clock: Clock,
    private readonly reportError: (message: string) => void = (message) => console.error(message),
  ) {
    this.open()
  }

  record(event: SecurityEvent): void {
    const line = `${JSON.stringify(this.sanitise(event))}\n`
    try {
      if (this.fd === null) this.open()
      if (this.fd !== null) writeSync(this.fd, line)
    } catch (error) {
      this.fail(error)
    }
  }

  /** For logrotate: SIGHUP → reopen the path, which may now be a new file. */
  reopen(): void {
    this.close()
    this.open()
  }

  close(): void {
    if (this.fd === null) return
    try {
      closeSync(this.fd)
    } catch {}
    this.fd = null
  }

  private open(): void {
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o750 })
      this.fd = openSync(this.path, 'a', 0o640)
    } catch (error) {
      this.fd = null
      this.fail(error)
    }
  }

  /** Keeps serving when the log can't be written, and says so at most once a minute. */
  private fail(error: unknown): void {
    const now = this.clock.now()
    if (now - this.lastReport < REPORT_INTERVAL_MS) return
    this.lastReport = now
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    this.reportError(`security log ${this.path} is not writable (${code}); events are being dropped`)
  }

  private sanitise(event: SecurityEvent): Record<string, unknown> {
    const { user, ua, ...rest } = event
    return {
      ts: new Date(this.clock.now()).toISOString(),
      ...rest,
      ...(user !== undefined && { user: user.slice(0, MAX_USER) }),
      ...(ua != null && { ua: ua.slice(0, MAX_UA) }),
    }
  }
}
