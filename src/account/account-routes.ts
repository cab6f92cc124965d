/** `profile`, `users`, `history` (README "Walkthrough with curl"): what a logged-in softphone user sees of itself. */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { Clock } from '../clock'
import type { AuthPlugin } from '../auth/auth-plugin'
import { ROLES, type DirectoryUser } from '../directory/directory'
import { localDate, type CallHistory } from '../history/call-history'
import { ErrorEnvelope } from '../http/envelope-schema'
import { HistoryQuery, HistoryResponse, MAX_CALLS_LIMIT } from '../history/history-schemas'
import { jsonResponses } from '../openapi/responses'

function profileView(user: DirectoryUser) {
  return { id: user.id, username: user.username, role: user.role, display_name: user.displayName }
}

/** `profile`'s answer, for the OpenAPI document (README "OpenAPI"). */
const ProfileResponse = v.object({
  success: v.literal(true),
  user: v.object({ id: v.number(), username: v.string(), role: v.picklist(ROLES), display_name: v.string() }),
})

export interface AccountRoutesDeps {
  clock: Clock
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  /** The last `users-state` snapshot, or null until presence publishes one. */
  /** The users-state snapshot this user may see, or null. */
  lastUsersState: (user: DirectoryUser) => unknown
  history: CallHistory
}

export function accountRoutes({ clock, auth, lastUsersState, history }: AccountRoutesDeps) {
  return new Elysia({ name: 'account-routes' })
    .use(auth)
    .get('/profile', ({ principal }) => ({ success: true, user: profileView(principal.user) }), {
      auth: 'user',
      detail: { responses: jsonResponses({ 200: ProfileResponse }) },
    })
    .get(
      '/users',
      // The one-element array is how the legacy module wrapped it; apps index [0].
      ({ principal }) => ({ success: true, user: profileView(principal.user), statuses: [lastUsersState(principal.user) ?? null] }),
      { auth: 'user' },
    )
    .get(
      '/history',
      // One day's calls (today without `date`), newest first, at most one page of `calls`
      // (README "Call history"); an empty list and the marker when there is no CDR file.
      ({ principal, query }) => {
        const day = query.date ?? localDate(clock.now())
        const page = history.page(principal.user, { from: day, to: day }, MAX_CALLS_LIMIT, null)
        return {
          success: true,
          user: { ...profileView(principal.user), mobile: principal.user.mobile },
          history: page.calls,
          history_source: page.source,
        }
      },
      { auth: 'user', query: HistoryQuery, detail: { responses: jsonResponses({ 200: HistoryResponse, 503: ErrorEnvelope }) } },
    )
}
