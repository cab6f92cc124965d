/**
 * Compact JWS with HS256 only (RFC 7515, RFC 7519), verified synchronously and strictly (RFC 8725).
 *
 * Why not jose or @elysiajs/jwt here: jose verifies through async WebCrypto, which costs about half
 * the throughput of the hot path, and accepts non-canonical base64url; @elysiajs/jwt's sign() stamps
 * `iat` from the wall clock, which an injected clock can't move. Tests use jose as the oracle.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

export const MAX_TOKEN_LENGTH = 8192
/** RFC 8725 §3.1: the algorithm is fixed by us, never taken from the token. */
const HEADER_JSON = JSON.stringify({ alg: 'HS256', typ: 'JWT' })
/** ModuleSoftphoneBackend's header (firebase/php-jwt writes typ first): its tokens stay valid. */
const LEGACY_HEADER_JSON = JSON.stringify({ typ: 'JWT', alg: 'HS256' })
/** Key ids we issue (README "Key rotation"): base64url, 1 to 64 characters. */
export const KID = /^[A-Za-z0-9_-]{1,64}$/
const SIGNATURE_LENGTH = 43 // base64url of a 32-byte HMAC-SHA256, unpadded
const BASE64URL = /^[A-Za-z0-9_-]+$/
const ALLOWED_HEADER_KEYS = new Set(['alg', 'typ', 'kid'])
const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/** Every way a token can fail, one class each, so callers map them without string matching. */
export class TokenError extends Error {
  override name = 'TokenError'
}
export class TokenMalformedError extends TokenError {
  override name = 'TokenMalformedError'
}
export class TokenAlgorithmError extends TokenError {
  override name = 'TokenAlgorithmError'
}
export class TokenSignatureError extends TokenError {
  override name = 'TokenSignatureError'
}
export class TokenClaimError extends TokenError {
  override name = 'TokenClaimError'
}
export class TokenExpiredError extends TokenError {
  override name = 'TokenExpiredError'
}
export class TokenNotYetValidError extends TokenError {
  override name = 'TokenNotYetValidError'
}
/** The header names no key we verify with: an unknown kid, a retired one, or no kid once the legacy key retired. */
export class TokenKeyError extends TokenError {
  override name = 'TokenKeyError'
}

export type Claims = Record<string, unknown>

/** Signs with the header in its one canonical form; `kid` names the key of a rotated key ring. */
export function signHs256(claims: Claims, key: Uint8Array, kid?: string): string {
  const signingInput = `${base64url(headerJson(kid))}.${base64url(JSON.stringify(claims))}`
  return `${signingInput}.${hmac(signingInput, key)}`
}

function headerJson(kid: string | undefined): string {
  return kid === undefined ? HEADER_JSON : JSON.stringify({ alg: 'HS256', typ: 'JWT', kid })
}

export interface TimeRules {
  /** Current time, Unix seconds. */
  now: number
  /** Allowed clock skew in seconds (30 s for our tokens: test/unit/attacks/time-claims.test.ts). */
  tolerance: number
}

/**
 * The key for a token's `kid` (undefined: a token without one), or undefined when none is live.
 * The kid only selects among our own keys; it never locates a key elsewhere (RFC 8725 §3.10).
 */
export type KeyResolver = (kid: string | undefined) => Uint8Array | undefined

export interface VerifiedJws {
  claims: Claims
  kid?: string
}

/** Verifies with one key for tokens without a kid: what a single-key setup and the tests use. */
export function verifyHs256(token: string, key: Uint8Array, time: TimeRules): Claims {
  return verifyJws(token, (kid) => (kid === undefined ? key : undefined), time).claims
}

/**
 * Verifies header, signature, encoding and the time claims; returns the payload and the kid.
 * Claim semantics beyond time (type, subject, revocation) belong to the caller.
 */
