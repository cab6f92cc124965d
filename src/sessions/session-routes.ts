/**
 * `GET sessions`, `DELETE sessions/<sid>`, `POST auth/logout-all`: a user manages its own logins
 * (README "Sessions and refresh rotation").
 */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { AuthPlugin } from '../auth/auth-plugin'
import { unixSeconds, type Clock } from '../clock'
import type { ClientIpOf } from '../http/client-ip'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, errorBody } from '../http/errors'
import { jsonResponses } from '../openapi/responses'
import type { SecurityLogSink } from '../security-log/security-log'
import type { SessionRow } from './session-records'
import type { SessionService } from './sessions'

const SessionParams = v.object({
  sid: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{22}$/, 'must be a session id')),
})

/** The answers, for the OpenAPI document (README "OpenAPI"). */
const SessionsResponse = v.object({
  success: v.literal(true),
  sessions: v.array(
    v.object({
      id: v.string(),
      created_at: v.number(),
      last_used_at: v.number(),
      ip: v.string(),
      user_agent: v.string(),
      current: v.boolean(),
    }),
  ),
})
const SessionEndedResponse = v.object({ success: v.literal(true), message: v.string() })
const LogoutAllResponse = v.object({ success: v.literal(true), message: v.string(), sessions_ended: v.number() })

function sessionView(session: SessionRow, currentSid: string | undefined) {
  return {
    id: session.id,
    created_at: session.created_at,
    last_used_at: session.last_used_at,
    ip: session.ip,
    user_agent: session.user_agent,
    current: session.id === currentSid,
  }
}

export interface SessionRoutesDeps {
  clock: Clock
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  sessions: SessionService
  securityLog: SecurityLogSink
  clientIpOf: ClientIpOf
}

export function sessionRoutes({ clock, auth, sessions, securityLog, clientIpOf }: SessionRoutesDeps) {
  const revoked = (request: Request, user: string, sid: string | undefined, reason: string) =>
    securityLog.record({ event: 'SESSION_REVOKED', user, sid, reason, ...clientIpOf(request), ua: request.headers.get('user-agent') })
  return new Elysia({ name: 'session-routes' })
    .use(auth)
    .get(
      '/sessions',
      async ({ principal: { user, token } }) => ({
        success: true,
        sessions: (await sessions.list(user.username)).map((session) => sessionView(session, token?.sid)),
      }),
      { auth: 'user', detail: { responses: jsonResponses({ 200: SessionsResponse }) } },
    )
    .delete(
      '/sessions/:sid',
      async ({ principal: { user }, params: { sid }, request, status }) => {
        if (!(await sessions.end(user.username, sid, 'ended by its user'))) return status(404, errorBody(ERRORS.notFound, unixSeconds(clock)))
        revoked(request, user.username, sid, 'ended by its user')
        return { success: true, message: 'Session ended' }
      },
      { auth: 'user', params: SessionParams, detail: { responses: jsonResponses({ 200: SessionEndedResponse, 404: ErrorEnvelope, 503: ErrorEnvelope }) } },
    )
    .post(
      '/auth/logout-all',
      async ({ principal: { user }, request }) => {
        const ended = await sessions.endAll(user.username, 'logout-all')
        revoked(request, user.username, undefined, `logout-all: ${ended} sessions`)
        return { success: true, message: 'Logged out from all sessions', sessions_ended: ended }
      },
      { auth: 'user', detail: { responses: jsonResponses({ 200: LogoutAllResponse, 503: ErrorEnvelope }) } },
    )
}
