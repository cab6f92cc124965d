/**
 * `GET/POST admin/spaces`, `PATCH/DELETE admin/spaces/:domain`, for superadmins (README "Spaces").
 * Bodies are strict: an unknown field is a validation error, not ignored. They are read in the
 * handler, after the `auth` macro: Elysia parses and validates before it resolves, and nobody but a
 * superadmin should learn what these routes accept.
 */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { AuthPlugin } from '../auth/auth-plugin'
import { unixSeconds, type Clock } from '../clock'
import type { ClientIpOf } from '../http/client-ip'
import { ERRORS, errorBody, type ErrorKind } from '../http/errors'
import { parseJsonBody } from '../http/json-body'
import type { SecurityEventName, SecurityLogSink } from '../security-log/security-log'
import { DomainSchema, ExpirySchema, isoOf, normalizeDomain, parseInstant } from './space-input'
import { SpaceError, type SpaceProblem, type SpaceRow } from './space-store'
import type { SpaceService } from './spaces'

const BODY_LIMITS = { maxBytes: 4096, maxDepth: 1, maxItems: 8 }

/** valibot's own texts for a strict object quote the unknown key; the envelope names it as the field already. */
const objectMessage = (issue: v.BaseIssue<unknown>) =>
  issue.expected === 'never' ? 'unknown field' : issue.expected === 'Object' ? 'must be a JSON object' : 'is required'
/** valibot's object() lets arrays through. */
const strictBody = <T extends v.ObjectEntries>(entries: T) =>
  v.pipe(
    v.custom<Record<string, unknown>>((input) => typeof input === 'object' && input !== null && !Array.isArray(input), 'must be a JSON object'),
    v.strictObject(entries, objectMessage),
  )
const NewSpace = strictBody({ domain: DomainSchema, expire_at: v.optional(ExpirySchema) })
const SpaceChange = strictBody({ expire_at: ExpirySchema })

const PROBLEMS: Record<SpaceProblem, ErrorKind> = {
  unknown: ERRORS.spaceNotFound,
  exists: ERRORS.spaceExists,
  has_users: ERRORS.spaceHasUsers,
  default: ERRORS.spaceIsDefault,
}


export interface SpaceRoutesDeps {
  clock: Clock
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  spaces: SpaceService
  securityLog: SecurityLogSink
  clientIpOf: ClientIpOf
}

export function spaceRoutes({ clock, auth, spaces, securityLog, clientIpOf }: SpaceRoutesDeps) {
  const view = (space: SpaceRow & { users?: number }) => ({
    domain: space.domain,
    expire_at: space.expire_at === null ? null : isoOf(space.expire_at),
    expired: spaces.isExpired(space),
    ...(space.users !== undefined && { users: space.users }),
  })
  const audit = (request: Request, event: SecurityEventName, actor: string, reason: string) =>
    securityLog.record({ event, user: actor, reason, ...clientIpOf(request), ua: request.headers.get('user-agent') })
  const expiryOf = (text: string | null | undefined) => (text == null ? null : parseInstant(text)!)
  const describe = (space: SpaceRow) => `space ${space.domain} ${space.expire_at === null ? 'never expires' : `expires ${isoOf(space.expire_at)}`}`

  /** Answers a SpaceError with its envelope; anything else (HttpError, store outages) goes on to the HTTP plugin. */
  async function attempt<T>(status: (code: 404 | 409, body: unknown) => unknown, action: () => T | Promise<T>) {
    try {
      return await action()
    } catch (error) {
      if (!(error instanceof SpaceError)) throw error
      const kind = PROBLEMS[error.problem]
      return status(kind.status as 404 | 409, errorBody(kind, unixSeconds(clock)))
    }
  }
  /** A path segment that is no domain names no space; Elysia gives null for one that isn't valid percent-encoding. */
  const domainOf = (param: string | null): string => {
    const domain = param === null ? null : normalizeDomain(param)
    if (domain === null) throw new SpaceError('unknown', 'no such space')
    return domain
  }

  return new Elysia({ name: 'space-routes' })
    .use(auth)
    .get('/admin/spaces', () => ({ success: true, spaces: spaces.list().map(view) }), { auth: 'superadmin' })
    .post(
      '/admin/spaces',
      ({ body, principal, request, set, status }) =>
        attempt(status, () => {
          const space = spaces.add(normalizeDomain(body.domain)!, expiryOf(body.expire_at))
          audit(request, 'SPACE_ADDED', principal.user.username, describe(space))
          set.status = 201
          return { success: true, space: view(space) }
        }),
      { auth: 'superadmin', parse: parseJsonBody(BODY_LIMITS, NewSpace), body: NewSpace },
    )
    .patch(
      '/admin/spaces/:domain',
      ({ body, params, principal, request, status }) =>
        attempt(status, () => {
          const domain = domainOf(params.domain)
          const space = spaces.setExpiry(domain, expiryOf(body.expire_at))
          audit(request, 'SPACE_EXPIRY_CHANGED', principal.user.username, describe(space))
          return { success: true, space: view(space) }
        }),
      { auth: 'superadmin', parse: parseJsonBody(BODY_LIMITS, SpaceChange), body: SpaceChange },
    )
    .delete(
      '/admin/spaces/:domain',
      ({ params, principal, request, status }) =>
        attempt(status, () => {
          const domain = domainOf(params.domain)
          spaces.remove(domain)
          audit(request, 'SPACE_REMOVED', principal.user.username, `space ${domain}`)
          return { success: true, message: 'Space removed' }
        }),
      { auth: 'superadmin' },
    )
}
