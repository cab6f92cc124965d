/** `profile`, `users`, `history` (README "Walkthrough with curl"): what a logged-in softphone user sees of itself. */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { Clock } from '../clock'
import { authPlugin } from '../auth/auth-plugin'
import type { AccessGuard } from '../auth/access-guard'
import type { DirectoryUser } from '../directory/directory'

/** YYYY-MM-DD that is a real calendar day. */
const CalendarDate = v.pipe(
  v.string('must be a date YYYY-MM-DD'),
  v.isoDate('must be a date YYYY-MM-DD'),
  v.check(isCalendarDay, 'must be a date YYYY-MM-DD'),
)
/** Rejects 2026-02-30, which the ISO pattern allows. valibot runs the whole pipe, so any text can reach here. */
function isCalendarDay(text: string): boolean {
  const day = new Date(`${text}T00:00:00Z`)
  return !Number.isNaN(day.getTime()) && day.toISOString().startsWith(text)
}

const HistoryQuery = v.object({ date: v.optional(CalendarDate) })

function profileView(user: DirectoryUser) {
  return { id: user.id, username: user.username, role: user.role, display_name: user.displayName }
}

export interface AccountRoutesDeps {
  clock: Clock
  guard: AccessGuard
  /** The last `users-state` snapshot, or null until presence publishes one. */
  lastUsersState: () => unknown
}

export function accountRoutes({ clock, guard, lastUsersState }: AccountRoutesDeps) {
  return new Elysia({ name: 'account-routes' })
    .use(authPlugin({ guard, clock }))
    .get('/profile', ({ principal }) => ({ success: true, user: profileView(principal.user) }), { auth: 'access' })
    .get(
      '/users',
      // The one-element array is how the legacy module wrapped it; apps index [0].
      ({ principal }) => ({ success: true, user: profileView(principal.user), statuses: [lastUsersState() ?? null] }),
      { auth: 'access' },
    )
    .get(
      '/history',
      // No call-history source exists yet, so the list is empty, as the PHP module's was without one
      // (test/unit/protected-routes.test.ts).
      ({ principal }) => ({ success: true, user: { ...profileView(principal.user), mobile: principal.user.mobile }, history: [] }),
      { auth: 'access', query: HistoryQuery },
    )
}
