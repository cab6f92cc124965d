/**
 * Strict parsers for what a Digest request carries: the `Authorization: Digest` credentials
 * (RFC 7616 §3.4) and the `From: sip:<user>@<domain>` header naming who asks (README "HTTP Digest").
 */
import { DigestFromHeaderError, DigestMalformedError, DigestUnsupportedError } from './digest-errors'

export const DIGEST_ALGORITHMS = ['SHA-256', 'MD5'] as const
export type DigestAlgorithm = (typeof DIGEST_ALGORITHMS)[number]

export interface DigestCredentials {
  username: string
  realm: string
  uri: string
  algorithm: DigestAlgorithm
  nonce: string
  opaque: string
  cnonce: string
  /** The 8 hex digits as sent: they enter the response hash verbatim. */
  nc: string
  qop: 'auth'
  /** Lowercase hex. */
  response: string
}

/** Far above any honest header (a few hundred bytes), far below what would cost real work to scan. */
export const MAX_DIGEST_HEADER_LENGTH = 4096

/** RFC 7616 §3.4: these are quoted-strings, the rest tokens. */
const QUOTED = new Set(['username', 'realm', 'uri', 'response', 'nonce', 'opaque', 'cnonce'])
const TOKENS = new Set(['algorithm', 'qop', 'nc', 'userhash'])
const REQUIRED = ['username', 'realm', 'uri', 'response', 'nonce', 'opaque', 'cnonce', 'qop', 'nc'] as const
/** RFC 9110 §5.6.2. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/
const NONCE_COUNT = /^[0-9a-fA-F]{8}$/
const HEX_LENGTH: Record<DigestAlgorithm, number> = { 'SHA-256': 64, MD5: 32 }

interface Param {
  value: string
  quoted: boolean
}

/** Whether an `Authorization` value is Digest's: the scheme, alone (a header field has no trailing space) or followed by a space. */
export function isDigestAuthorization(header: string): boolean {
  return /^digest(?: |$)/i.test(header)
}

export function parseDigestAuthorization(header: string): DigestCredentials {
  if (header.length > MAX_DIGEST_HEADER_LENGTH) throw new DigestMalformedError('header too long')
  const scheme = header.match(/^digest +/i)
  if (!scheme) throw new DigestMalformedError('not the Digest scheme')
  const params = parseParams(header.slice(scheme[0].length))
  checkForms(params)
  return toCredentials(params)
}

/** `#auth-param` (RFC 9110 §11.2): name=token or name=quoted-string, comma-separated, each name once. */
function parseParams(text: string): Map<string, Param> {
  const params = new Map<string, Param>()
  let rest = text
  for (;;) {
    const name = rest.match(TOKEN)?.[0]
    if (!name) throw new DigestMalformedError('expected a parameter name')
    rest = rest.slice(name.length)
    const eq = rest.match(/^[ \t]*=[ \t]*/)
    if (!eq) throw new DigestMalformedError('expected "=" after a parameter name')
    rest = rest.slice(eq[0].length)
    const read = rest.startsWith('"') ? readQuoted(rest) : readToken(rest)
    const key = name.toLowerCase()
    if (params.has(key)) throw new DigestMalformedError(`parameter ${key} repeated`)
    params.set(key, read.param)
    rest = read.rest
    if (rest === '') return params
    const comma = rest.match(/^[ \t]*,[ \t]*/)
    if (!comma || comma[0].length === rest.length) throw new DigestMalformedError('expected "," between parameters')
    rest = rest.slice(comma[0].length)
  }
}

function readToken(text: string): { param: Param; rest: string } {
  const value = text.match(TOKEN)?.[0]
  if (!value) throw new DigestMalformedError('expected a token or a quoted string')
  return { param: { value, quoted: false }, rest: text.slice(value.length) }
}

