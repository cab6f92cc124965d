/**
 * What the admin API accepts (README "Admin API"). Bodies are strict: an unknown field is a 400,
 * so a misspelt `rol` never silently changes nothing. Query strings ignore unknown parameters.
 */
import * as v from 'valibot'
import { ROLES } from '../directory/directory'
import type { JsonBodyLimits } from '../http/json-body'
import { SECURITY_EVENTS } from '../security-log/security-log'

/** A user body is a flat object of a few short fields; 16 KiB leaves room for a 1024-byte password in escapes. */
export const ADMIN_BODY_LIMITS: JsonBodyLimits = { maxBytes: 16 * 1024, maxDepth: 2, maxItems: 32 }

export const DEFAULT_PER_PAGE = 20
export const MAX_PER_PAGE = 100
export const MAX_PAGE = 100_000
export const DEFAULT_LOG_LIMIT = 100
export const MAX_LOG_LIMIT = 1000

const USERNAME_MESSAGE = 'must be 1-64 characters of A-Z a-z 0-9 . _ @ + -'
const DISPLAY_NAME_MAX = 128

/** As the `users` command accepts it. */
export const Username = v.pipe(v.string(USERNAME_MESSAGE), v.regex(/^[A-Za-z0-9._@+-]{1,64}$/, USERNAME_MESSAGE))

const Password = v.pipe(v.string('must be a string'), v.minLength(1, 'must not be empty'), v.maxBytes(1024, 'must be at most 1024 bytes'))
const DisplayName = v.pipe(
  v.string('must be a string'),
  v.maxLength(DISPLAY_NAME_MAX, `must be at most ${DISPLAY_NAME_MAX} characters`),
  // A name is shown in apps and written to logs by others: no line breaks or escape sequences.
  v.regex(/^[^\p{Cc}]*$/u, 'must not contain control characters'),
)
const RoleField = v.picklist(ROLES, `must be one of ${ROLES.join(', ')}`)
const Mobile = v.pipe(v.string('must be a string'), v.regex(/^\d{0,10}$/, 'must be at most 10 digits'))

const isPlainObject = (input: unknown) => typeof input === 'object' && input !== null && !Array.isArray(input)
const jsonObject = v.custom<Record<string, unknown>>(isPlainObject, 'must be a JSON object')

export const NewUserBody = v.pipe(
  jsonObject,
  v.strictObject(
    {
      username: Username,
      password: Password,
      display_name: v.optional(DisplayName),
      role: v.optional(RoleField),
      mobile: v.optional(Mobile),
    },
    'unknown field',
  ),
)

export const UserChangeBody = v.pipe(
  jsonObject,
  v.strictObject(
    {
      display_name: v.optional(DisplayName),
      role: v.optional(RoleField),
      mobile: v.optional(Mobile),
      password: v.optional(Password),
    },
    'unknown field',
  ),
  v.check((body) => Object.keys(body).length > 0, 'must change at least one field'),
)

export const UserParams = v.object({ username: Username })

export const UserSessionParams = v.object({
  username: Username,
  sid: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{22}$/, 'must be a session id')),
})

/** A decimal from `min` to `max` in a query string. */
const QueryInteger = (min: number, max: number) => {
  const message = `must be an integer from ${min} to ${max}`
  return v.pipe(v.string(message), v.regex(/^\d{1,6}$/, message), v.transform(Number), v.minValue(min, message), v.maxValue(max, message))
}

export const UserListQuery = v.object({
  page: v.optional(QueryInteger(1, MAX_PAGE), '1'),
  per_page: v.optional(QueryInteger(1, MAX_PER_PAGE), String(DEFAULT_PER_PAGE)),
  search: v.optional(v.pipe(v.string(), v.maxLength(64, 'must be at most 64 characters')), ''),
})

const TIME_MESSAGE = 'must be Unix seconds or an ISO 8601 time such as 2026-11-23T12:00:00Z'

/** Unix seconds or an ISO 8601 time with a zone, as milliseconds. */
const Time = v.pipe(
  v.string(TIME_MESSAGE),
  v.check((text) => timeOf(text) !== null, TIME_MESSAGE),
  v.transform((text) => timeOf(text)!),
)

function timeOf(text: string): number | null {
  if (/^\d{1,10}$/.test(text)) return Number(text) * 1000
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(text)) return null
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? null : ms
}

export const SecurityLogQuery = v.object({
  event: v.optional(v.picklist(SECURITY_EVENTS, 'must be a security log event name')),
  user: v.optional(v.pipe(v.string(), v.maxLength(64, 'must be at most 64 characters'))),
  ip: v.optional(v.pipe(v.string(), v.regex(/^[0-9A-Fa-f:.]{1,45}$/, 'must be an IPv4 or IPv6 address'))),
  since: v.optional(Time),
  until: v.optional(Time),
  limit: v.optional(QueryInteger(1, MAX_LOG_LIMIT), String(DEFAULT_LOG_LIMIT)),
})
