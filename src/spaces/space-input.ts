/** What a space's domain and expiry may be, for the CLI and the admin routes alike (README "Spaces"). */
import * as v from 'valibot'

/** A host name as SIP URIs carry it (RFC 3261 §25.1 `hostname`), in lower case: labels of letters, digits and inner dashes. */
const DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/

export const DOMAIN_RULE = 'a host name: 1-253 characters, dot-separated labels of a-z 0-9 and inner dashes'

/** Domains compare case-insensitively (RFC 3261 §19.1.4), so they are kept in lower case. */
export function normalizeDomain(text: string): string | null {
  const domain = text.toLowerCase()
  return DOMAIN.test(domain) ? domain : null
}

/**
 * An ISO 8601 date (`2027-01-31`, midnight UTC) or date and time with a zone (`2027-01-31T18:00:00Z`,
 * `…+03:00`), as unix seconds; null for anything else, including dates that don't exist (`02-30`).
 */
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|([+-])(\d{2}):(\d{2})))?$/

export const INSTANT_RULE = 'an ISO 8601 date (2027-01-31) or date and time with a zone (2027-01-31T18:00:00Z)'

export function parseInstant(text: string): number | null {
  const match = INSTANT.exec(text)
  if (!match) return null
  const [, year, month, day, hour = '0', minute = '0', second = '0', , sign, offsetHours = '0', offsetMinutes = '0'] = match
  const parts = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number]
  const local = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2], parts[3], parts[4], parts[5]))
  const roundTrips =
    local.getUTCFullYear() === parts[0] && local.getUTCMonth() === parts[1] - 1 && local.getUTCDate() === parts[2] &&
    local.getUTCHours() === parts[3] && local.getUTCMinutes() === parts[4] && local.getUTCSeconds() === parts[5]
  if (!roundTrips || Number(offsetHours) > 23 || Number(offsetMinutes) > 59) return null
  const offsetSeconds = (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60) * (sign === '-' ? -1 : 1)
  return local.getTime() / 1000 - offsetSeconds
}

export const isoOf = (seconds: number): string => new Date(seconds * 1000).toISOString()

export const DomainSchema = v.pipe(v.string('must be a string'), v.check((text) => normalizeDomain(text) !== null, `must be ${DOMAIN_RULE}`))
export const ExpirySchema = v.nullable(v.pipe(v.string('must be a string or null'), v.check((text) => parseInstant(text) !== null, `must be ${INSTANT_RULE}`)))
