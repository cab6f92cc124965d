/**
 * `auth/login`, `auth/refresh`, `auth/logout`, with the legacy module's exact shapes
 * (README "Walkthrough with curl").
 */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import { unixSeconds, type Clock } from '../clock'
import type { ClientIpOf } from '../http/client-ip'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, errorBody } from '../http/errors'
import { parseJsonBody } from '../http/json-body'
import { jsonResponses } from '../openapi/responses'
import type { SecurityLogSink } from '../security-log/security-log'
import type { SessionService } from '../sessions/sessions'
import type { SpaceService } from '../spaces/spaces'
import type { AuthPlugin } from './auth-plugin'
import { bearerChallenge } from './challenge'
import type { PasswordLogin } from './password-login'

/** Limits apply before any password work (README "Walkthrough with curl", the error table). */
export const LOGIN_LIMITS = { bodyBytes: 8 * 1024, bodyDepth: 2, bodyFields: 64, usernameChars: 64, passwordBytes: 1024 } as const

/** Missing or null fields are "empty", as in the legacy module; wrong types are validation errors. Extra keys are dropped. */
const LoginBody = v.pipe(
  // valibot's object() lets arrays through; a login body is a JSON object.
  v.custom<Record<string, unknown>>((input) => isPlainObject(input), 'must be a JSON object'),
  v.object({
    username: v.nullish(
      v.pipe(v.string('must be a string'), v.maxLength(LOGIN_LIMITS.usernameChars, 'must be at most 64 characters')),
    ),
    password: v.nullish(
      v.pipe(v.string('must be a string'), v.maxBytes(LOGIN_LIMITS.passwordBytes, 'must be at most 1024 bytes')),
    ),
  }),
)

const isPlainObject = (input: unknown) => typeof input === 'object' && input !== null && !Array.isArray(input)

/** The answers, for the OpenAPI document (README "OpenAPI"). */
const LoginResponse = v.object({
  success: v.literal(true),
  access_token: v.string(),
  refresh_token: v.string(),
  token_type: v.literal('Bearer'),
  expires_in: v.number(),
})

/** `refresh_token` only when the session rotates it (README "Sessions and refresh rotation"). */
const RefreshResponse = v.object({
  success: v.literal(true),
  access_token: v.string(),
  token_type: v.literal('Bearer'),
  expires_in: v.number(),
  refresh_token: v.optional(v.string()),
})

const LogoutResponse = v.object({ success: v.literal(true), message: v.string() })

export interface AuthRoutesDeps {
  clock: Clock
  logins: PasswordLogin
  sessions: SessionService
  accessTtl: number
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  securityLog: SecurityLogSink
  clientIpOf: ClientIpOf
  /** Asked after the password matched: a user of an expired space gets no tokens (README "Spaces"). */
  spaces: SpaceService
}

export function authRoutes({ clock, logins, sessions, accessTtl, auth, securityLog, clientIpOf, spaces }: AuthRoutesDeps) {
  const client = (request: Request) => ({ ...clientIpOf(request), ua: (request.headers.get('user-agent') ?? '').slice(0, 200) })
  return new Elysia({ name: 'auth-routes' })
    .use(auth)
    .post(
      '/auth/login',
      async ({ body, request, set, status }) => {
        const { username, password } = body
        if (!username || !password) return status(400, errorBody(ERRORS.credentialsMissing, unixSeconds(clock)))
        const from = client(request)
        const context = { user: username, ...from, method: 'password' as const }
        const outcome = await logins.attempt(username, password, from.ip)
        if (!outcome.ok) {
          switch (outcome.reason) {
            case 'throttled':
              securityLog.record({ event: 'LOGIN_THROTTLED', ...context, reason: `retry after ${outcome.retryAfter}s` })
              set.headers['retry-after'] = String(outcome.retryAfter)
              return status(429, errorBody(ERRORS.loginThrottled, unixSeconds(clock)))
            case 'busy':
              set.headers['retry-after'] = '1'
              return status(503, errorBody(ERRORS.loginBusy, unixSeconds(clock)))
            case 'invalid':
              securityLog.record({ event: 'AUTH_FAILED', ...context, reason: 'invalid credentials' })
              set.headers['www-authenticate'] = bearerChallenge()
              return status(401, errorBody(ERRORS.invalidCredentials, unixSeconds(clock)))
          }
        }
        const { user } = outcome
        if (spaces.refusalFor(user)) {
          securityLog.record({ event: 'AUTH_FAILED', ...context, reason: 'space expired' })
          return status(403, errorBody(ERRORS.spaceExpired, unixSeconds(clock)))
        }
        const session = await sessions.start(user, from)
        securityLog.record({ event: 'AUTH_SUCCESS', ...context, sid: session.sid })
        return {
          success: true,
          access_token: session.accessToken,
          refresh_token: session.refreshToken,
          token_type: 'Bearer',
          expires_in: accessTtl,
        }
      },
      {
        auth: 'public',
        detail: { responses: jsonResponses({ 200: LoginResponse, 400: ErrorEnvelope, 401: ErrorEnvelope, 413: ErrorEnvelope, 429: ErrorEnvelope, 503: ErrorEnvelope }) },
        parse: parseJsonBody({ maxBytes: LOGIN_LIMITS.bodyBytes, maxDepth: LOGIN_LIMITS.bodyDepth, maxItems: LOGIN_LIMITS.bodyFields }, LoginBody),
        body: LoginBody,
      },
    )
    .post(
      '/auth/refresh',
      async ({ principal: { user, token: refreshToken }, request, set, status }) => {
        // `refresh` route access: only a refresh token gets here.
        const token = refreshToken!
        const from = client(request)
        const outcome = await sessions.refresh(token, user, from)
        const event = { user: user.username, ...from, method: 'refresh' as const, jti: token.jti }
        if (!outcome.ok) {
          securityLog.record(
            outcome.reason === 'reuse'
              ? { event: 'TOKEN_REUSE', ...event, sid: outcome.sid, reason: 'refresh token used again; session revoked' }
              : { event: 'AUTH_FAILED', ...event, sid: token.sid, reason: outcome.reason },
          )
          set.headers['www-authenticate'] = bearerChallenge('invalid_token')
          return status(401, errorBody(ERRORS.refreshTokenInvalid, unixSeconds(clock)))
        }
        securityLog.record({ event: 'TOKEN_REFRESH', ...event, sid: outcome.sid })
        return {
          success: true,
          access_token: outcome.accessToken,
          token_type: 'Bearer',
          expires_in: accessTtl,
          ...(outcome.refreshToken && { refresh_token: outcome.refreshToken }),
        }
      },
      { auth: 'refresh', detail: { responses: jsonResponses({ 200: RefreshResponse, 503: ErrorEnvelope }) } },
    )
    .post(
      '/auth/logout',
      async ({ principal: { user, token: accessToken }, request }) => {
        // `token` route access: only an access token gets here.
        const token = accessToken!
        await sessions.logout(token)
        const from = client(request)
        securityLog.record({ event: 'LOGOUT', user: user.username, ...from, sid: token.sid, jti: token.jti })
        return { success: true, message: 'Logged out successfully' }
      },
      { auth: 'token', detail: { responses: jsonResponses({ 200: LogoutResponse, 503: ErrorEnvelope }) } },
    )
}
