/**
 * The shapes of `history` and `calls` (README "Call history"): their query strings as validated,
 * and their answers as valibot schemas, for documentation and tests.
 */
import * as v from 'valibot'
import type { LegPosition } from './cdr-reader'

export const MAX_CALLS_LIMIT = 500
export const DEFAULT_CALLS_LIMIT = 100
export const MAX_RANGE_DAYS = 31

const DATE_MESSAGE = 'must be a date YYYY-MM-DD'
const LIMIT_MESSAGE = `must be an integer from 1 to ${MAX_CALLS_LIMIT}`
const CURSOR_MESSAGE = 'must be a next_cursor from an earlier answer'

/** YYYY-MM-DD that is a real calendar day. */
export const CalendarDate = v.pipe(v.string(DATE_MESSAGE), v.isoDate(DATE_MESSAGE), v.check(isCalendarDay, DATE_MESSAGE))

/** Rejects 2026-02-30, which the ISO pattern allows. valibot runs the whole pipe, so any text can reach here. */
function isCalendarDay(text: string): boolean {
  const day = new Date(`${text}T00:00:00Z`)
  return !Number.isNaN(day.getTime()) && day.toISOString().startsWith(text)
}

const Limit = v.pipe(
  v.string(LIMIT_MESSAGE),
  v.regex(/^\d{1,4}$/, LIMIT_MESSAGE),
  v.transform(Number),
  v.minValue(1, LIMIT_MESSAGE),
  v.maxValue(MAX_CALLS_LIMIT, LIMIT_MESSAGE),
)

/** Opaque to clients: base64url of `[start, id]` of the last call's latest own leg. */
export function encodeCursor(position: LegPosition): string {
  return Buffer.from(JSON.stringify([position.start, position.id])).toString('base64url')
}

export function decodeCursor(text: string): LegPosition | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return null
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'))
  } catch {
    return null
  }
  if (!Array.isArray(value) || value.length !== 2) return null
  const [start, id] = value as unknown[]
  if (typeof start !== 'string' || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$/.test(start)) return null
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return null
  return { start, id }
}

const Cursor = v.pipe(
  v.string(CURSOR_MESSAGE),
  v.check((text) => decodeCursor(text) !== null, CURSOR_MESSAGE),
  v.transform((text) => decodeCursor(text)!),
)

export const HistoryQuery = v.object({ date: v.optional(CalendarDate) })

export const CallsQuery = v.object({
  from: v.optional(CalendarDate),
  to: v.optional(CalendarDate),
  limit: v.optional(Limit),
  cursor: v.optional(Cursor),
})

export const HistorySourceSchema = v.picklist(['cdr', 'none', 'unsupported_schema'])

/** CDR times are the PBX's local time as MikoPBX writes them: `YYYY-MM-DD HH:MM:SS.mmm`. */
const LocalTime = v.string()

export const LegSchema = v.object({
  id: v.number(),
  start: LocalTime,
  answer: v.nullable(LocalTime),
  end: v.nullable(LocalTime),
  src_num: v.string(),
  dst_num: v.string(),
  src_name: v.nullable(v.string()),
  dst_name: v.nullable(v.string()),
  disposition: v.string(),
  duration: v.number(),
  billsec: v.number(),
  transferred: v.boolean(),
  recording_url: v.nullable(v.string()),
})

export const CallSchema = v.object({
  id: v.string(),
  direction: v.picklist(['inner', 'incoming', 'outgoing', 'missed']),
  other_party: v.string(),
  other_party_name: v.nullable(v.string()),
  start: LocalTime,
  answer: v.nullable(LocalTime),
  end: v.nullable(LocalTime),
  duration: v.number(),
  billsec: v.number(),
  disposition: v.string(),
  legs: v.array(LegSchema),
})

export const HistoryResponse = v.object({
  success: v.literal(true),
  user: v.object({
    id: v.number(),
    username: v.string(),
    role: v.string(),
    display_name: v.string(),
    mobile: v.string(),
  }),
  history: v.array(CallSchema),
  history_source: HistorySourceSchema,
})

export const CallsResponse = v.object({
  success: v.literal(true),
  calls: v.array(CallSchema),
  next_cursor: v.nullable(v.string()),
  history_source: HistorySourceSchema,
})
