/**
 * Finds the one bearer token a request carries (RFC 6750 §2): Authorization header, query parameter
 * (`authorization` or `token`) or the `access_token` cookie. More than one, a repeated parameter, or a
 * header that isn't exactly `Bearer <b64token>` is malformed, never guessed at.
 */
export type FoundCredential = { kind: 'none' } | { kind: 'malformed' } | { kind: 'token'; token: string }

export interface CredentialSources {
  authorization?: string | null
  /** Raw query string, without the leading `?`. */
  query?: string | null
  cookie?: string | null
}

const TOKEN_COOKIE = 'access_token'
const QUERY_NAMES = ['authorization', 'token'] as const
/** RFC 6750 §2.1 b64token. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
const NONE: FoundCredential = { kind: 'none' }
const MALFORMED: FoundCredential = { kind: 'malformed' }

export function findBearerToken(sources: CredentialSources): FoundCredential {
  const found: string[] = []
  if (sources.authorization != null) {
    const token = parseAuthorization(sources.authorization)
    if (token === null) return MALFORMED
    found.push(token)
  }
  if (sources.query && !collectQuery(sources.query, found)) return MALFORMED
  if (sources.cookie && !collectCookie(sources.cookie, found)) return MALFORMED
  if (found.length === 0) return NONE
  if (found.length > 1) return MALFORMED
  return { kind: 'token', token: found[0]! }
}

/** The query string of an absolute path like nginx's `X-Original-URI`, or null. */
export function queryOf(uri: string | null | undefined): string | null {
  if (!uri) return null
  const start = uri.indexOf('?')
  return start === -1 ? null : uri.slice(start + 1)
}

function parseAuthorization(header: string): string | null {
  // The scheme is case-insensitive (RFC 9110 §11.1); exactly one space separates it from the token.
  if (header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ') return null
  const token = header.slice(7)
  return B64TOKEN.test(token) ? token : null
}

/**
 * Names are compared as sent, not percent-decoded: `%61uthorization=` is not `authorization=`, so the
 * nginx log mask (which sees raw names) and this parser always agree on what carries a token.
 */
function collectQuery(query: string, found: string[]): boolean {
  const seen = new Set<string>()
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=')
    const name = eq === -1 ? pair : pair.slice(0, eq)
    if (!(QUERY_NAMES as readonly string[]).includes(name)) continue
    if (seen.has(name) || eq === -1 || eq === pair.length - 1) return false
    seen.add(name)
    const value = decodeQueryValue(pair.slice(eq + 1))
    if (value === null) return false
    found.push(value)
  }
  return true
}

function decodeQueryValue(text: string): string | null {
  try {
    return decodeURIComponent(text)
  } catch {
    return null
  }
}

function collectCookie(header: string, found: string[]): boolean {
  let seen = false
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1 || pair.slice(0, eq).trim() !== TOKEN_COOKIE) continue
    const value = pair.slice(eq + 1).trim()
    if (seen || value === '') return false
    seen = true
    found.push(value)
  }
  return true
}
