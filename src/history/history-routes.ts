/** `calls`: the user's call history in pages (README "Call history"). */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { AuthPlugin } from '../auth/auth-plugin'
import type { Clock } from '../clock'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, HttpError } from '../http/errors'
import { jsonResponses } from '../openapi/responses'
import { addDays, localDate, type CallHistory, type CallRange } from './call-history'
import { CallsQuery, CallsResponse, DEFAULT_CALLS_LIMIT, encodeCursor, MAX_RANGE_DAYS } from './history-schemas'

export interface HistoryRoutesDeps {
  clock: Clock
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  history: CallHistory
}

type CallsQueryValue = v.InferOutput<typeof CallsQuery>

export function historyRoutes({ clock, auth, history }: HistoryRoutesDeps) {
  return new Elysia({ name: 'history-routes' })
    .use(auth)
    .get(
      '/calls',
      ({ principal, query }) => {
        const range = rangeOf(query, localDate(clock.now()))
        const page = history.page(principal.user, range, query.limit ?? DEFAULT_CALLS_LIMIT, query.cursor ?? null)
        return { success: true, calls: page.calls, next_cursor: page.next && encodeCursor(page.next), history_source: page.source }
      },
      { auth: 'user', query: CallsQuery, detail: { responses: jsonResponses({ 200: CallsResponse, 503: ErrorEnvelope }) } },
    )
}

/**
 * `to` defaults to today, `from` to 30 days before `to`; both days are included. Only a given
 * `from` can make the range reversed or too long, so `from` is the field named.
 */
export function rangeOf(query: Pick<CallsQueryValue, 'from' | 'to'>, today: string): CallRange {
  const to = query.to ?? today
  const from = query.from ?? addDays(to, -(MAX_RANGE_DAYS - 1))
  if (from > to) throw fromError('must not be after to')
  if (addDays(from, MAX_RANGE_DAYS - 1) < to) throw fromError(`must be at most ${MAX_RANGE_DAYS - 1} days before to`)
  return { from, to }
}

const fromError = (message: string): HttpError => new HttpError(ERRORS.validationFailed, { errors: { from: [message] } })
