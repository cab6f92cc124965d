/**
 * CDR times as instants (README "Call history"): MikoPBX writes them as local-time text in the
 * PBX's zone, which is the process's zone (MikoPBX sets the system's; Bun honours TZ).
 */
import type { CdrLeg } from './cdr-reader'

const MS_PER_DAY = 86_400_000
const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/

/** A leg's start and end as milliseconds since the epoch. */
export interface LegSpan {
  start: number
  end: number
}

/**
 * Every instant `local` names in the process's zone, earliest first: one, or two in the hour that
 * repeats when clocks go back. A time in the hour skipped when clocks go forward names none, so it
 * is shifted forward by the jump (02:30 on a day that skips 02:00-02:59 is read as 03:30), which is
 * what `new Date(y, m, d, …)` does. Empty for text that is no time.
 */
export function localInstants(local: string): number[] {
  const wall = wallClockMs(local)
  if (wall === null) return []
  // A zone's offset changes at most once within a day either side, so these are all it can be.
  const offsets = new Set([wall - MS_PER_DAY, wall, wall + MS_PER_DAY].map(offsetMsAt))
  const instants = [...offsets].map((offset) => wall + offset).filter((instant) => instant - offsetMsAt(instant) === wall)
  if (instants.length > 0) return instants.sort((a, b) => a - b)
  // In the gap: read with the offset in force before it, which lands after it.
  return [wall + offsetMsAt(wall - MS_PER_DAY)]
}

/** The local text's fields read as if they were UTC, or null when it is no time. */
function wallClockMs(local: string): number | null {
  const match = LOCAL_TIME.exec(local)
  if (!match) return null
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const ms = Number((match[7] ?? '0').padEnd(3, '0').slice(0, 3))
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, ms)
  return Number.isNaN(wall) ? null : wall
}

/** UTC minus local time at `instant`, in milliseconds (getTimezoneOffset's sign). */
const offsetMsAt = (instant: number): number => new Date(instant).getTimezoneOffset() * 60_000

/**
 * When each leg of one call started and ended. A leg that fits both passes of the repeated hour
 * equally (it lies wholly inside it) is placed nearest the call's other legs, which overlap or
 * follow each other; when no leg of the call is certain, in the earlier pass.
 */
export function callLegSpans(legs: readonly LegTimes[]): LegSpan[] {
  const readings = legs.map(legReadings)
  const certain = readings.filter((each) => each.length === 1).map((each) => each[0]!)
  return readings.map((each) => (each.length === 0 ? UNKNOWN : certain.length === 0 ? each[0]! : nearest(each, certain)))
}

export type LegTimes = Pick<CdrLeg, 'start' | 'endtime' | 'duration'>

/** A leg whose start is no time: it sorts nowhere in particular and lasts nothing. */
const UNKNOWN: LegSpan = { start: Number.NaN, end: Number.NaN }

/**
 * The readings of a leg that fit it best, earliest first. Asterisk's `duration` is the leg's real
 * length in seconds, so the end is the start plus it, whatever the clocks did in between; a time
 * in the repeated hour is read in the pass that makes the start and end that far apart (a leg from
 * 02:30 CEST to 03:10 CET lasts 100 minutes, not 40). Two readings remain when both times are in
 * the repeated hour and both passes fit. A leg without a `duration` ends at its `endtime`.
 */
export function legReadings(leg: LegTimes): LegSpan[] {
  const length = lengthMs(leg.duration)
  const starts = localInstants(leg.start)
  const ends = leg.endtime ? localInstants(leg.endtime) : []
  if (ends.length === 0) return starts.map((start) => ({ start, end: start + (length ?? 0) }))
  const pairs = starts.flatMap((start) => ends.map((end) => ({ start, end, miss: missOf(start, end, length) })))
  const fewest = Math.min(...pairs.map(({ miss }) => miss))
  return pairs.filter(({ miss }) => miss === fewest).map(({ start, end }) => ({ start, end: length === null ? end : start + length }))
}

/** How far a start and end pair is from the leg's length; without one, whether it ends after it starts. */
function missOf(start: number, end: number, length: number | null): number {
  if (length === null) return end >= start ? 0 : 1
  return Math.abs(end - start - length)
}

/** Asterisk's `duration` in milliseconds, or null when the column is empty or no length. */
function lengthMs(duration: number | string | null | undefined): number | null {
  const seconds = duration === null || duration === undefined || duration === '' ? Number.NaN : Number(duration)
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : null
}

/** The reading closest to the certain legs (earliest on a tie). */
function nearest(readings: LegSpan[], certain: LegSpan[]): LegSpan {
  const distance = (span: LegSpan) => Math.min(...certain.map((other) => Math.max(0, other.start - span.end, span.start - other.end)))
  return readings.reduce((best, span) => (distance(span) < distance(best) ? span : best))
}
