/**
 * Session lifecycle (README "Sessions and refresh rotation"): login starts one, refresh rotates its
 * refresh token with reuse detection (RFC 9700 §4.14.2), logout ends it. Every change is one
 * IMMEDIATE transaction, and the in-memory revocation mirror is updated only after the commit.
 */
import { randomBytes } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import type { DirectoryUser } from '../directory/directory'
import type { Revocations } from '../tokens/revocations'
import type { TokenService, TokenSubject, VerifiedToken } from '../tokens/tokens'
import { hashTokenId, type SessionRow, type SessionStore } from './session-store'

export const ROTATION_MODES = ['compatible', 'strict', 'off'] as const
/**
 * compatible: rotate; the immediate predecessor of an unused successor gets that same successor
 *             again (lost responses, apps that never adopt the new token); anything older is reuse.
 * strict:     rotate; any second use of a refresh token is reuse.
 * off:        the legacy module's behaviour: the refresh token is never replaced.
 */
export type RotationMode = (typeof ROTATION_MODES)[number]

export interface ClientInfo {
  ip: string
  ua: string
}

export interface StartedSession {
  sid: string
  accessToken: string
  refreshToken: string
}

export type RefreshOutcome =
  | { ok: true; sid: string; accessToken: string; refreshToken?: string }
  | { ok: false; reason: 'reuse' | 'unknown_session' | 'revoked_session'; sid?: string }

export class SessionService {
  constructor(
    private readonly store: SessionStore,
    private readonly tokens: TokenService,
    private readonly revocations: Revocations,
    private readonly clock: Clock,
    private readonly rotation: RotationMode,
  ) {}

  /** Resolves once the session is committed, in a batch with the logins that arrived alongside. */
  async start(user: DirectoryUser, client: ClientInfo): Promise<StartedSession> {
    const sid = sessionId(this.clock)
    const refresh = this.tokens.refreshClaimsNow(sid)
    await this.store.createDurably({
      id: sid,
      username: user.username,
      role: user.role,
      user_id: user.id,
      created_at: refresh.iat,
      ip: client.ip,
      user_agent: client.ua,
      currentJti: refresh.jti,
      current_iat: refresh.iat,
      current_exp: refresh.exp,
      previous_hash: null,
    })
    return { sid, accessToken: this.tokens.mintAccess(user, sid), refreshToken: this.tokens.mintRefresh(user, refresh) }
  }

  refresh(token: VerifiedToken, user: DirectoryUser, client: ClientInfo): RefreshOutcome {
    const outcome = this.store.atomically(() => this.refreshInTransaction(token, user, client))
    if (!outcome.ok && outcome.reason === 'reuse') this.mirrorRevocation(outcome.sid!)
    return outcome
  }

  /** Logout: the access token's id and its whole session; a legacy token cuts off the user's legacy tokens. */
  logout(token: VerifiedToken): void {
    const now = unixSeconds(this.clock)
    this.store.atomically(() => {
      if (token.jti) this.revocations.writeTokenIdRevocation(token.jti, token.expiresAt)
      if (token.sid) this.store.revoke(token.sid, 'logout', now)
      else this.revocations.writeLegacyCutoff(token.username, now)
    })
    // Memory follows the commit: had it failed, the token would still work and a retry could succeed.
    if (token.jti) this.revocations.noteTokenIdRevoked(token.jti, token.expiresAt)
    if (token.sid) this.mirrorRevocation(token.sid)
    else this.revocations.noteLegacyCutoff(token.username, now)
  }

  /** Ends one of `username`'s sessions; false if it has no such active session. */
  end(username: string, sid: string, reason: string): boolean {
    const session = this.store.get(sid)
    if (!session || session.username !== username) return false
    const ended = this.store.atomically(() => this.store.revoke(sid, reason, unixSeconds(this.clock)))
    if (ended) this.mirrorRevocation(sid)
    return ended
  }

  /** Logout-all and admin revoke: every session of the user, and every legacy token issued so far. */
  endAll(username: string, reason: string): number {
    return endAllSessions(this.store, this.revocations, username, reason, unixSeconds(this.clock))
  }

