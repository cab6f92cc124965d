/**
 * A user's calls from the CDR legs (README "Call history"): legs grouped by linkedid, seen from the
 * user's side, newest first, in pages whose cursor stays valid while new calls arrive.
 */
import type { DirectoryUser } from '../directory/directory'
import { MAX_PARTY_NUMBERS, type CdrLeg, type CdrReader, type CdrSource, type HistorySource, type LegPlan, type LegPosition } from './cdr-reader'
import { callLegSpans, type LegSpan } from './cdr-time'
import { recordingUrl } from './recordings'

export type Direction = 'inner' | 'incoming' | 'outgoing' | 'missed'

export interface LegView {
  id: number
  start: string
  answer: string | null
  end: string | null
  src_num: string
  dst_num: string
  src_name: string | null
  dst_name: string | null
  disposition: string
  duration: number
  billsec: number
  transferred: boolean
  recording_url: string | null
}

export interface CallView {
  id: string
  direction: Direction
  other_party: string
  other_party_name: string | null
  start: string
  answer: string | null
  end: string | null
  duration: number
  billsec: number
  disposition: string
  legs: LegView[]
}

export interface CallRange {
  /** First day, YYYY-MM-DD, local time as the CDR stores it. */
  from: string
  /** Last day, included. */
  to: string
}

export interface CallPage {
  source: HistorySource
  calls: CallView[]
  /** Where the next page starts, or null when no call is left in the range. */
  next: LegPosition | null
}

/** Own legs read per step while collecting a page; a call usually has one to three. */
const SCAN_STEP = 256

/**
 * How a mobile's last 10 digits appear in CDRs: alone, or after a trunk's prefix. Matched exactly,
 * so the number indexes serve them (README "Call history").
 */
export const MOBILE_PREFIXES = ['', '7', '8', '+7', '1', '+1'] as const

/** The numbers a user's calls carry: extension, `<ext>-WS` WebRTC peer, and its mobile's forms. */
export function partyNumbersOf(user: DirectoryUser): string[] {
  const mobile = user.mobile.replace(/\D/g, '').slice(-10)
  const numbers = [user.username, `${user.username}-WS`, ...(mobile ? MOBILE_PREFIXES.map((prefix) => prefix + mobile) : [])]
  return numbers.slice(0, MAX_PARTY_NUMBERS)
}

export class CallHistory {
  /** `isExtension`: whether a number (without `-WS`) is an internal extension, for `inner` calls. */
  constructor(
    private readonly source: CdrSource,
    private readonly isExtension: (number: string) => boolean,
  ) {}

  /** Up to `limit` of the user's calls in the range, newest first, before `cursor` when given. */
  page(user: DirectoryUser, range: CallRange, limit: number, cursor: LegPosition | null): CallPage {
    this.source.followReplacement()
    const opening = this.source.open()
    if (opening.source !== 'cdr') return { source: opening.source, calls: [], next: null }
    const numbers = partyNumbersOf(user)
    const isOwn = ownNumberTest(numbers)
    const from = `${range.from} 00:00:00`
    const end = { start: `${dayAfter(range.to)} 00:00:00`, id: 0 }
    const before = cursor && compare(cursor, end) < 0 ? cursor : end
    const plan = opening.reader.plan(numbers, from, end.start)
    const calls: CallView[] = []
    let last: LegPosition | null = null
    for (const { legs, key } of this.callsBefore(opening.reader, plan, numbers, from, before)) {
      // One call beyond the page tells whether a next page exists, so the last page says so.
      if (calls.length === limit) return { source: 'cdr', calls, next: last }
      calls.push(this.callView(legs, isOwn))
      last = key
    }
    return { source: 'cdr', calls, next: null }
  }

  /**
   * The user's calls placed before `before`, newest first, each with all its legs. A call is placed
   * by its latest own leg, so one with a leg at or after `before` was on an earlier page.
   */
  private *callsBefore(reader: CdrReader, plan: LegPlan, numbers: string[], from: string, before: LegPosition) {
    const isOwn = ownNumberTest(numbers)
    const seen = new Set<string>()
    let position = before
    for (;;) {
      const own = reader.ownLegsBefore(plan, numbers, from, position, SCAN_STEP)
      for (const leg of own) {
        position = leg
        if (seen.has(leg.call)) continue
        seen.add(leg.call)
        const legs = reader.legsOf(leg.call)
        const key = latestOwnLeg(legs, isOwn)
        if (key && compare(key, before) < 0) yield { legs, key }
      }
      if (own.length < SCAN_STEP) return
    }
  }

