/**
 * The security log (README "Security notes and decisions"): one JSON object per line. JSON string
 * escaping turns control characters and newlines into escapes, so an event is always exactly one
 * line. Callers pass only fields listed in SecurityEvent; there is no field for a password, token
 * or key, so none can be logged by accident.
 */
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Clock } from '../clock'

export const SECURITY_EVENTS = [
  'AUTH_SUCCESS',
  'AUTH_FAILED',
  'LOGOUT',
  'TOKEN_REFRESH',
  'TOKEN_REUSE',
  'LOGIN_THROTTLED',
  'SESSION_REVOKED',
  'MEDIA_ACCESS_DENIED',
  'KEY_GENERATED',
  'KEY_ROTATED',
  'STARTUP',
  'SHUTDOWN',
  'USER_ADDED',
  'USER_UPDATED',
  'USER_PASSWORD_CHANGED',
  'USER_DISABLED',
  'USER_ENABLED',
  'USER_REMOVED',
  'API_KEY_CREATED',
  'API_KEY_REVOKED',
  'USER_SPACE_CHANGED',
  'SPACE_ADDED',
  'SPACE_EXPIRY_CHANGED',
  'SPACE_REMOVED',
] as const

export type SecurityEventName = (typeof SECURITY_EVENTS)[number]

export interface SecurityEvent {
  event: SecurityEventName
  user?: string
  ip?: string
  /** Why `ip` is the peer although a trusted proxy sent X-Real-IP (README "Security notes and decisions"). */
  ipNote?: string
  /** `admin_password`: the core API's admin login (README "MikoPBX core-compatible API"); `digest`: README "HTTP Digest". */
  method?: 'password' | 'refresh' | 'access_token' | 'admin_password' | 'digest'
  reason?: string
  sid?: string
  jti?: string
  ua?: string | null
  version?: string
  /** STARTUP: the user directory in use and the file it reads (README "Running on MikoPBX"). */
  directory?: string
  /** Admin API and API-key actions over HTTP: who acted (README "Admin API", "API keys"); `user` is the one acted on. */
  actor?: string
  /** Operator commands: the Unix user who ran the command, and who ran sudo to become them. */
  operator?: string
  sudo_user?: string
  /** API key events: the key's id, never the key. */
  key_id?: number
}

/**
 * Events a client can cause at request rate. Identical ones (same event, address, user) within a
 * window are written once; the next line written for them says how many were left out. Every
 * other event, AUTH_FAILED included (fail2ban counts it), is written each time.
 */
const COALESCED = new Set<SecurityEventName>(['MEDIA_ACCESS_DENIED', 'LOGIN_THROTTLED'])
const COALESCE_WINDOW_MS = 10_000
const MAX_COALESCE_KEYS = 10_000

const MAX_USER = 64
const MAX_UA = 200
const REPORT_INTERVAL_MS = 60_000

export interface SecurityLogSink {
  record(event: SecurityEvent): void
}

export interface SecurityLogLimits {
  /** Rotate before the file would grow past this. */
  maxBytes: number
  /** Rotated files kept: security.log.1 … security.log.<keep>. */
  keep: number
}

export const DEFAULT_LOG_LIMITS: SecurityLogLimits = { maxBytes: 10 * 1024 * 1024, keep: 5 }

export class SecurityLog implements SecurityLogSink {
  private fd: number | null = null
  private size = 0
  private lastReport = -Infinity
  /**
   * Lines recorded in this turn of the event loop, written together in one microtask. A route that
   * records an event and then answers is answered after that microtask (the queue is FIFO), so the
   * line is in the file before the client sees the response; a burst of logins costs one write.
   */
  private pending: string[] = []
  /** Coalescing key → end of its window and the events left out since its last line. */
  private readonly windows = new Map<string, { until: number; omitted: number }>()

  constructor(
    readonly path: string,
    private readonly clock: Clock,
    private readonly limits: SecurityLogLimits = DEFAULT_LOG_LIMITS,
    private readonly reportError: (message: string) => void = (message) => console.error(message),
  ) {
    this.open()
  }

