/**
 * One kind of credential, checked without HTTP framework types (README "Who may call what"). The
 * access guard (access-guard.ts) asks every authenticator of the app; at most one may find its
 * credential in a request, two are a malformed request. The route's access level then decides
 * whether the principal found is enough.
 */
import type { DirectoryUser } from '../directory/directory'
import type { ClientIp } from '../http/client-ip'
import type { VerifiedToken } from '../tokens/tokens'

export const CREDENTIAL_KINDS = ['access_token', 'refresh_token', 'api_key', 'digest', 'external_jwt'] as const
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number]

/** What an authenticator may read of a request. */
export interface CredentialRequest {
  method: string
  /** The request target as the client sent it, path and query (RFC 9112 §3.2), e.g. Digest's `uri`. */
  target: string
  headers: Headers
  /**
   * The query string that may carry a bearer token: the request's own for streams, nginx's
   * `X-Original-URI` for check-media-access, null elsewhere (URLs end up in logs).
   */
  tokenQuery: string | null
  /** The client's address after trusted proxies (http/client-ip.ts); computed on first use. */
  clientIp(): string
  /** The same with its note, for the security log: fail2ban skips lines whose address is a proxy's. */
  client?(): ClientIp
}

export interface Principal {
  user: DirectoryUser
  via: CredentialKind
  /** Our own token, when `via` is `access_token` or `refresh_token`. */
  token?: VerifiedToken
  /** The credential as presented: streams keep it to re-check it while they stay open. Never log it. */
  credential: string
}

/**
 * Why a request is refused; auth-plugin.ts maps each to a status, an error and a challenge.
 * - missing: no credential at all; malformed: unreadable or in two places (400);
 * - invalid: wrong, expired, revoked or unknown (401); wrong_type: a token of the other type;
 * - forbidden: a valid credential whose user's role is below the route's (403);
 * - space_expired: the user's space has expired (403); throttled: too many failures (429);
 * - bad_request: a credential that contradicts the request, e.g. Digest's `uri` (400);
 * - unavailable: nothing can be decided now, the revocation copy is stale (503, README "Several nodes").
 */
export type AuthFailure = 'missing' | 'malformed' | 'invalid' | 'wrong_type' | 'forbidden' | 'space_expired' | 'throttled' | 'bad_request' | 'unavailable'

export interface AuthRefusal {
  failure: AuthFailure
  /** For the security log and close codes; never the credential itself. */
  reason: string
  /** `WWW-Authenticate` values to send instead of the Bearer challenge (Digest's two, RFC 7616 §3.3). */
  challenges?: readonly string[]
  /** Seconds, with `throttled` and `unavailable`. */
  retryAfter?: number
}

export type AuthAttempt = { kind: 'absent' } | { kind: 'ok'; principal: Principal } | ({ kind: 'failed' } & AuthRefusal)

export const ABSENT: AuthAttempt = { kind: 'absent' }

export interface Authenticator {
  readonly kinds: readonly CredentialKind[]
  /**
   * `absent` when the request carries no credential of this kind; never throws for bad input.
   * A promise only where the check can't be synchronous (an external issuer's token not yet in
   * its verified cache).
   */
  authenticate(request: CredentialRequest): AuthAttempt | Promise<AuthAttempt>
  /**
   * When no authenticator found a credential: challenges to offer instead of the bare Bearer one
   * (Digest, when a `From: sip:` header names the user), or null.
   */
  challengeWhenMissing?(request: CredentialRequest): AuthRefusal | null
}
