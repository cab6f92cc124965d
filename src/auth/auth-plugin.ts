/**
 * The `auth` macro: every route declares who may call it, `{ auth: 'public' | 'refresh' | 'token' |
 * 'user' | 'admin' | 'superadmin' }` (route-access.ts). A protected route resolves `principal`, or
 * answers with the error envelope, the right status and challenge. It never throws. The
 * declaration also lands in the route's OpenAPI `detail` as `x-access`, with those refusals'
 * statuses (README "OpenAPI").
 * Only streams (presence/presence-routes.ts) also take a token from the query string, as nchan
 * clients send it; other routes don't look there, since URLs end up in logs.
 */
import { Elysia } from 'elysia'
import { unixSeconds, type Clock } from '../clock'
import type { ClientIp, ClientIpOf } from '../http/client-ip'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, errorBody, type ErrorBody, type ErrorKind } from '../http/errors'
import { jsonResponses } from '../openapi/responses'
import type { AccessGuard, AccessOutcome } from './access-guard'
import type { AuthFailure, CredentialRequest } from './authenticator'
import { bearerChallenge, type BearerErrorCode } from './challenge'
import { queryOf } from './credentials'
import { accessDetail, type RouteAccess } from './route-access'

type Denial = { kind: ErrorKind; challenge: BearerErrorCode | undefined | null }

/**
 * The legacy module's texts differ between the refresh route and everything else. A null
 * challenge: no `WWW-Authenticate` (not an authentication failure, RFC 9110 §15.5.4).
 */
const DENIALS: Record<'access' | 'refresh', Record<AuthFailure, Denial>> = {
  access: {
    missing: { kind: ERRORS.tokenRequired, challenge: undefined },
    malformed: { kind: ERRORS.malformedCredentials, challenge: 'invalid_request' },
    invalid: { kind: ERRORS.unauthorized, challenge: 'invalid_token' },
    wrong_type: { kind: ERRORS.tokenTypeInvalid, challenge: 'insufficient_scope' },
    forbidden: { kind: ERRORS.adminRequired, challenge: 'insufficient_scope' },
    space_expired: { kind: ERRORS.spaceExpired, challenge: null },
    throttled: { kind: ERRORS.loginThrottled, challenge: null },
    bad_request: { kind: ERRORS.malformedCredentials, challenge: 'invalid_request' },
    unavailable: { kind: ERRORS.storeUnavailable, challenge: null },
  },
  refresh: {
    missing: { kind: ERRORS.refreshTokenInvalid, challenge: undefined },
    malformed: { kind: ERRORS.malformedCredentials, challenge: 'invalid_request' },
    invalid: { kind: ERRORS.refreshTokenInvalid, challenge: 'invalid_token' },
    wrong_type: { kind: ERRORS.refreshTokenRequired, challenge: 'insufficient_scope' },
    forbidden: { kind: ERRORS.adminRequired, challenge: 'insufficient_scope' },
    space_expired: { kind: ERRORS.spaceExpired, challenge: null },
    throttled: { kind: ERRORS.loginThrottled, challenge: null },
    bad_request: { kind: ERRORS.malformedCredentials, challenge: 'invalid_request' },
    unavailable: { kind: ERRORS.storeUnavailable, challenge: null },
  },
}

export interface Refusal {
  status: number
  /** `WWW-Authenticate` values, in order; empty for refusals that aren't about authentication. */
  challenges: readonly string[]
  retryAfter?: number
  body: ErrorBody
}

export function authPlugin({ guard, clock, clientIpOf }: { guard: AccessGuard; clock: Clock; clientIpOf: ClientIpOf }) {
  return new Elysia({ name: 'auth' }).macro({
    auth: (access: RouteAccess) => ({
      detail: {
        ...accessDetail(access),
        ...(access !== 'public' && { responses: jsonResponses({ 400: ErrorEnvelope, 401: ErrorEnvelope, 403: ErrorEnvelope, 429: ErrorEnvelope }) }),
      } as Record<string, unknown>,
      ...(access !== 'public' && {
        async resolve({ request, set, status }) {
          const checked = guard.check(credentialRequest(request, clientIpOf, null), access)
          const outcome = checked instanceof Promise ? await checked : checked
          if (outcome.ok) return { principal: outcome.principal }
          const refusal = refusalOf(access, outcome, clock)
          applyRefusalHeaders(set.headers, refusal)
          return status(refusal.status as 401, refusal.body)
        },
      }),
    }),
  })
}

export type AuthPlugin = ReturnType<typeof authPlugin>

/** The answer to a request refused access: status, challenges, envelope. */
export function refusalOf(access: RouteAccess, outcome: Extract<AccessOutcome, { ok: false }>, clock: Clock): Refusal {
  const { kind, challenge } = DENIALS[access === 'refresh' ? 'refresh' : 'access'][outcome.failure]
  const challenges = outcome.challenges ?? (challenge === null ? [] : [bearerChallenge(challenge)])
  return { status: kind.status, challenges, retryAfter: outcome.retryAfter, body: errorBody(kind, unixSeconds(clock)) }
}

/** Several challenges go out as one header, comma-joined, which RFC 9110 §11.6.1 allows. */
export function applyRefusalHeaders(headers: Record<string, string | number>, refusal: Refusal): void {
  if (refusal.challenges.length > 0) headers['www-authenticate'] = refusal.challenges.join(', ')
  if (refusal.retryAfter !== undefined) headers['retry-after'] = String(refusal.retryAfter)
}

/** What authenticators see of a request; `tokenQuery` only where a route reads tokens from a URL. */
export function credentialRequest(request: Request, clientIpOf: ClientIpOf, tokenQuery: string | null): CredentialRequest {
  let client: ClientIp | undefined
  return {
    method: request.method,
    target: requestTarget(request.url),
    headers: request.headers,
    tokenQuery,
    clientIp: () => (client ??= clientIpOf(request)).ip,
    client: () => (client ??= clientIpOf(request)),
  }
}

/** Streams take the token from their own query string too (nchan clients send it there). */
export function streamCredentialRequest(request: Request, clientIpOf: ClientIpOf): CredentialRequest {
  return credentialRequest(request, clientIpOf, queryOf(request.url))
}

/** Path and query of an absolute URL, as the client's request line had it. */
function requestTarget(url: string): string {
  const start = url.indexOf('/', url.indexOf('//') + 2)
  return start === -1 ? '/' : url.slice(start)
}