  record(event: SecurityEvent): void {
    const repeated = COALESCED.has(event.event) ? this.coalesce(event) : 0
    if (repeated < 0) return
    const line = `${JSON.stringify({ ...this.sanitise(event), ...(repeated > 0 && { repeated }) })}\n`
    if (this.pending.push(line) === 1) queueMicrotask(this.flush)
  }

  /** Writes what this turn recorded; the size cap may rotate between lines. */
  readonly flush = (): void => {
    if (this.pending.length === 0) return
    const lines = this.pending
    this.pending = []
    try {
      if (this.fd === null) this.open()
      if (this.fd === null) return
      let chunk = ''
      let chunkBytes = 0
      for (const line of lines) {
        const bytes = Buffer.byteLength(line)
        if (this.size + chunkBytes > 0 && this.size + chunkBytes + bytes > this.limits.maxBytes) {
          this.write(chunk, chunkBytes)
          chunk = ''
          chunkBytes = 0
          if (this.size > 0) this.rotate()
        }
        chunk += line
        chunkBytes += bytes
      }
      this.write(chunk, chunkBytes)
    } catch (error) {
      this.fail(error)
    }
  }

  private write(chunk: string, bytes: number): void {
    if (bytes === 0) return
    writeSync(this.fd!, chunk)
    this.size += bytes
  }

  /** -1: leave this one out; otherwise how many like it were left out before it. */
  private coalesce(event: SecurityEvent): number {
    const now = this.clock.now()
    const key = `${event.event}|${event.ip}|${event.user}`
    const window = this.windows.get(key)
    if (window && now < window.until) {
      window.omitted++
      return -1
    }
    if (this.windows.size >= MAX_COALESCE_KEYS) this.windows.clear()
    this.windows.set(key, { until: now + COALESCE_WINDOW_MS, omitted: 0 })
    return window?.omitted ?? 0
  }

  /** For logrotate: SIGHUP → reopen the path, which may now be a new file. */
  reopen(): void {
    this.close()
    this.open()
  }

  close(): void {
    this.flush()
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
      this.size = fstatSync(this.fd).size
    } catch (error) {
      this.fd = null
      this.fail(error)
    }
  }

  /** Our own size cap, on top of logrotate: security.log → .1 → … → .<keep>, the oldest dropped. */
  private rotate(): void {
    this.close()
    for (let index = this.limits.keep - 1; index >= 1; index--) {
      try {
        renameSync(`${this.path}.${index}`, `${this.path}.${index + 1}`)
      } catch {}
    }
    renameSync(this.path, `${this.path}.1`)
    this.open()
  }

  /** Keeps serving when the log can't be written, and says so at most once a minute. */
  private fail(error: unknown): void {
    const now = this.clock.now()
    if (now - this.lastReport < REPORT_INTERVAL_MS) return
    this.lastReport = now
    const code = (error as NodeJS.ErrnoException).code ?? 'error'
    this.reportError(`security log ${this.path} is not writable (${code}); events are being dropped`)
  }

  /**
   * A fixed field order: `ip` right after `event`, before any client-controlled text, so the
   * fail2ban filter can anchor on it (systemd/fail2ban/).
   */
  private sanitise(event: SecurityEvent): Record<string, unknown> {
    return {
      ts: new Date(this.clock.now()).toISOString(),
      event: event.event,
      ip: event.ip,
      ip_note: event.ipNote,
      user: event.user?.slice(0, MAX_USER),
      method: event.method,
      reason: event.reason,
      sid: event.sid,
      jti: event.jti,
      key_id: event.key_id,
      ua: event.ua?.slice(0, MAX_UA) || undefined,
      version: event.version,
      directory: event.directory,
      actor: event.actor?.slice(0, MAX_USER),
      operator: event.operator,
      sudo_user: event.sudo_user,
    }
  }
}
