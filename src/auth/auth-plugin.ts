/**
 * The `auth` macro: `{ auth: 'access' }` or `{ auth: 'refresh' }` on a route resolves `principal`, or
 * answers with the legacy error text, the right status and an RFC 6750 challenge. It never throws.
 * Only streams (presence/presence-routes.ts) also take the token from the query string, as nchan
 * clients send it; other routes don't look there, since URLs end up in logs.
 */
import { Elysia } from 'elysia'
import { unixSeconds, type Clock } from '../clock'
import { ERRORS, errorBody, type ErrorBody, type ErrorKind } from '../http/errors'
import type { TokenType } from '../tokens/tokens'
import type { AccessGuard, AccessOutcome } from './access-guard'
import { bearerChallenge, type BearerErrorCode } from './challenge'
import { queryOf, type CredentialSources } from './credentials'

type Failure = Extract<AccessOutcome, { ok: false }>['failure']
type Denial = { kind: ErrorKind; challenge: BearerErrorCode | undefined }

/** The legacy module's texts differ between the refresh route and everything else. */
const DENIALS: Record<TokenType, Record<Failure, Denial>> = {
  access: {
    missing: { kind: ERRORS.tokenRequired, challenge: undefined },
    malformed: { kind: ERRORS.malformedCredentials, challenge: 'invalid_request' },
    invalid: { kind: ERRORS.unauthorized, challenge: 'invalid_token' },
    wrong_type: { kind: ERRORS.tokenTypeInvalid, challenge: 'insufficient_scope' },
  },
  refresh: {
    missing: { kind: ERRORS.refreshTokenInvalid, challenge: undefined },
    malformed: { kind: ERRORS.malformedCredentials, challenge: 'invalid_request' },
    invalid: { kind: ERRORS.refreshTokenInvalid, challenge: 'invalid_token' },
    wrong_type: { kind: ERRORS.refreshTokenRequired, challenge: 'insufficient_scope' },
  },
}

export function authPlugin({ guard, clock }: { guard: AccessGuard; clock: Clock }) {
  return new Elysia({ name: 'auth' }).macro({
    auth: (type: TokenType) => ({
      resolve({ request, set, status }) {
        const outcome = guard.check(credentialSources(request, false), type)
        if (outcome.ok) return { principal: outcome.principal }
        const refusal = refusalOf(type, outcome.failure, clock)
        set.headers['www-authenticate'] = refusal.challenge
        return status(refusal.status as 401, refusal.body)
      },
    }),
  })
}

/** The answer to a request whose token doesn't grant access: status, RFC 6750 challenge, envelope. */
export function refusalOf(type: TokenType, failure: Failure, clock: Clock): { status: number; challenge: string; body: ErrorBody } {
  const { kind, challenge } = DENIALS[type][failure]
  return { status: kind.status, challenge: bearerChallenge(challenge), body: errorBody(kind, unixSeconds(clock)) }
}

/** Where a request may carry its bearer token; the query string only for streams. */
export function credentialSources(request: Request, withQuery: boolean): CredentialSources {
  const headers = request.headers
  return { authorization: headers.get('authorization'), cookie: headers.get('cookie'), query: withQuery ? queryOf(request.url) : null }
}
