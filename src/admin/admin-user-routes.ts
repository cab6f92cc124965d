/**
 * `admin/users…` (README "Admin API"): users of the embedded directory, for admins. An admin acts
 * only on users at or below its own role, never creates or promotes above it, and the last enabled
 * superadmin can't be removed, disabled or demoted. With MikoPBX's directory, which is read-only
 * here, every one of these routes answers 409.
 */
import { Elysia } from 'elysia'
import type { AuthPlugin } from '../auth/auth-plugin'
import { roleAtLeast } from '../auth/route-access'
import { unixSeconds, type Clock } from '../clock'
import type { DirectoryUser, Role } from '../directory/directory'
import { LastSuperadminError, UserExistsError, type EmbeddedDirectory, type PreparedPassword } from '../directory/embedded'
import { ERRORS, errorBody, type ErrorKind } from '../http/errors'
import { parseJsonBody } from '../http/json-body'
import type { SessionService } from '../sessions/sessions'
import { ADMIN_BODY_LIMITS, NewUserBody, UserChangeBody, UserListQuery, UserParams } from './admin-schemas'
import type { AdminAudit } from './admin-audit'

export function userView(user: DirectoryUser) {
  return {
    id: user.id,
    username: user.username,
    display_name: user.displayName,
    role: user.role,
    mobile: user.mobile,
    disabled: user.disabled,
  }
}

export interface AdminUserRoutesDeps {
  clock: Clock
  auth: AuthPlugin
  /** The embedded directory; null with MikoPBX's. */
  users: EmbeddedDirectory | null
  /** Told after every change, so cached lookups (directory/cached.ts) see it at once. */
  usersChanged: () => void
  sessions: SessionService
  audit: AdminAudit
}

type Refusal = { refused: ErrorKind; extra?: Record<string, unknown> }

/** Why `actor` may not act on `target`, or may not give it `role`; null when it may. */
export function refusalFor(actor: Role, target: Role | null, role?: Role): ErrorKind | null {
  if (target !== null && !roleAtLeast(actor, target)) return ERRORS.roleAboveOwn
  if (role !== undefined && !roleAtLeast(actor, role)) return ERRORS.roleAboveOwn
  return null
}

