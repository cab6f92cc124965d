/** When an admin-made key expires (README "API keys"): an ISO 8601 date or date-time, or (CLI) a number of days. */

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/
const DAYS = /^[1-9]\d{0,4}$/

/** Unix seconds of an ISO 8601 date (midnight UTC) or date-time with its offset, or null. */
export function isoInstant(text: string): number | null {
  if (!ISO_INSTANT.test(text)) return null
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000)
}

/** `--expires`: days from `now` (1 to 99999), or an ISO instant; null if it is neither. */
export function expiryOf(text: string, now: number): number | null {
  return DAYS.test(text) ? now + Number(text) * 86400 : isoInstant(text)
}
