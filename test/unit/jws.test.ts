import { describe, expect, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import * as jose from 'jose'
import {
  MAX_TOKEN_LENGTH,
  signHs256,
  TokenAlgorithmError,
  TokenClaimError,
  TokenExpiredError,
  TokenKeyError,
  TokenMalformedError,
  TokenNotYetValidError,
  TokenSignatureError,
  verifyHs256,
  verifyJws,
} from '../../src/tokens/jws'

const KEY = Buffer.from('0f'.repeat(32), 'latin1')
const NOW = 1_800_000_000
const TIME = { now: NOW, tolerance: 30 }
const claims = (extra: Record<string, unknown> = {}) => ({ sub: '1', username: '201', iat: NOW, exp: NOW + 3600, ...extra })

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
/** Signs arbitrary header/payload text with HMAC, the way an attacker holding (or guessing) a key would. */
function forge(header: unknown, payload: unknown, alg = 'sha256', key: Uint8Array = KEY): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createHmac(alg, key).update(input).digest('base64url')}`
}

describe('signHs256', () => {
  test('produces the legacy header and a token jose verifies with HS256', async () => {
    const token = signHs256(claims(), KEY)
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toEqual({ alg: 'HS256', typ: 'JWT' })
    const { payload } = await jose.jwtVerify(token, KEY, { algorithms: ['HS256'], currentDate: new Date(NOW * 1000) })
    expect(payload).toEqual(claims())
  })

  test('round-trips through verifyHs256', () => {
    expect(verifyHs256(signHs256(claims({ jti: 'x' }), KEY), KEY, TIME)).toEqual(claims({ jti: 'x' }))
  })
})

describe('verifyHs256 rejects', () => {
  const valid = signHs256(claims(), KEY)
  const [h, p, s] = valid.split('.') as [string, string, string]
  const cases: Array<[string, string, new (...args: never[]) => Error]> = [
    ['two segments', `${h}.${p}`, TokenMalformedError],
    ['four segments', `${valid}.${s}`, TokenMalformedError],
    ['empty signature', `${h}.${p}.`, TokenMalformedError],
    ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`, TokenMalformedError],
    ['alg none with signature', forge({ alg: 'none' }, claims()), TokenAlgorithmError],
    ['alg NONE', forge({ alg: 'NONE' }, claims()), TokenAlgorithmError],
    ['alg hs256 lower case', forge({ alg: 'hs256' }, claims()), TokenAlgorithmError],
    ['HS512 signed with the real key', forge({ alg: 'HS512', typ: 'JWT' }, claims(), 'sha512'), TokenAlgorithmError],
    ['HS384 signed with the real key', forge({ alg: 'HS384', typ: 'JWT' }, claims(), 'sha384'), TokenAlgorithmError],
    ['RS256 header', forge({ alg: 'RS256', typ: 'JWT' }, claims()), TokenAlgorithmError],
    ['signed with another key', forge({ alg: 'HS256', typ: 'JWT' }, claims(), 'sha256', Buffer.from('x'.repeat(64))), TokenSignatureError],
    ['signed with an empty key', forge({ alg: 'HS256', typ: 'JWT' }, claims(), 'sha256', Buffer.alloc(0)), TokenSignatureError],
    ['tampered payload', `${h}.${b64(claims({ username: '202' }))}.${s}`, TokenSignatureError],
    ['truncated signature', `${h}.${p}.${s.slice(0, -2)}`, TokenSignatureError],
    ['padded signature', `${h}.${p}.${s}=`, TokenMalformedError],
    ['padded payload', `${h}.${p}=.${s}`, TokenMalformedError],
    ['base64 (not url) alphabet', `${h}.${p}.${s.slice(0, -1)}+`, TokenMalformedError],
    ['slash in a segment', `${h}.${p}.${s.slice(0, -1)}/`, TokenMalformedError],
    ['whitespace inside', `${h}.${p} .${s}`, TokenMalformedError],
    ['crit header', forge({ alg: 'HS256', typ: 'JWT', crit: ['exp'] }, claims()), TokenMalformedError],
    ['jku header', forge({ alg: 'HS256', typ: 'JWT', jku: 'http://127.0.0.1:9/keys' }, claims()), TokenMalformedError],
    ['x5u header', forge({ alg: 'HS256', typ: 'JWT', x5u: 'http://127.0.0.1:9/cert' }, claims()), TokenMalformedError],
    ['jwk header', forge({ alg: 'HS256', typ: 'JWT', jwk: { kty: 'oct', k: 'AA' } }, claims()), TokenMalformedError],
    ['typ other than JWT', forge({ alg: 'HS256', typ: 'at+jwt' }, claims()), TokenMalformedError],
    ['header without typ', forge({ alg: 'HS256' }, claims()), TokenMalformedError],
    ['header with spaces', forge('{"alg": "HS256", "typ": "JWT"}', claims()), TokenMalformedError],
    ['header with a kid, when no key has one', forge({ alg: 'HS256', typ: 'JWT', kid: 'k1' }, claims()), TokenKeyError],
    ['header not an object', forge('"HS256"', claims()), TokenMalformedError],
    ['payload an array', forge({ alg: 'HS256', typ: 'JWT' }, [1, 2]), TokenMalformedError],
    ['payload not JSON', forge({ alg: 'HS256', typ: 'JWT' }, 'not json'), TokenMalformedError],
    ['missing exp', forge({ alg: 'HS256', typ: 'JWT' }, claims({ exp: undefined })), TokenClaimError],
    ['string exp', forge({ alg: 'HS256', typ: 'JWT' }, claims({ exp: String(NOW + 3600) })), TokenClaimError],
    ['null exp', forge({ alg: 'HS256', typ: 'JWT' }, claims({ exp: null })), TokenClaimError],
    ['missing iat', forge({ alg: 'HS256', typ: 'JWT' }, claims({ iat: undefined })), TokenClaimError],
    ['expired', forge({ alg: 'HS256', typ: 'JWT' }, claims({ exp: NOW - 31 })), TokenExpiredError],
    ['expired exactly at tolerance', forge({ alg: 'HS256', typ: 'JWT' }, claims({ exp: NOW - 30 })), TokenExpiredError],
    ['iat in the future', forge({ alg: 'HS256', typ: 'JWT' }, claims({ iat: NOW + 31 })), TokenNotYetValidError],
    ['nbf in the future', forge({ alg: 'HS256', typ: 'JWT' }, claims({ nbf: NOW + 31 })), TokenNotYetValidError],
    ['nbf a string', forge({ alg: 'HS256', typ: 'JWT' }, claims({ nbf: 'soon' })), TokenClaimError],
  ]
  for (const [name, token, type] of cases) {
    test(name, () => {
      expect(() => verifyHs256(token, KEY, TIME)).toThrow(type)
    })
  }

  test('JSON serialisation instead of compact', () => {
    const json = JSON.stringify({ protected: h, payload: p, signature: s })
    expect(() => verifyHs256(json, KEY, TIME)).toThrow(TokenMalformedError)
  })

  test('a sibling last character of the signature (same bytes, non-canonical text)', () => {
    // The last base64url character of a 32-byte value carries 4 padding bits; flipping them keeps the bytes.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(s.at(-1)!)
    const sibling = `${s.slice(0, -1)}${alphabet[last ^ 1]}`
    expect(Buffer.from(sibling, 'base64url')).toEqual(Buffer.from(s, 'base64url'))
    expect(() => verifyHs256(`${h}.${p}.${sibling}`, KEY, TIME)).toThrow(TokenSignatureError)
  })

  test('a non-canonical payload encoding with a valid signature over it', () => {
    // Grow the payload until its base64url text has spare bits in the last character.
    let pad = ''
    while (b64(claims({ pad })).length % 4 === 0) pad += 'x'
    const payload = b64(claims({ pad }))
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const flipped = `${payload.slice(0, -1)}${alphabet[alphabet.indexOf(payload.at(-1)!) ^ 1]}`
    expect(Buffer.from(flipped, 'base64url')).toEqual(Buffer.from(payload, 'base64url'))
    const input = `${h}.${flipped}`
    const token = `${input}.${createHmac('sha256', KEY).update(input).digest('base64url')}`
    expect(() => verifyHs256(token, KEY, TIME)).toThrow(TokenMalformedError)
  })

  test('invalid UTF-8 in the payload', () => {
    const input = `${h}.${Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url')}`
    const token = `${input}.${createHmac('sha256', KEY).update(input).digest('base64url')}`
    expect(() => verifyHs256(token, KEY, TIME)).toThrow(TokenMalformedError)
  })

  test('tokens over 8 KiB before any crypto', () => {
    const big = signHs256(claims({ pad: 'x'.repeat(MAX_TOKEN_LENGTH) }), KEY)
    expect(() => verifyHs256(big, KEY, TIME)).toThrow(TokenMalformedError)
  })
})

