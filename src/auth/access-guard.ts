/**
 * Decides whether a request may call a route, independent of HTTP: every authenticator of the app
 * looks for its credential (authenticator.ts), then the route's access level (route-access.ts)
 * judges the principal found. Callers map a refusal to a status and a challenge, which differ per
 * route (RFC 6750 §3.1): auth-plugin.ts for most routes, media-routes.ts for nginx's subrequest.
 */
import type { TokenType } from '../tokens/tokens'
import type { AuthAttempt, Authenticator, AuthRefusal, CredentialRequest, Principal } from './authenticator'
import type { BearerAuthenticator } from './bearer-authenticator'
import { ACCESS_RULES, roleAtLeast, type RouteAccess } from './route-access'

export type { Principal } from './authenticator'

export type AccessOutcome = { ok: true; principal: Principal } | ({ ok: false } & AuthRefusal)

/** A rule that can refuse a principal on any route, whatever its credential: an expired space. */
export type PrincipalCheck = (principal: Principal) => AuthRefusal | null

const MISSING: AccessOutcome = { ok: false, failure: 'missing', reason: 'no credentials' }
const TWO_CREDENTIALS: AccessOutcome = { ok: false, failure: 'malformed', reason: 'credentials of two kinds' }

export class AccessGuard {
  private readonly authenticators: readonly Authenticator[]

  constructor(
    private readonly bearer: BearerAuthenticator,
    others: readonly Authenticator[] = [],
    private readonly checks: readonly PrincipalCheck[] = [],
  ) {
    this.authenticators = [bearer, ...others]
  }

  check(request: CredentialRequest, access: RouteAccess): AccessOutcome | Promise<AccessOutcome> {
    let found: AuthAttempt | Promise<AuthAttempt> | null = null
    for (const authenticator of this.authenticators) {
      const attempt = authenticator.authenticate(request)
      if (!(attempt instanceof Promise) && attempt.kind === 'absent') continue
      if (found !== null) return TWO_CREDENTIALS
      found = attempt
    }
    if (found === null) return this.missing(request, access)
    return found instanceof Promise ? found.then((attempt) => this.judge(attempt, access)) : this.judge(found, access)
  }

  /**
   * Our own token only, at once: streams ('token' access) and the MikoPBX core-compatible routes,
   * which take nothing else. Other credentials in the request are not looked at.
   */
  checkOwnToken(request: CredentialRequest, type: TokenType): AccessOutcome {
    const attempt = this.bearer.ownToken(request, type)
    return attempt.kind === 'absent' ? this.missing(request, 'token') : this.judgeToken(attempt)
  }

  /** For a token already in hand: streams re-check their own every second. */
  checkToken(text: string, type: TokenType): AccessOutcome {
    return this.judgeToken(this.bearer.checkToken(text, type))
  }

  /** Only a credential kind the route takes may offer its challenge: no Digest challenge on `auth/refresh`. */
  private missing(request: CredentialRequest, access: RouteAccess): AccessOutcome {
    const accepted = ACCESS_RULES[access].credentials
    for (const authenticator of this.authenticators) {
      if (!authenticator.kinds.some((kind) => accepted.includes(kind))) continue
      const refusal = authenticator.challengeWhenMissing?.(request)
      if (refusal) return { ok: false, ...refusal }
    }
    return MISSING
  }

  private judge(attempt: AuthAttempt, access: RouteAccess): AccessOutcome {
    if (attempt.kind === 'absent') return MISSING
    if (attempt.kind === 'failed') return { ok: false, failure: attempt.failure, reason: attempt.reason, challenges: attempt.challenges, retryAfter: attempt.retryAfter }
    const { principal } = attempt
    const rule = ACCESS_RULES[access]
    if (!rule.credentials.includes(principal.via)) {
      // A refresh token where an access token belongs, or the other way round, keeps the legacy texts.
      const tokenMixup = principal.via === 'refresh_token' || (principal.via === 'access_token' && rule.credentials.includes('refresh_token'))
      return { ok: false, failure: tokenMixup ? 'wrong_type' : 'invalid', reason: `${principal.via} not accepted here` }
    }
    const refused = this.refusedByChecks(principal)
    if (refused) return refused
    if (rule.role && !roleAtLeast(principal.user.role, rule.role)) return { ok: false, failure: 'forbidden', reason: `${rule.role} role required` }
    return { ok: true, principal }
  }

  private refusedByChecks(principal: Principal): AccessOutcome | null {
    for (const check of this.checks) {
      const refusal = check(principal)
      if (refusal) return { ok: false, ...refusal }
    }
    return null
  }

  /** Streams and the core-compatible routes are refused by the checks too: an expired space closes its users' streams. */
  private judgeToken(attempt: AuthAttempt): AccessOutcome {
    if (attempt.kind === 'ok') return this.refusedByChecks(attempt.principal) ?? { ok: true, principal: attempt.principal }
    if (attempt.kind === 'failed') return { ok: false, failure: attempt.failure, reason: attempt.reason }
    return MISSING
  }
}
