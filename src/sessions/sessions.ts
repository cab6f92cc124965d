/**
 * Session lifecycle (README "Sessions and refresh rotation"): login starts one, refresh rotates its
 * refresh token with reuse detection (RFC 9700 §4.14.2), logout ends it. The records (SQLite or
 * Redis, README "Several nodes") make each step atomic and keep the revocation copy current; this
 * class mints the tokens around them.
 */
import { randomBytes } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import type { DirectoryUser } from '../directory/directory'
import type { TokenService, VerifiedToken } from '../tokens/tokens'
import { hashTokenId, type RotationMode, type SessionRecords, type SessionRow } from './session-records'

export { ROTATION_MODES, type RotationMode } from './session-records'

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
    private readonly records: SessionRecords,
    private readonly tokens: TokenService,
    private readonly clock: Clock,
    private readonly rotation: RotationMode,
  ) {}

  /** Resolves once the session is stored (SQLite: in a batch with the logins that arrived alongside). */
  async start(user: DirectoryUser, client: ClientInfo): Promise<StartedSession> {
    const sid = sessionId(this.clock)
    const refresh = this.tokens.refreshClaimsNow(sid)
    await this.records.create({
      id: sid,
      username: user.username,
      role: user.role,
      user_id: user.id,
      created_at: refresh.iat,
      ip: client.ip,
      user_agent: client.ua,
      current_hash: hashTokenId(refresh.jti),
      current_iat: refresh.iat,
      current_exp: refresh.exp,
      previous_hash: null,
    })
    return { sid, accessToken: this.tokens.mintAccess(user, sid), refreshToken: this.tokens.mintRefresh(user, refresh) }
  }

  async refresh(token: VerifiedToken, user: DirectoryUser, client: ClientInfo): Promise<RefreshOutcome> {
    const now = unixSeconds(this.clock)
    const jti = token.jti ?? this.tokens.legacyTokenId(token)
    const sid = token.sid ?? jti
    const successor = this.tokens.successorId(jti, token.kid)
    const next = this.tokens.refreshClaimsNow(sid, successor)
    const decision = await this.records.refresh({
      sid,
      username: token.username,
      presentedHash: hashTokenId(jti),
      successorHash: hashTokenId(successor),
      nextIat: next.iat,
      nextExp: next.exp,
      mode: this.rotation,
      now,
      ...client,
      // A legacy refresh token seen for the first time becomes the current token of a new session.
      legacy: token.jti ? undefined : legacySession(token, jti, user, client, now),
    })
    const accessToken = () => this.tokens.mintAccess(user, sid)
    // Refresh tokens are minted deterministically, so a repeat of the same claims is byte-identical.
    switch (decision.kind) {
      case 'unknown':
        return { ok: false, reason: 'unknown_session' }
      case 'revoked':
        return { ok: false, reason: 'revoked_session', sid }
      case 'reuse':
        return { ok: false, reason: 'reuse', sid }
      case 'kept':
        return { ok: true, sid, accessToken: accessToken() }
      case 'rotated':
        return { ok: true, sid, accessToken: accessToken(), refreshToken: this.tokens.mintRefresh(user, next) }
      case 'repeated':
        return { ok: true, sid, accessToken: accessToken(), refreshToken: this.tokens.mintRefresh(user, { sid, jti: successor, iat: decision.iat, exp: decision.exp }) }
    }
  }

  /** Logout: the access token's id and its whole session; a legacy token cuts off the user's legacy tokens. */
  logout(token: VerifiedToken): Promise<void> {
    return this.records.logout({
      tokenId: token.jti ? { jti: token.jti, expiresAt: token.expiresAt } : undefined,
      sid: token.sid,
      legacyUser: token.sid ? undefined : token.username,
      now: unixSeconds(this.clock),
    })
  }

  /** Ends one of `username`'s sessions; false if it has no such active session. */
  async end(username: string, sid: string, reason: string): Promise<boolean> {
    return (await this.records.end(username, sid, reason, unixSeconds(this.clock))) !== null
  }

  /** Logout-all and admin revoke: every session of the user, and every legacy token issued so far. */
  async endAll(username: string, reason: string): Promise<number> {
    return (await this.records.endAll(username, reason, unixSeconds(this.clock))).length
  }

  list(username: string): Promise<SessionRow[]> {
    return this.records.activeForUser(username, unixSeconds(this.clock))
  }
}

function legacySession(token: VerifiedToken, jti: string, user: DirectoryUser, client: ClientInfo, now: number) {
  return {
    id: jti,
    username: user.username,
    role: user.role,
    user_id: user.id,
    created_at: now,
    ip: client.ip,
    user_agent: client.ua,
    current_hash: hashTokenId(jti),
    current_iat: token.issuedAt,
    current_exp: token.expiresAt,
    previous_hash: null,
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
