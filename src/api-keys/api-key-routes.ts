/**
 * `accounts/me/api_key` (a user makes a key for itself) and `admin/api_keys` (admins list, make and
 * revoke stable keys), README "API keys". The key is in the creating answer only; logs name its id.
 */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { AuthPlugin } from '../auth/auth-plugin'
import { roleAtLeast } from '../auth/route-access'
import { unixSeconds, type Clock } from '../clock'
import type { Directory, DirectoryUser } from '../directory/directory'
import type { ClientIpOf } from '../http/client-ip'
import { ERRORS, errorBody } from '../http/errors'
import { parseJsonBody, type JsonBodyLimits } from '../http/json-body'
import type { SecurityEvent, SecurityLogSink } from '../security-log/security-log'
import { MAX_SELF_MADE_KEYS, type ApiKeyService, type MadeKey } from './api-key-service'
import { isoInstant } from './expiry'

const BODY_LIMITS: JsonBodyLimits = { maxBytes: 4 * 1024, maxDepth: 1, maxItems: 8 }

const Username = v.pipe(v.string('must be a string'), v.regex(/^[A-Za-z0-9._@+-]{1,64}$/, 'must be a user name'))
const KeyName = v.pipe(v.string('must be a string'), v.regex(/^[^\x00-\x1f\x7f]{0,64}$/, 'must be at most 64 characters, no control characters'))
const IsoInstant = v.pipe(v.string('must be a string'), v.check((text) => isoInstant(text) !== null, 'must be an ISO 8601 date or date-time'))

const SelfMadeBody = v.strictObject({ name: v.optional(KeyName) }, 'unknown field')
const AdminCreateBody = v.strictObject({ user: Username, name: v.optional(KeyName), expires_at: v.optional(IsoInstant) }, 'unknown field')
const AdminListQuery = v.strictObject({ user: v.optional(Username) }, 'unknown parameter')
const KeyParams = v.object({ id: v.pipe(v.string(), v.regex(/^[1-9]\d{0,14}$/, 'must be a key id')) })

export interface ApiKeyRoutesDeps {
  clock: Clock
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  apiKeys: ApiKeyService
  directory: Directory
  securityLog: SecurityLogSink
  clientIpOf: ClientIpOf
}

export function apiKeyRoutes({ clock, auth, apiKeys, directory, securityLog, clientIpOf }: ApiKeyRoutesDeps) {
  const now = () => unixSeconds(clock)
  const log = (request: Request, event: SecurityEvent) => securityLog.record({ ...event, ...clientIpOf(request) })
  const validationFailed = (field: string, message: string) => errorBody(ERRORS.validationFailed, now(), { errors: { [field]: [message] } })
  /** Admins act on users up to their own role (README "API keys"). */
  const mayManage = (actor: DirectoryUser, username: string) => {
    const target = directory.findByUsername(username)
    return !target || roleAtLeast(actor.role, target.role)
  }
  return new Elysia({ name: 'api-key-routes' })
    .use(auth)
    .post(
      '/accounts/me/api_key',
      ({ principal: { user }, body, request }) => {
        const ip = clientIpOf(request).ip
        const made = apiKeys.createSelfMade(user, ip, body.name)
        logCreated(request, user, made, `self-made, bound to ${ip}`)
        if (made.replaced) {
          log(request, { event: 'API_KEY_REVOKED', user: user.username, actor: user.username, key_id: made.replaced.id, reason: `over ${MAX_SELF_MADE_KEYS} self-made keys: the one unused longest` })
        }
        return { success: true, api_key: made.text, id: made.row.id, prefix: made.row.prefix, expires_after_idle_minutes: made.row.idle_minutes }
      },
      { auth: 'user', parse: optionalJsonBody(SelfMadeBody), body: SelfMadeBody },
    )
    .get('/admin/api_keys', ({ query }) => ({ success: true, api_keys: apiKeys.list(query.user) }), { auth: 'admin', query: AdminListQuery })
    .post(
      '/admin/api_keys',
      ({ principal: { user: actor }, body, request, status }) => {
        const user = directory.findByUsername(body.user)
        if (!user || user.disabled) return status(400, validationFailed('user', 'no such user, or disabled'))
        if (!roleAtLeast(actor.role, user.role)) return status(403, errorBody(ERRORS.roleAboveOwn, now()))
        const expiresAt = body.expires_at === undefined ? null : isoInstant(body.expires_at)!
        if (expiresAt !== null && expiresAt <= now()) return status(400, validationFailed('expires_at', 'must be in the future'))
        const made = apiKeys.createStable(user, `admin:${actor.username}`, body.name, expiresAt)
        logCreated(request, actor, made, expiresAt === null ? 'admin-made' : `admin-made, expires ${new Date(expiresAt * 1000).toISOString()}`)
        return { success: true, api_key: made.text, id: made.row.id, user: user.username, name: made.row.name, prefix: made.row.prefix, expires_at: expiresAt }
      },
      { auth: 'admin', parse: parseJsonBody(BODY_LIMITS, AdminCreateBody), body: AdminCreateBody },
    )
    .delete(
      '/admin/api_keys/:id',
      ({ principal: { user: actor }, params, request, status }) => {
        const key = apiKeys.find(Number(params.id))
        if (!key) return status(404, errorBody(ERRORS.notFound, now()))
        if (!mayManage(actor, key.username)) return status(403, errorBody(ERRORS.roleAboveOwn, now()))
        if (!apiKeys.revoke(key.id)) return status(404, errorBody(ERRORS.notFound, now()))
        log(request, { event: 'API_KEY_REVOKED', user: key.username, actor: actor.username, key_id: key.id, reason: 'revoked by an admin' })
        return { success: true, message: 'API key revoked', id: key.id }
      },
      { auth: 'admin', params: KeyParams },
    )

  function logCreated(request: Request, actor: DirectoryUser, made: MadeKey, reason: string) {
    log(request, { event: 'API_KEY_CREATED', user: made.row.username, actor: actor.username, key_id: made.row.id, reason })
  }
}

/** A body is optional here: none at all (no type, no length) is `{}`; anything sent is strict JSON. */
function optionalJsonBody(schema: v.GenericSchema) {
  const strict = parseJsonBody(BODY_LIMITS, schema)
  return async (context: { request: Request }): Promise<unknown> => {
    const { headers } = context.request
    const empty = !headers.has('content-type') && (headers.get('content-length') ?? '0') === '0' && !headers.has('transfer-encoding')
    return empty ? {} : strict(context)
  }
}
