/**
 * English texts, and the source of every catalogue's keys (README "Localized errors"): `errors` has one
 * text per ERRORS kind, the same as its `error`; `validation` has one per kind of schema issue, where
 * `{field}` is the field's name and `{limit}` the schema's number. The other languages are typed by it.
 */
import type { ERRORS } from '../http/errors'

export const en = {
  errors: {
    credentialsMissing: 'Invalid credentials provided',
    invalidCredentials: 'Invalid credentials',
    refreshTokenInvalid: 'Invalid or missing token',
    refreshTokenRequired: 'Invalid token type. Refresh token required',
    tokenRequired: 'Unauthorized. Token required',
    tokenTypeInvalid: 'Invalid token type',
    adminRequired: 'Administrator role required',
    spaceExpired: 'The account space has expired',
    spaceNotFound: 'No such space',
    spaceExists: 'A space with this domain already exists',
    spaceHasUsers: 'The space still has users',
    spaceIsDefault: 'The default space cannot be removed',
    roleAboveOwn: 'Not allowed to manage a role above your own',
    userExists: 'User already exists',
    lastSuperadmin: 'The last enabled superadmin must stay',
    directoryReadOnly: 'The user directory is read-only (directory = "mikopbx")',
    unauthorized: 'Unauthorized',
    loginBusy: 'Too many logins in progress, try again',
    loginThrottled: 'Too many login attempts, try again later',
    malformedCredentials: 'Malformed credentials',
    invalidJson: 'Request body is not valid JSON',
    bodyTooDeep: 'Request body is nested too deeply',
    bodyTooManyFields: 'Request body has too many fields',
    unsupportedContentType: 'Content-Type must be application/json',
    payloadTooLarge: 'Request body too large',
    validationFailed: 'Validation failed',
    notFound: 'Not found',
    methodNotAllowed: 'Method not allowed',
    publishForbidden: 'Publishing is allowed from the local host only',
    metricsForbidden: 'Metrics are served to the local host only',
    deepHealthForbidden: 'The deep health check is for the local host only',
    channelProducedHere: 'This channel is produced from AMI by the service itself',
    channelOff: 'This shared channel is off: subscribe to sub/me/users-state or sub/me/active-calls',
    upgradeFailed: 'WebSocket upgrade failed',
    invalidCursor: 'Invalid message cursor',
    tooManySubscriptions: 'Too many subscriptions',
    shuttingDown: 'Server shutting down',
    accessCheckUnavailable: 'Access check unavailable, try again',
    recordingPathInvalid: 'Invalid recording path',
    recordingNotYours: 'Not allowed to open this recording',
    storeBusy: 'Service busy, try again',
    storeUnavailable: 'Storage unavailable, nothing was changed; try again',
    internal: 'Internal server error',
  } satisfies Record<keyof typeof ERRORS, string>,
  validation: {
    required: 'The {field} field is required.',
    unknownField: 'The {field} field is not allowed.',
    string: 'The {field} field must be a string.',
    number: 'The {field} field must be a number.',
    boolean: 'The {field} field must be true or false.',
    object: 'The {field} field must be an object.',
    array: 'The {field} field must be a list.',
    picklist: 'The {field} field must be one of the allowed values.',
    minLength: 'The {field} field must be at least {limit} characters long.',
    maxLength: 'The {field} field must be at most {limit} characters long.',
    minBytes: 'The {field} field must be at least {limit} bytes long.',
    maxBytes: 'The {field} field must be at most {limit} bytes long.',
    minValue: 'The {field} field must be at least {limit}.',
    maxValue: 'The {field} field must be at most {limit}.',
    date: 'The {field} field must be a date YYYY-MM-DD.',
    format: 'The {field} field has an invalid format.',
    invalid: 'The {field} field has an invalid value.',
    bodyObject: 'The request body must be a JSON object.',
  },
} as const

export type ErrorName = keyof typeof en.errors
export type ValidationMessage = keyof typeof en.validation

/** Every language's catalogue: exactly en's keys, so a missing or extra key is a type error. */
export interface Catalogue {
  readonly errors: Readonly<Record<ErrorName, string>>
  readonly validation: Readonly<Record<ValidationMessage, string>>
}
