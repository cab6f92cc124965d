/**
 * `admin/users/<username>/sessions…` (README "Admin API"): an admin lists and ends another user's
 * logins, through the same session service as logout-all, so a revoked token fails at once.
 * Works with either directory: sessions live in the service's own store.
 */
import { Elysia } from 'elysia'
import type { AuthPlugin } from '../auth/auth-plugin'
import { unixSeconds, type Clock } from '../clock'
import type { Directory, DirectoryUser } from '../directory/directory'
import { ERRORS, errorBody } from '../http/errors'
import type { SessionRow } from '../sessions/session-records'
import type { SessionService } from '../sessions/sessions'
import type { AdminAudit } from './admin-audit'
import { UserParams, UserSessionParams } from './admin-schemas'
import { refusalFor } from './admin-user-routes'

function sessionView(session: SessionRow) {
  return { id: session.id, created_at: session.created_at, last_used_at: session.last_used_at, ip: session.ip, user_agent: session.user_agent }
}

export interface AdminSessionRoutesDeps {
  clock: Clock
  auth: AuthPlugin
  directory: Directory
  sessions: SessionService
  audit: AdminAudit
}

export function adminSessionRoutes({ clock, auth, directory, sessions, audit }: AdminSessionRoutesDeps) {
  /** The error an actor gets for `username`'s sessions: unknown user 404, a role above its own 403. */
  const refusal = (actor: DirectoryUser, username: string) => {
    const target = directory.findByUsername(username)
    const kind = target ? refusalFor(actor.role, target.role) : ERRORS.notFound
    return kind && { status: kind.status, body: errorBody(kind, unixSeconds(clock)) }
  }
  return new Elysia({ name: 'admin-session-routes' })
    .use(auth)
    .get(
      '/admin/users/:username/sessions',
      async ({ principal: { user: actor }, params: { username }, status }) => {
        const refused = refusal(actor, username)
        if (refused) return status(refused.status as 403, refused.body)
        return { success: true, sessions: (await sessions.list(username)).map(sessionView) }
      },
      { auth: 'admin', params: UserParams },
    )
    .delete(
      '/admin/users/:username/sessions/:sid',
      async ({ principal: { user: actor }, params: { username, sid }, request, status }) => {
        const refused = refusal(actor, username)
        if (refused) return status(refused.status as 403, refused.body)
        const reason = `revoked by admin ${actor.username}`
        if (!(await sessions.end(username, sid, reason))) return status(404, errorBody(ERRORS.notFound, unixSeconds(clock)))
        audit(request, actor, { event: 'SESSION_REVOKED', user: username, sid, reason })
        return { success: true, message: 'Session ended' }
      },
      { auth: 'admin', params: UserSessionParams },
    )
    .delete(
      '/admin/users/:username/sessions',
      async ({ principal: { user: actor }, params: { username }, request, status }) => {
        const refused = refusal(actor, username)
        if (refused) return status(refused.status as 403, refused.body)
        const ended = await sessions.endAll(username, `revoked by admin ${actor.username}`)
        audit(request, actor, { event: 'SESSION_REVOKED', user: username, reason: `revoked by admin: ${ended} sessions` })
        return { success: true, message: 'Sessions ended', sessions_ended: ended }
      },
      { auth: 'admin', params: UserParams },
    )
}
