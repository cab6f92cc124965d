/**
 * The error envelope (README "Walkthrough with curl"). `error` texts are stable English (the legacy
 * module's where it had one); `code` is for machines. `message` is built here in English, and the
 * HTTP plugin puts it and `errors` into the negotiated language (README "Localized errors").
 * No error body ever carries a submitted value.
 */
export interface ErrorKind {
  status: number
  error: string
  code: string
}

const kind = (status: number, error: string, code: string): ErrorKind => ({ status, error, code })

export const ERRORS = {
  credentialsMissing: kind(400, 'Invalid credentials provided', 'credentials_missing'),
  invalidCredentials: kind(401, 'Invalid credentials', 'invalid_credentials'),
  refreshTokenInvalid: kind(401, 'Invalid or missing token', 'invalid_token'),
  refreshTokenRequired: kind(403, 'Invalid token type. Refresh token required', 'refresh_token_required'),
  tokenRequired: kind(401, 'Unauthorized. Token required', 'token_required'),
  tokenTypeInvalid: kind(403, 'Invalid token type', 'invalid_token_type'),
  adminRequired: kind(403, 'Administrator role required', 'insufficient_scope'),
  spaceExpired: kind(403, 'The account space has expired', 'space_expired'),
  spaceNotFound: kind(404, 'No such space', 'space_not_found'),
  spaceExists: kind(409, 'A space with this domain already exists', 'space_exists'),
  spaceHasUsers: kind(409, 'The space still has users', 'space_has_users'),
  spaceIsDefault: kind(409, 'The default space cannot be removed', 'space_is_default'),
  unauthorized: kind(401, 'Unauthorized', 'invalid_token'),
  loginBusy: kind(503, 'Too many logins in progress, try again', 'login_busy'),
  loginThrottled: kind(429, 'Too many login attempts, try again later', 'login_throttled'),
  malformedCredentials: kind(400, 'Malformed credentials', 'invalid_request'),
  invalidJson: kind(400, 'Request body is not valid JSON', 'invalid_json'),
  bodyTooDeep: kind(400, 'Request body is nested too deeply', 'body_too_deep'),
  bodyTooManyFields: kind(400, 'Request body has too many fields', 'body_too_many_fields'),
  unsupportedContentType: kind(400, 'Content-Type must be application/json', 'unsupported_content_type'),
  payloadTooLarge: kind(413, 'Request body too large', 'payload_too_large'),
  validationFailed: kind(400, 'Validation failed', 'validation_failed'),
  notFound: kind(404, 'Not found', 'not_found'),
  methodNotAllowed: kind(405, 'Method not allowed', 'method_not_allowed'),
  publishForbidden: kind(403, 'Publishing is allowed from the local host only', 'publish_forbidden'),
  metricsForbidden: kind(403, 'Metrics are served to the local host only', 'metrics_forbidden'),
  deepHealthForbidden: kind(403, 'The deep health check is for the local host only', 'deep_health_forbidden'),
  channelProducedHere: kind(409, 'This channel is produced from AMI by the service itself', 'channel_produced_here'),
  channelOff: kind(404, 'This shared channel is off: subscribe to sub/me/users-state or sub/me/active-calls', 'channel_off'),
  upgradeFailed: kind(400, 'WebSocket upgrade failed', 'upgrade_failed'),
  invalidCursor: kind(400, 'Invalid message cursor', 'invalid_cursor'),
  tooManySubscriptions: kind(429, 'Too many subscriptions', 'too_many_subscriptions'),
  shuttingDown: kind(503, 'Server shutting down', 'shutting_down'),
  accessCheckUnavailable: kind(403, 'Access check unavailable, try again', 'access_check_unavailable'),
  recordingPathInvalid: kind(403, 'Invalid recording path', 'invalid_recording_path'),
  recordingNotYours: kind(403, 'Not allowed to open this recording', 'recording_forbidden'),
  roleAboveOwn: kind(403, 'Not allowed to manage a role above your own', 'role_forbidden'),
  userExists: kind(409, 'User already exists', 'user_exists'),
  lastSuperadmin: kind(409, 'The last enabled superadmin must stay', 'last_superadmin'),
  directoryReadOnly: kind(409, 'The user directory is read-only (directory = "mikopbx")', 'directory_read_only'),
  storeBusy: kind(503, 'Service busy, try again', 'store_busy'),
  storeUnavailable: kind(503, 'Storage unavailable, nothing was changed; try again', 'store_unavailable'),
  internal: kind(500, 'Internal server error', 'internal_error'),
} as const

export interface ErrorBody {
  success: false
  error: string
  code: string
  message: string
  timestamp: number
  [extra: string]: unknown
}

export function errorBody(kind: ErrorKind, timestamp: number, extra?: Record<string, unknown>): ErrorBody {
  return { success: false, error: kind.error, code: kind.code, message: kind.error, timestamp, ...extra }
}

/** Thrown where returning isn't possible (body parsing); the HTTP plugin turns it into the envelope, with `extra`. */
export class HttpError extends Error {
  override name = 'HttpError'
  constructor(
    readonly kind: ErrorKind,
    readonly extra?: Record<string, unknown>,
    /** A validation failure's issues, from which `errors` is written in other languages. */
    readonly issues?: readonly StandardIssue[],
  ) {
    super(kind.error)
  }
}

/**
 * A Standard Schema issue (valibot's among them): its message and where it is; valibot's kind of
 * issue, its limit and whether a value was there serve localized texts. `input` is never read.
 */
export interface StandardIssue {
  message: string
  path?: ReadonlyArray<PropertyKey | { key: unknown }>
  type?: string
  requirement?: unknown
  received?: string
}

/** Field → messages, from the schema's own messages. Submitted values are never included. */
export function fieldErrors(issues: readonly StandardIssue[]): Record<string, string[]> {
  const errors: Record<string, string[]> = {}
  for (const issue of issues) {
    const field = fieldOf(issue)
    const messages = (errors[field] ??= [])
    if (!messages.includes(issue.message)) messages.push(issue.message)
  }
  return errors
}

/** The dotted path of an issue's field; `body` for the whole body or query. */
export function fieldOf(issue: StandardIssue): string {
  return issue.path?.map((segment) => String(typeof segment === 'object' ? segment.key : segment)).join('.') || 'body'
}
