/**
 * `check-media-access`, nginx's auth_request target (README "Recordings: check-media-access").
 * nginx turns any status other than 2xx, 401 and 403 into a 500 for the client, so this route
 * answers only 200, 401 or 403. The token may arrive in the `X-Original-URI` query, since the
 * subrequest itself has none. A tricky recording path is refused before the token is looked at, so
 * bad paths can't be used to probe tokens; without `X-Original-URI` only the token is checked.
 * With `recordings_access = "owner"` a valid token then opens only its user's calls' recordings.
 */
import { Elysia, type Context } from 'elysia'
import * as v from 'valibot'
import { credentialRequest } from '../auth/auth-plugin'
import type { AuthFailure } from '../auth/authenticator'
import { accessDetail } from '../auth/route-access'
import { bearerChallenge } from '../auth/challenge'
import type { AccessGuard, AccessOutcome } from '../auth/access-guard'
import { queryOf } from '../auth/credentials'
import { unixSeconds, type Clock } from '../clock'
import type { ClientIpOf } from '../http/client-ip'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, errorBody } from '../http/errors'
import { jsonResponses } from '../openapi/responses'
import type { SecurityLogSink } from '../security-log/security-log'
import { REFUSALS, type OwnerRefusal, type RecordingOwners } from './recording-owners'
import { recordingPathOf, recordingPathRefusal, type RecordingPath } from './recording-path'

/**
 * The allow answer, serialised once: Elysia sends a string with the default JSON content type,
 * ~10 % faster than serialising an object on every call of the hottest route (bench/).
 */
const ALLOWED = JSON.stringify({ success: true })
/** Documented, never checked at run time (README "OpenAPI"): only 200, 401 or 403. */
const RESPONSES = { 200: v.object({ success: v.literal(true) }), 401: ErrorEnvelope, 403: ErrorEnvelope }

/** In `any` mode only the path's verdict counts, and recordingPathRefusal alone is cheaper. */
const ANY_GOOD_PATH: RecordingPath = { ok: true, relative: '' }
function pathVerdict(uri: string): RecordingPath {
  const reason = recordingPathRefusal(uri)
  return reason === null ? ANY_GOOD_PATH : { ok: false, reason }
}

const CHALLENGES: Record<Exclude<AuthFailure, 'unavailable'>, string> = {
  missing: bearerChallenge(),
  malformed: bearerChallenge('invalid_request'),
  invalid: bearerChallenge('invalid_token'),
  wrong_type: bearerChallenge('insufficient_scope'),
  forbidden: bearerChallenge('insufficient_scope'),
  space_expired: bearerChallenge('insufficient_scope'),
  throttled: bearerChallenge('invalid_token'),
  bad_request: bearerChallenge('invalid_request'),
}
/** nginx passes on only 401 and 403: these are 403, every other refusal 401. */
const FORBIDDEN_FAILURES = new Set<AuthFailure>(['wrong_type', 'forbidden', 'space_expired'])
const JSON_TYPE = { 'content-type': 'application/json' }

export interface MediaRoutesDeps {
  clock: Clock
  guard: AccessGuard
  securityLog: SecurityLogSink
  clientIpOf: ClientIpOf
  /** `recordings_access = "owner"`: who may open which recording; null when any valid token may. */
  owners: RecordingOwners | null
}

export function mediaRoutes({ clock, guard, securityLog, clientIpOf, owners }: MediaRoutesDeps) {
  const deny = (request: Request, reason: string, user?: string) =>
    securityLog.record({ event: 'MEDIA_ACCESS_DENIED', user, ...clientIpOf(request), ua: request.headers.get('user-agent'), reason })
  const ownerDenial = (refusal: OwnerRefusal) =>
    refusal === REFUSALS.unavailable ? ERRORS.accessCheckUnavailable : ERRORS.recordingNotYours

  return new Elysia({ name: 'media-routes' }).get('/check-media-access', ({ request, set, status }) => {
    const headers = request.headers
    const originalUri = headers.get('x-original-uri')
    const path = originalUri === null ? null : owners === null ? pathVerdict(originalUri) : recordingPathOf(originalUri)
    if (path?.ok === false) {
      deny(request, path.reason)
      set.headers['www-authenticate'] = CHALLENGES.wrong_type
      return status(403, errorBody(ERRORS.recordingPathInvalid, unixSeconds(clock)))
    }
    let checked: AccessOutcome | Promise<AccessOutcome>
    try {
      // Digest's `uri` is the client's request target, which nginx passes as X-Original-URI (README "HTTP Digest").
      const credentials = credentialRequest(request, clientIpOf, queryOf(originalUri))
      checked = guard.check(originalUri === null ? credentials : { ...credentials, target: originalUri }, 'user')
    } catch (error) {
      return unavailable(error)
    }
    if (!(checked instanceof Promise)) return decide(request, set, status, checked, path)
    return checked.then((outcome) => decide(request, set, status, outcome, path), unavailable)
  }, { detail: { ...accessDetail('user'), responses: jsonResponses(RESPONSES) } })

  /** A store failure must still be a deny nginx understands, not a 500. */
  function unavailable(error: unknown) {
    console.error(JSON.stringify({ level: 'error', route: 'check-media-access', error: String(error) }))
    return new Response(JSON.stringify(errorBody(ERRORS.accessCheckUnavailable, unixSeconds(clock))), { status: 403, headers: JSON_TYPE })
  }

  function decide(request: Request, set: Context['set'], status: Context['status'], outcome: AccessOutcome, path: RecordingPath | null) {
    if (outcome.ok) {
      if (owners === null || path === null || !path.ok) return ALLOWED
      const { user } = outcome.principal
      const refusal = owners.refusal(user, path.relative)
      if (refusal === null) return ALLOWED
      deny(request, refusal, user.username)
      set.headers['www-authenticate'] = CHALLENGES.wrong_type
      return status(403, errorBody(ownerDenial(refusal), unixSeconds(clock)))
    }
    deny(request, outcome.reason)
    // A store that can't vouch for the token: a deny nginx understands, as for any store failure.
    if (outcome.failure === 'unavailable') return status(403, errorBody(ERRORS.accessCheckUnavailable, unixSeconds(clock)))
    set.headers['www-authenticate'] = outcome.challenges?.length ? outcome.challenges.join(', ') : CHALLENGES[outcome.failure]
    if (FORBIDDEN_FAILURES.has(outcome.failure)) {
      return status(403, errorBody(outcome.failure === 'space_expired' ? ERRORS.spaceExpired : ERRORS.tokenTypeInvalid, unixSeconds(clock)))
    }
    const kind = outcome.failure === 'missing' ? ERRORS.tokenRequired : ERRORS.unauthorized
    return status(401, errorBody(kind, unixSeconds(clock)))
  }
}