  private callView(textOrder: CdrLeg[], isOwn: (number: string | null) => boolean): CallView {
    const { legs, spans } = inTimeOrder(textOrder)
    const own = legs.filter((leg) => isOwn(leg.src_num) || isOwn(leg.dst_num))
    const first = own[0]!
    const outbound = isOwn(first.src_num)
    const other = outbound ? first.dst_num : first.src_num
    const otherName = outbound ? first.dst_name : first.src_name
    const answered = own.some((leg) => leg.disposition === 'ANSWERED')
    const internal = this.isExtension(stripPeer(other ?? ''))
    const last = lastToEnd(legs, spans)
    return {
      id: first.linkedid || `id:${first.id}`,
      direction: outbound ? (internal ? 'inner' : 'outgoing') : !answered ? 'missed' : internal ? 'inner' : 'incoming',
      other_party: other ?? '',
      other_party_name: otherName || null,
      start: legs[0]!.start,
      answer: own.find((leg) => leg.answer)?.answer ?? null,
      end: last ? last.leg.endtime : null,
      duration: last ? wholeSeconds(last.span.end - spans[0]!.start) : 0,
      billsec: own.reduce((sum, leg) => sum + Number(leg.billsec ?? 0), 0),
      disposition: answered ? 'ANSWERED' : (own.at(-1)!.disposition ?? ''),
      legs: legs.map(legView),
    }
  }
}

const ownNumberTest =
  (numbers: readonly string[]) =>
  (number: string | null): boolean =>
    number !== null && numbers.includes(number)

function latestOwnLeg(legs: CdrLeg[], isOwn: (number: string | null) => boolean): LegPosition | null {
  let latest: LegPosition | null = null
  for (const leg of legs) {
    const own = isOwn(leg.src_num) || isOwn(leg.dst_num)
    if (own && (!latest || compare(leg, latest) > 0)) latest = { start: leg.start, id: leg.id }
  }
  return latest
}

function legView(leg: CdrLeg): LegView {
  return {
    id: leg.id,
    start: leg.start,
    answer: leg.answer || null,
    end: leg.endtime || null,
    src_num: leg.src_num ?? '',
    dst_num: leg.dst_num ?? '',
    src_name: leg.src_name || null,
    dst_name: leg.dst_name || null,
    disposition: leg.disposition ?? '',
    duration: Number(leg.duration ?? 0),
    billsec: Number(leg.billsec ?? 0),
    transferred: Number(leg.transfer ?? 0) === 1 || Number(leg.a_transfer ?? 0) === 1,
    recording_url: recordingUrl(leg.recordingfile),
  }
}

/**
 * (start, id) order, the order pages follow and the SQL reads. CDR times are fixed-width text, so
 * text order is time order, except in the hour that repeats when clocks go back (README "Call history").
 */
export function compare(a: LegPosition, b: LegPosition): number {
  return a.start < b.start ? -1 : a.start > b.start ? 1 : a.id - b.id
}

const stripPeer = (number: string): string => number.replace(/-WS$/, '')

/**
 * A call's legs by when they started. Text order is time order except in the hour that repeats
 * when clocks go back, where a leg of the second pass reads earlier than one of the first.
 */
function inTimeOrder(textOrder: CdrLeg[]): { legs: CdrLeg[]; spans: LegSpan[] } {
  const spans = callLegSpans(textOrder)
  const timed = textOrder.map((leg, i) => ({ leg, span: spans[i]!, i }))
  // A leg whose start is no time goes first; ties keep the text order.
  const key = ({ span }: { span: LegSpan }) => (Number.isFinite(span.start) ? span.start : -Infinity)
  timed.sort((a, b) => key(a) - key(b) || a.i - b.i)
  return { legs: timed.map(({ leg }) => leg), spans: timed.map(({ span }) => span) }
}

/** The leg that ended last, of those with an `endtime`; null while none has one. */
function lastToEnd(legs: CdrLeg[], spans: LegSpan[]): { leg: CdrLeg; span: LegSpan } | null {
  let last: { leg: CdrLeg; span: LegSpan } | null = null
  for (const [i, leg] of legs.entries()) {
    const span = spans[i]!
    if (leg.endtime && Number.isFinite(span.end) && (!last || span.end > last.span.end)) last = { leg, span }
  }
  return last
}

const wholeSeconds = (ms: number): number => (Number.isFinite(ms) && ms > 0 ? Math.round(ms / 1000) : 0)

/** The calendar day after YYYY-MM-DD. */
export function dayAfter(date: string): string {
  return addDays(date, 1)
}

export function addDays(date: string, days: number): string {
  const day = new Date(`${date}T00:00:00Z`)
  day.setUTCDate(day.getUTCDate() + days)
  return day.toISOString().slice(0, 10)
}

/** Today's date on the PBX's local clock, which is how MikoPBX writes CDR times. */
export function localDate(ms: number): string {
  const now = new Date(ms)
  const pad = (value: number) => String(value).padStart(2, '0')
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`
}
