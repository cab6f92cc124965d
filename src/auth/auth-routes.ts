/** `auth/login`, `auth/refresh`, `auth/logout` (SPEC §4), with the legacy module's exact shapes. */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import { unixSeconds, type Clock } from '../clock'
import type { Directory } from '../directory/directory'
import type { ClientIpOf } from '../http/client-ip'
import { ERRORS, errorBody } from '../http/errors'
import { parseJsonBody } from '../http/json-body'
import type { SecurityLogSink } from '../security-log/security-log'
import type { TokenService } from '../tokens/tokens'
import { authPlugin } from './auth-plugin'
import type { AccessGuard } from './access-guard'
import { bearerChallenge } from './challenge'

/** SPEC §7: limits apply before any password work. */
export const LOGIN_LIMITS = { bodyBytes: 8 * 1024, usernameChars: 64, passwordBytes: 1024 } as const

/** Missing or null fields are "empty", as in the legacy module; wrong types are validation errors. Extra keys are dropped. */
export const LoginBody = v.pipe(
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

export interface AuthRoutesDeps {
  clock: Clock
  directory: Directory
  tokens: TokenService
  guard: AccessGuard
  securityLog: SecurityLogSink
  clientIpOf: ClientIpOf
}

export function authRoutes({ clock, directory, tokens, guard, securityLog, clientIpOf }: AuthRoutesDeps) {
  const expiresIn = tokens.settings.accessTtl
  return new Elysia({ name: 'auth-routes' })
    .use(authPlugin({ guard, clock }))
    .post(
      '/auth/login',
      async ({ body, request, set, status }) => {
        const { username, password } = body
        if (!username || !password) return status(400, errorBody(ERRORS.credentialsMissing, unixSeconds(clock)))
        const context = { user: username, ip: clientIpOf(request), ua: request.headers.get('user-agent'), method: 'password' as const }
        const user = await directory.authenticate(username, password)
        if (!user) {
          securityLog.record({ event: 'AUTH_FAILED', ...context, reason: 'invalid credentials' })
          set.headers['www-authenticate'] = bearerChallenge()
          return status(401, errorBody(ERRORS.invalidCredentials, unixSeconds(clock)))
        }
        const pair = tokens.issuePair(user)
        securityLog.record({ event: 'AUTH_SUCCESS', ...context, sid: pair.sid })
        return {
          success: true,
          access_token: pair.accessToken,
          refresh_token: pair.refreshToken,
          token_type: 'Bearer',
          expires_in: expiresIn,
        }
      },
      { parse: parseJsonBody(LOGIN_LIMITS.bodyBytes), body: LoginBody },
    )
    .post(
      '/auth/refresh',
      ({ principal: { user, token }, request }) => {
        const accessToken = tokens.issueAccessFor(user, token)
        securityLog.record({
          event: 'TOKEN_REFRESH',
          user: user.username,
          ip: clientIpOf(request),
          ua: request.headers.get('user-agent'),
          method: 'refresh',
          sid: token.sid,
          jti: token.jti,
        })
        return { success: true, access_token: accessToken, token_type: 'Bearer', expires_in: expiresIn }
      },
      { auth: 'refresh' },
    )
    .post(
      '/auth/logout',
      ({ principal: { user, token }, request }) => {
        tokens.revoke(token)
        securityLog.record({
          event: 'LOGOUT',
          user: user.username,
          ip: clientIpOf(request),
          ua: request.headers.get('user-agent'),
          sid: token.sid,
          jti: token.jti,
        })
        return { success: true, message: 'Logged out successfully' }
      },
      { auth: 'access' },
    )
}
