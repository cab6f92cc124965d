/**
 * Where sessions live (README "Sessions and refresh rotation", "Several nodes"): SQLite on one
 * node (sqlite-session-records.ts), Redis across several (redis-session-records.ts). Every method
 * is one atomic step of the store, and every revocation it makes reaches the in-memory mirror
 * (tokens/revocations.ts) of this node at once and, with Redis, of every node shortly after.
 * The rotation rule itself is decideRefresh below: SQLite runs it in a transaction, Redis in a
 * Lua script that must agree with it (test/unit/session-records.test.ts runs both).
 */
import { createHash } from 'node:crypto'
import type { Role } from '../directory/directory'

export const ROTATION_MODES = ['compatible', 'strict', 'off'] as const
/**
 * compatible: rotate; the immediate predecessor of an unused successor gets that same successor
 *             again (lost responses, apps that never adopt the new token); anything older is reuse.
 * strict:     rotate; any second use of a refresh token is reuse.
 * off:        the legacy module's behaviour: the refresh token is never replaced.
 */
export type RotationMode = (typeof ROTATION_MODES)[number]

export interface SessionRow {
  id: string
  username: string
  role: Role
  user_id: number
  created_at: number
  last_used_at: number
  ip: string
  user_agent: string
  current_hash: string
  current_iat: number
  current_exp: number
  previous_hash: string | null
  revoked_at: number | null
  revoke_reason: string | null
}

/** A new session; its current refresh token by hash only. */
export type NewSession = Pick<
  SessionRow,
  'id' | 'username' | 'role' | 'user_id' | 'created_at' | 'ip' | 'user_agent' | 'current_hash' | 'current_iat' | 'current_exp' | 'previous_hash'
>

/** Refresh token ids are stored as SHA-256 hashes: a copy of the store yields no usable id. */
export const hashTokenId = (jti: string): string => createHash('sha256').update(jti).digest('base64url')

/** One refresh, everything precomputed by the caller so the store only compares and swaps. */
export interface RefreshRequest {
  /** The token's sid, or a legacy token's derived id. */
  sid: string
  /** The token's user: a session of someone else is unknown. */
  username: string
  /** hashTokenId of the presented token's id. */
  presentedHash: string
  /** hashTokenId of the id that follows it (TokenService.successorId): the next current token. */
  successorHash: string
  /** iat and exp of the successor if this refresh rotates. */
  nextIat: number
  nextExp: number
  mode: RotationMode
  now: number
  ip: string
  ua: string
  /** A legacy refresh token seen for the first time: the session to create before deciding. */
  legacy?: NewSession
}

/**
 * unknown:  no such session, or another user's.
 * revoked:  the session was revoked before.
 * rotated:  current := successor (nextIat, nextExp); previous := the presented one.
 * kept:     rotation off: the same refresh token stays.
 * repeated: compatible grace: the unused successor is handed out again with its stored iat and exp.
 * reuse:    a replayed token: the session is revoked now; `exp` is its current_exp, for the mirror.
 */
export type RefreshDecision =
  | { kind: 'unknown' }
  | { kind: 'revoked' }
  | { kind: 'rotated' }
  | { kind: 'kept' }
  | { kind: 'repeated'; iat: number; exp: number }
  | { kind: 'reuse'; exp: number }

/**
 * The rotation rule (RFC 9700 §4.14.2), for a session row read under the store's lock. Pure; the
 * store applies the change the decision implies (rotate, touch, or revoke with reason `reuse`).
 */
export function decideRefresh(row: SessionRow | null, request: RefreshRequest): RefreshDecision {
  if (!row || row.username !== request.username) return { kind: 'unknown' }
  if (row.revoked_at !== null) return { kind: 'revoked' }
  if (request.presentedHash === row.current_hash) return request.mode === 'off' ? { kind: 'kept' } : { kind: 'rotated' }
  // Its successor is still unused (using it would have made it the predecessor): hand it out again.
  if (request.mode === 'compatible' && request.presentedHash === row.previous_hash && request.successorHash === row.current_hash) {
    return { kind: 'repeated', iat: row.current_iat, exp: row.current_exp }
  }
  return { kind: 'reuse', exp: row.current_exp }
}

/** What a logout revokes: the access token's id and its session, or a legacy token's user's cut-off. */
export interface LogoutRequest {
  tokenId?: { jti: string; expiresAt: number }
  sid?: string
  /** A legacy token (no sid): every legacy token of this user issued at or before `now`. */
  legacyUser?: string
  now: number
}

/** A session a call revoked, with what the mirror needs to remember it. */
export interface EndedSession {
  id: string
  current_exp: number
}

export interface SessionRecords {
  /** Resolves once the session is durable (SQLite batches concurrent logins into one commit). */
  create(session: NewSession): Promise<void>
  /** The compare-and-swap of one refresh: exactly one of concurrent refreshes of a token rotates. */
  refresh(request: RefreshRequest): Promise<RefreshDecision>
  logout(request: LogoutRequest): Promise<void>
  /** Revokes one of `username`'s active sessions; null when it has no such session. */
  end(username: string, sid: string, reason: string, now: number): Promise<EndedSession | null>
  /** Revokes every active session of the user and cuts off its legacy tokens issued so far. */
  endAll(username: string, reason: string, now: number): Promise<EndedSession[]>
  get(sid: string): Promise<SessionRow | null>
  /** Neither revoked nor expired, oldest first. */
  activeForUser(username: string, now: number): Promise<SessionRow[]>
  /** Users with at least one active session (`secret rotate --revoke-all`). */
  activeUsernames(now: number): Promise<string[]>
  /** Counted when metrics are scraped (README "Metrics"). */
  countActive(now: number): Promise<number>
  /** Forgets sessions no token of which can still be valid (SESSION_REVOCATION_MARGIN after expiry). */
  purgeExpired(now: number): Promise<number>
}