export function adminUserRoutes({ clock, auth, users, usersChanged, sessions, audit }: AdminUserRoutesDeps) {
  const fail = (kind: ErrorKind, extra?: Record<string, unknown>) => ({ refused: kind, extra }) as Refusal
  const answer = <T>(status: (code: number, body: unknown) => T, outcome: Refusal) =>
    status(outcome.refused.status, errorBody(outcome.refused, unixSeconds(clock), outcome.extra))
  const isRefusal = (value: unknown): value is Refusal => typeof value === 'object' && value !== null && 'refused' in value

  /** The embedded directory and the target user, or why there is none. */
  const targetOf = (username: string): { directory: EmbeddedDirectory; user: DirectoryUser } | Refusal => {
    if (!users) return fail(ERRORS.directoryReadOnly)
    const user = users.findByUsername(username)
    return user ? { directory: users, user } : fail(ERRORS.notFound)
  }

  /** The target, when the actor may act on it (and give it `role`). */
  const manageable = (actor: DirectoryUser, username: string, role?: Role) => {
    const target = targetOf(username)
    if (isRefusal(target)) return target
    const refused = refusalFor(actor.role, target.user.role, role)
    return refused ? fail(refused) : target
  }

  const passwordRefusal = (directory: EmbeddedDirectory, password: string | undefined): Refusal | null => {
    const problem = password === undefined ? null : directory.passwordProblem(password)
    return problem ? fail(ERRORS.validationFailed, { errors: { password: [problem] } }) : null
  }

  const lastSuperadmin = (error: unknown): Refusal => {
    if (error instanceof LastSuperadminError) return fail(ERRORS.lastSuperadmin)
    throw error
  }

  return new Elysia({ name: 'admin-user-routes' })
    .use(auth)
    .get(
      '/admin/users',
      ({ query: { page, per_page, search }, status }) => {
        if (!users) return answer(status, fail(ERRORS.directoryReadOnly))
        const found = users.page({ offset: (page - 1) * per_page, limit: per_page, search })
        return { success: true, users: found.users.map(userView), page, per_page, total: found.total }
      },
      { auth: 'admin', query: UserListQuery },
    )
    .get(
      '/admin/users/:username',
      ({ params: { username }, status }) => {
        const target = targetOf(username)
        if (isRefusal(target)) return answer(status, target)
        return { success: true, user: userView(target.user) }
      },
      { auth: 'admin', params: UserParams },
    )
    .post(
      '/admin/users',
      async ({ principal: { user: actor }, body, request, status }) => {
        if (!users) return answer(status, fail(ERRORS.directoryReadOnly))
        const role = body.role ?? 'user'
        const refused = refusalFor(actor.role, null, role)
        if (refused) return answer(status, fail(refused))
        const badPassword = passwordRefusal(users, body.password)
        if (badPassword) return answer(status, badPassword)
        if (users.findByUsername(body.username)) return answer(status, fail(ERRORS.userExists))
        let created: DirectoryUser
        try {
          created = await users.add({ username: body.username, password: body.password, displayName: body.display_name ?? '', role, mobile: body.mobile ?? '' })
        } catch (error) {
          if (error instanceof UserExistsError) return answer(status, fail(ERRORS.userExists))
          throw error
        }
        usersChanged()
        audit(request, actor, { event: 'USER_ADDED', user: created.username, reason: `role ${role}` })
        return status(201, { success: true, user: userView(created) })
      },
      { auth: 'admin', parse: parseJsonBody(ADMIN_BODY_LIMITS, NewUserBody), body: NewUserBody },
    )
    .patch(
      '/admin/users/:username',
      async ({ principal: { user: actor }, params: { username }, body, request, status }) => {
        const checked = manageable(actor, username, body.role)
        if (isRefusal(checked)) return answer(status, checked)
        const badPassword = passwordRefusal(checked.directory, body.password)
        if (badPassword) return answer(status, badPassword)
        let password: PreparedPassword | undefined
        if (body.password !== undefined) {
          password = await checked.directory.preparePassword(username, body.password)
          // The hash took a while: the target may have changed meanwhile, so the rules run again.
          const again = manageable(actor, username, body.role)
          if (isRefusal(again)) return answer(status, again)
        }
        const before = checked.directory.findByUsername(username)!
        let updated: DirectoryUser
        try {
          updated = checked.directory.change(username, { displayName: body.display_name, role: body.role, mobile: body.mobile, password })
        } catch (error) {
          return answer(status, lastSuperadmin(error))
        }
        usersChanged()
        // A password an admin sets replaces one that may be known to someone else: its logins end with it.
        const sessionsEnded = password ? await sessions.endAll(username, `password set by admin ${actor.username}`) : 0
        const changed = profileChanges(before, body)
        if (changed) audit(request, actor, { event: 'USER_UPDATED', user: username, reason: changed })
        if (password) audit(request, actor, { event: 'USER_PASSWORD_CHANGED', user: username, reason: `${sessionsEnded} sessions ended` })
        return { success: true, user: userView(updated), sessions_ended: sessionsEnded }
      },
      { auth: 'admin', params: UserParams, parse: parseJsonBody(ADMIN_BODY_LIMITS, UserChangeBody), body: UserChangeBody },
    )
    .post(
      '/admin/users/:username/disable',
      async ({ principal: { user: actor }, params: { username }, request, status }) => {
        const checked = manageable(actor, username)
        if (isRefusal(checked)) return answer(status, checked)
        let updated: DirectoryUser
        try {
          updated = checked.directory.change(username, { disabled: true })
        } catch (error) {
          return answer(status, lastSuperadmin(error))
        }
        usersChanged()
        const ended = await sessions.endAll(username, `disabled by admin ${actor.username}`)
        audit(request, actor, { event: 'USER_DISABLED', user: username, reason: `${ended} sessions ended` })
        return { success: true, user: userView(updated), sessions_ended: ended }
      },
      { auth: 'admin', params: UserParams },
    )
    .post(
      '/admin/users/:username/enable',
      ({ principal: { user: actor }, params: { username }, request, status }) => {
        const checked = manageable(actor, username)
        if (isRefusal(checked)) return answer(status, checked)
        const updated = checked.directory.change(username, { disabled: false })
        usersChanged()
        audit(request, actor, { event: 'USER_ENABLED', user: username })
        return { success: true, user: userView(updated) }
      },
      { auth: 'admin', params: UserParams },
    )
    .delete(
      '/admin/users/:username',
      async ({ principal: { user: actor }, params: { username }, request, status }) => {
        const checked = manageable(actor, username)
        if (isRefusal(checked)) return answer(status, checked)
        try {
          checked.directory.removeKeepingASuperadmin(username)
        } catch (error) {
          return answer(status, lastSuperadmin(error))
        }
        usersChanged()
        // Sessions live in the state store, which may be Redis (README "Several nodes"), so they end
        // after the commit: a removed or disabled user's tokens are refused by the directory check
        // meanwhile. Should this step fail (503), repeating the request ends them.
        const ended = await sessions.endAll(username, `removed by admin ${actor.username}`)
        audit(request, actor, { event: 'USER_REMOVED', user: username, reason: `${ended} sessions ended` })
        return { success: true, message: 'User removed', sessions_ended: ended }
      },
      { auth: 'admin', params: UserParams },
    )
}

/** The profile fields a change touched, for the log: names only, and the role's old and new value. */
function profileChanges(before: DirectoryUser, body: { display_name?: string; role?: Role; mobile?: string }): string {
  const changed: string[] = []
  if (body.display_name !== undefined) changed.push('display_name')
  if (body.mobile !== undefined) changed.push('mobile')
  if (body.role !== undefined) changed.push(`role ${before.role}->${body.role}`)
  return changed.join(', ')
}
