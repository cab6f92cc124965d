/**
 * Sessions of the core API's cookie login (README "MikoPBX core-compatible API"): a random
 * 256-bit id in the `PHPSESSID` cookie, of which only a SHA-256 is kept, in memory. A session is
 * bound to the client address it logged in from, ends after `idleMs` without use, and at most
 * `max` exist: a new one pushes out the least recently used.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { Clock } from '../clock'

export const ADMIN_SESSION_DEFAULTS = { idleMs: 30 * 60_000, max: 100 } as const

/** base64url of 32 bytes. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/

interface AdminSession {
  admin: string
  ip: string
  lastUsed: number
}

export class AdminSessions {
  /** Hash of the id → session, least recently used first (Map keeps insertion order). */
  private readonly sessions = new Map<string, AdminSession>()

  constructor(
    private readonly clock: Clock,
    private readonly limits: { idleMs: number; max: number } = ADMIN_SESSION_DEFAULTS,
  ) {}

  /** A new session for `admin` from `ip`; the returned id goes only into the cookie. */
  start(admin: string, ip: string): string {
    const id = randomBytes(32).toString('base64url')
    this.dropExpired()
    while (this.sessions.size >= this.limits.max) this.sessions.delete(this.sessions.keys().next().value!)
    this.sessions.set(hashOf(id), { admin, ip, lastUsed: this.clock.now() })
    return id
  }

  /** The admin of a live session with this id from this address, else null; a use keeps it alive. */
  check(id: string, ip: string): string | null {
    if (!SESSION_ID.test(id)) return null
    const key = hashOf(id)
    const session = this.sessions.get(key)
    if (!session) return null
    const now = this.clock.now()
    if (now - session.lastUsed >= this.limits.idleMs) {
      this.sessions.delete(key)
      return null
    }
    if (session.ip !== ip) return null
    this.sessions.delete(key)
    this.sessions.set(key, { ...session, lastUsed: now })
    return session.admin
  }

  get size(): number {
    return this.sessions.size
  }

  private dropExpired(): void {
    const now = this.clock.now()
    for (const [key, session] of this.sessions) {
      // Least recently used first: the first live one ends the sweep.
      if (now - session.lastUsed < this.limits.idleMs) break
      this.sessions.delete(key)
    }
  }
}

const hashOf = (id: string): string => createHash('sha256').update(id).digest('hex')