/** RFC 9110 §5.6.4: qdtext and quoted-pairs; a control character or a missing closing quote is malformed. */
function readQuoted(text: string): { param: Param; rest: string } {
  let value = ''
  for (let i = 1; i < text.length; i++) {
    const char = text[i]!
    if (char === '"') return { param: { value, quoted: true }, rest: text.slice(i + 1) }
    if (char === '\\') {
      i++
      if (i >= text.length) break
      value += text[i]!
    } else {
      value += char
    }
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(text[i]!)) throw new DigestMalformedError('control character in a quoted string')
  }
  throw new DigestMalformedError('unterminated quoted string')
}

function checkForms(params: Map<string, Param>): void {
  for (const [name, { quoted }] of params) {
    if (QUOTED.has(name) && !quoted) throw new DigestMalformedError(`${name} must be a quoted string`)
    if (TOKENS.has(name) && quoted) throw new DigestMalformedError(`${name} must be a token`)
  }
  // RFC 8187's username* carries a name that isn't ASCII; no SIP extension needs it.
  if (params.has('username*')) throw new DigestUnsupportedError('username* is not supported')
  for (const name of REQUIRED) if (!params.has(name)) throw new DigestMalformedError(`${name} missing`)
}

function toCredentials(params: Map<string, Param>): DigestCredentials {
  const value = (name: (typeof REQUIRED)[number]): string => params.get(name)!.value
  const algorithm = algorithmOf(params.get('algorithm')?.value)
  if (value('qop') !== 'auth') throw new DigestUnsupportedError('only qop=auth is supported')
  // RFC 7616 §3.4.4: with userhash the username is a hash the server would have to search for.
  const userhash = params.get('userhash')?.value.toLowerCase()
  if (userhash === 'true') throw new DigestUnsupportedError('userhash is not supported')
  if (userhash !== undefined && userhash !== 'false') throw new DigestMalformedError('userhash must be true or false')
  if (!NONCE_COUNT.test(value('nc'))) throw new DigestMalformedError('nc must be 8 hex digits')
  const response = value('response').toLowerCase()
  if (response.length !== HEX_LENGTH[algorithm] || !/^[0-9a-f]+$/.test(response)) throw new DigestMalformedError('response is not a hex digest')
  for (const name of ['username', 'uri', 'nonce', 'cnonce'] as const) if (value(name) === '') throw new DigestMalformedError(`${name} empty`)
  return {
    username: value('username'),
    realm: value('realm'),
    uri: value('uri'),
    algorithm,
    nonce: value('nonce'),
    opaque: value('opaque'),
    cnonce: value('cnonce'),
    nc: value('nc'),
    qop: 'auth',
    response,
  }
}

/** Absent means MD5 (RFC 7616 §3.4); the `-sess` variants and SHA-512-256 are not offered. */
function algorithmOf(token: string | undefined): DigestAlgorithm {
  if (token === undefined) return 'MD5'
  const known = DIGEST_ALGORITHMS.find((name) => name.toLowerCase() === token.toLowerCase())
  if (!known) throw new DigestUnsupportedError('unsupported algorithm')
  return known
}

export interface SipFrom {
  user: string
  domain: string
}

/** RFC 3261 §25.1 user: unreserved and user-unreserved characters; no escapes, so no decoding ambiguity. */
const SIP_USER = String.raw`[A-Za-z0-9\-_.!~*'()&=+$,;?/]+`
const SIP_HOST = String.raw`(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?`
const SIP_FROM = new RegExp(`^sip:(${SIP_USER})@(${SIP_HOST})$`, 'i')

/** Exactly `sip:<user>@<domain>`, the form the Flexisip account manager's clients send. */
export function parseSipFrom(header: string | null | undefined): SipFrom {
  if (header == null) throw new DigestFromHeaderError('no From header')
  const match = header.length <= 512 ? header.match(SIP_FROM) : null
  if (!match) throw new DigestFromHeaderError('From is not sip:<user>@<domain>')
  return { user: match[1]!, domain: match[2]! }
}