describe('verifyHs256 accepts', () => {
  test('expiry within the clock tolerance', () => {
    expect(verifyHs256(signHs256(claims({ exp: NOW - 29 }), KEY), KEY, TIME).exp).toBe(NOW - 29)
  })
  test('iat slightly in the future, within tolerance', () => {
    expect(verifyHs256(signHs256(claims({ iat: NOW + 29 }), KEY), KEY, TIME).iat).toBe(NOW + 29)
  })
  test("the legacy module's header, typ first (firebase/php-jwt's order)", () => {
    expect(verifyHs256(forge({ typ: 'JWT', alg: 'HS256' }, claims()), KEY, TIME).username).toBe('201')
  })
})

describe('duplicate member names', () => {
  const raw = (header: string, payload: string) => {
    const input = `${Buffer.from(header).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`
    return `${input}.${createHmac('sha256', KEY).update(input).digest('base64url')}`
  }
  const header = '{"alg":"HS256","typ":"JWT"}'
  const payload = (extra: string) => `{"sub":"1","username":"201","iat":${NOW},"exp":${NOW + 3600}${extra}}`

  test('a repeated claim is refused, also when spelled with escapes', () => {
    expect(() => verifyHs256(raw(header, payload(',"username":"202"')), KEY, TIME)).toThrow('duplicate member name')
    expect(() => verifyHs256(raw(header, payload(',"\\u0075sername":"202"')), KEY, TIME)).toThrow('duplicate member name')
  })

  test('a repeated header parameter is refused', () => {
    expect(() => verifyHs256(raw('{"alg":"none","alg":"HS256"}', payload('')), KEY, TIME)).toThrow('duplicate member name')
  })

  test('the same names inside nested values, and quotes inside strings, are fine', () => {
    const nested = payload(',"ctx":{"username":"x","list":[{"sub":1},{"sub":2}]},"note":"\\"sub\\":,{"')
    expect(verifyHs256(raw(header, nested), KEY, TIME).username).toBe('201')
  })
})