export function verifyJws(token: string, keyFor: KeyResolver, time: TimeRules): VerifiedJws {
  if (token.length > MAX_TOKEN_LENGTH) throw new TokenMalformedError('token too long')
  const segments = token.split('.')
  if (segments.length !== 3) throw new TokenMalformedError('expected three segments')
  if (!segments.every((segment) => BASE64URL.test(segment))) throw new TokenMalformedError('not base64url')
  const [headerText, payloadText, signature] = segments as [string, string, string]
  const kid = checkHeader(decodeSegment(headerText), Buffer.from(headerText, 'base64url').toString())
  const key = keyFor(kid)
  if (!key) throw new TokenKeyError(kid === undefined ? 'tokens without kid are no longer accepted' : 'unknown or retired kid')
  // Comparing base64url text also enforces canonical encoding of the signature.
  const expected = hmac(`${headerText}.${payloadText}`, key)
  if (signature.length !== SIGNATURE_LENGTH || !timingSafeEqual(Buffer.from(signature), Buffer.from(expected))) {
    throw new TokenSignatureError('signature mismatch')
  }
  const claims = decodeSegment(payloadText)
  checkTimes(claims, time)
  return kid === undefined ? { claims } : { claims, kid }
}

/**
 * The header must be one we write, byte for byte: ours, the legacy module's, or ours with a kid.
 * Returns the kid. Refusing every other spelling leaves no header field for an attacker to steer.
 */
function checkHeader(header: Claims, text: string): string | undefined {
  if (header.alg !== 'HS256') throw new TokenAlgorithmError('algorithm not allowed')
  if (header.typ !== 'JWT') throw new TokenMalformedError('bad typ')
  // `crit`, `jku`, `x5u`, `jwk`, `b64`…: we never issue them, so a token carrying one is not ours.
  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADER_KEYS.has(name)) throw new TokenMalformedError('unexpected header parameter')
  }
  const kid = header.kid
  if (kid !== undefined && (typeof kid !== 'string' || !KID.test(kid))) throw new TokenMalformedError('bad kid')
  const canonical = kid === undefined ? text === HEADER_JSON || text === LEGACY_HEADER_JSON : text === headerJson(kid)
  if (!canonical) throw new TokenMalformedError('header not in canonical form')
  return kid
}

function checkTimes(claims: Claims, rules: TimeRules): void {
  const nbf = claims.nbf === undefined ? undefined : requireNumericDate(claims, 'nbf')
  checkTimeClaims({ exp: requireNumericDate(claims, 'exp'), iat: requireNumericDate(claims, 'iat'), nbf }, rules)
}

export interface TimeClaims {
  exp: number
  iat: number
  nbf?: number
}

/** Exported for callers that re-check a token verified earlier: time moves, signatures don't. */
export function checkTimeClaims({ exp, iat, nbf }: TimeClaims, { now, tolerance }: TimeRules): void {
  if (now - tolerance >= exp) throw new TokenExpiredError('expired')
  if (iat > now + tolerance) throw new TokenNotYetValidError('issued in the future')
  if (nbf !== undefined && nbf > now + tolerance) throw new TokenNotYetValidError('not yet valid')
}

function requireNumericDate(claims: Claims, name: string): number {
  const value = claims[name]
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new TokenClaimError(`${name} must be a number`)
  return value
}

/** A base64url segment holding a JSON object, canonical, strict UTF-8, without duplicate members. */
export function decodeSegment(segment: string): Claims {
  const bytes = Buffer.from(segment, 'base64url')
  // Non-canonical spellings (sibling last characters) decode to the same bytes; refuse them.
  if (bytes.toString('base64url') !== segment) throw new TokenMalformedError('non-canonical base64url')
  let text: string
  let value: unknown
  try {
    text = strictUtf8.decode(bytes)
    value = JSON.parse(text)
  } catch {
    throw new TokenMalformedError('not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenMalformedError('not a JSON object')
  }
  // JSON.parse keeps the last of two equal keys, other parsers the first: refuse the ambiguity.
  if (hasDuplicateKey(text)) throw new TokenMalformedError('duplicate member name')
  return value as Claims
}

/** Whether the top-level object of valid JSON `text` names a member twice (escapes compared decoded). */
function hasDuplicateKey(text: string): boolean {
  const names = new Set<string>()
  let depth = 0
  let expectName = false
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (char === '"') {
      let end = i + 1
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1
      if (depth === 1 && expectName) {
        const name = JSON.parse(text.slice(i, end + 1)) as string
        if (names.has(name)) return true
        names.add(name)
        expectName = false
      }
      i = end
    } else if (char === '{' || char === '[') {
      depth++
      expectName = depth === 1
    } else if (char === '}' || char === ']') {
      depth--
    } else if (char === ',' && depth === 1) {
      expectName = true
    }
  }
  return false
}

function hmac(input: string, key: Uint8Array): string {
  return createHmac('sha256', key).update(input).digest('base64url')
}

function base64url(text: string): string {
  return Buffer.from(text).toString('base64url')
}
