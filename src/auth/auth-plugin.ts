/**
 * The `auth` macro: `{ auth: 'access' }` or `{ auth: 'refresh' }` on a route resolves `principal`, or
 * answers with the legacy error text, the right status and an RFC 6750 challenge. It never throws.
 * `{ auth: 'stream' }` is an access token that may also come in the query string, as nchan
 * clients send it (README "Presence: publish and subscribe"); other routes don't look there, since
 * URLs end up in logs.
 */
import { Elysia } from 'elysia'
import { unixSeconds, type Clock } from '../clock'
import { ERRORS, errorBody, type ErrorKind } from '../http/errors'
import type { TokenType } from '../tokens/tokens'
import type { AccessGuard, AccessOutcome } from './access-guard'
import { bearerChallenge, type BearerErrorCode } from './challenge'
import { queryOf } from './credentials'

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

export type AuthMode = TokenType | 'stream'

export function authPlugin({ guard, clock }: { guard: AccessGuard; clock: Clock }) {
  return new Elysia({ name: 'auth' }).macro({
    auth: (mode: AuthMode) => ({
      resolve({ request, set, status }) {
        const headers = request.headers
        const type = mode === 'stream' ? 'access' : mode
        const query = mode === 'stream' ? queryOf(request.url) : null
        const outcome = guard.check({ authorization: headers.get('authorization'), cookie: headers.get('cookie'), query }, type)
        if (outcome.ok) return { principal: outcome.principal }
        const { kind, challenge } = DENIALS[type][outcome.failure]
        set.headers['www-authenticate'] = bearerChallenge(challenge)
        return status(kind.status as 401, errorBody(kind, unixSeconds(clock)))
      },
    }),
  })
}