  list(username: string): SessionRow[] {
    return this.store.activeForUser(username, unixSeconds(this.clock))
  }

  private refreshInTransaction(token: VerifiedToken, user: DirectoryUser, client: ClientInfo): RefreshOutcome {
    const now = unixSeconds(this.clock)
    const jti = token.jti ?? this.tokens.legacyTokenId(token)
    const session = this.store.get(token.sid ?? jti) ?? (token.jti ? null : this.trackLegacy(token, jti, user, client, now))
    if (!session || session.username !== token.username) return { ok: false, reason: 'unknown_session' }
    if (session.revoked_at !== null) return { ok: false, reason: 'revoked_session', sid: session.id }

    const sid = session.id
    // The refresh token is re-minted from the session's own record, so a repeat is byte-identical.
    const subject: TokenSubject = { id: session.user_id, username: session.username, role: session.role }
    const presented = hashTokenId(jti)
    const accessToken = () => this.tokens.mintAccess(user, sid)

    if (presented === session.current_hash) {
      if (this.rotation === 'off') {
        this.store.touch(sid, now, client.ip, client.ua)
        return { ok: true, sid, accessToken: accessToken() }
      }
      const next = this.tokens.refreshClaimsNow(sid, this.tokens.successorId(jti, token.kid))
      this.store.rotate(sid, { currentJti: jti, nextJti: next.jti, iat: next.iat, exp: next.exp, now, ...client })
      return { ok: true, sid, accessToken: accessToken(), refreshToken: this.tokens.mintRefresh(subject, next) }
    }

    const successor = this.tokens.successorId(jti, token.kid)
    if (this.rotation === 'compatible' && presented === session.previous_hash && hashTokenId(successor) === session.current_hash) {
      // Its successor is still unused (using it would have made it the predecessor): hand it out again.
      this.store.touch(sid, now, client.ip, client.ua)
      const again = { sid, jti: successor, iat: session.current_iat, exp: session.current_exp }
      return { ok: true, sid, accessToken: accessToken(), refreshToken: this.tokens.mintRefresh(subject, again) }
    }

    this.store.revoke(sid, 'reuse', now)
    return { ok: false, reason: 'reuse', sid }
  }

  /** A legacy refresh token seen for the first time becomes the current token of a new session. */
  private trackLegacy(token: VerifiedToken, jti: string, user: DirectoryUser, client: ClientInfo, now: number): SessionRow {
    this.store.create({
      id: jti,
      username: user.username,
      role: user.role,
      user_id: user.id,
      created_at: now,
      ip: client.ip,
      user_agent: client.ua,
      currentJti: jti,
      current_iat: token.issuedAt,
      current_exp: token.expiresAt,
      previous_hash: null,
    })
    return this.store.get(jti)!
  }

  private mirrorRevocation(sid: string): void {
    const session = this.store.get(sid)
    if (session?.revoked_at != null) this.revocations.noteSessionRevoked(sid, session.current_exp)
  }
}

/**
 * 22 base64url characters, like other ids: 48 bits of the clock in milliseconds, then 80 random
 * bits. Ids that start alike land in the same pages of the sessions table's index, so a batch of
 * new sessions writes a few pages instead of one random page each (about 3 times faster).
 * The id names a session and grants nothing; the random part keeps ids unique.
 */
export function sessionId(clock: Clock): string {
  const bytes = randomBytes(16)
  bytes.writeUIntBE(clock.now(), 0, 6)
  return bytes.toString('base64url')
}

/** Also used by the `sessions revoke` CLI, which has no signing key and needs none for this. */
export function endAllSessions(store: SessionStore, revocations: Revocations, username: string, reason: string, now: number): number {
  const ended = store.atomically(() => {
    revocations.writeLegacyCutoff(username, now)
    return store.activeForUser(username, now).filter((session) => store.revoke(session.id, reason, now))
  })
  revocations.noteLegacyCutoff(username, now)
  for (const session of ended) revocations.noteSessionRevoked(session.id, session.current_exp)
  return ended.length
}