describe('verifyJws with a key ring', () => {
  const RING_KEY = Buffer.from('7c'.repeat(32), 'latin1')
  const keyFor = (kid: string | undefined) => (kid === undefined ? KEY : kid === 'k1' ? RING_KEY : undefined)

  test('signHs256 with a kid writes it last in the header, and the kid picks the key', () => {
    const token = signHs256(claims(), RING_KEY, 'k1')
    expect(Buffer.from(token.split('.')[0]!, 'base64url').toString()).toBe('{"alg":"HS256","typ":"JWT","kid":"k1"}')
    expect(verifyJws(token, keyFor, TIME)).toEqual({ claims: claims(), kid: 'k1' })
    expect(verifyJws(signHs256(claims(), KEY), keyFor, TIME)).toEqual({ claims: claims() })
  })

  const cases: Array<[string, string, new (...args: never[]) => Error]> = [
    ['an unknown kid', forge({ alg: 'HS256', typ: 'JWT', kid: 'k2' }, claims(), 'sha256', RING_KEY), TokenKeyError],
    ['a known kid over the legacy key', forge({ alg: 'HS256', typ: 'JWT', kid: 'k1' }, claims()), TokenSignatureError],
    ['no kid over a ring key', forge({ alg: 'HS256', typ: 'JWT' }, claims(), 'sha256', RING_KEY), TokenSignatureError],
    ['kid a number', forge({ alg: 'HS256', typ: 'JWT', kid: 1 }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid null', forge({ alg: 'HS256', typ: 'JWT', kid: null }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid an array', forge({ alg: 'HS256', typ: 'JWT', kid: ['k1'] }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid empty', forge({ alg: 'HS256', typ: 'JWT', kid: '' }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid of 65 characters', forge({ alg: 'HS256', typ: 'JWT', kid: 'k'.repeat(65) }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid with a path', forge({ alg: 'HS256', typ: 'JWT', kid: '../k1' }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid first', forge({ kid: 'k1', alg: 'HS256', typ: 'JWT' }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid with typ first', forge({ typ: 'JWT', alg: 'HS256', kid: 'k1' }, claims(), 'sha256', RING_KEY), TokenMalformedError],
    ['kid spelled with an escape', forge('{"alg":"HS256","typ":"JWT","kid":"\\u006b1"}', claims(), 'sha256', RING_KEY), TokenMalformedError],
  ]
  for (const [name, token, type] of cases) {
    test(`rejects ${name}`, () => {
      expect(() => verifyJws(token, keyFor, TIME)).toThrow(type)
    })
  }

  test('a retired legacy key refuses tokens without a kid, before any HMAC', () => {
    const ringOnly = (kid: string | undefined) => (kid === 'k1' ? RING_KEY : undefined)
    expect(() => verifyJws(signHs256(claims(), KEY), ringOnly, TIME)).toThrow(TokenKeyError)
  })
})
