/**
 * Our synchronous verifier against jose, the reference, on random tokens (fast-check, fixed seed).
 * It must never accept what jose refuses, and must accept what jose accepts unless the token breaks
 * one of the stricter rules (README "Security notes and decisions") that jose doesn't enforce: canonical base64url, a
 * header spelled exactly as we or the legacy module write it (a kid only with a key ring), no duplicate names, `iat`
 * not in the future.
 */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { createHmac } from 'node:crypto'
import * as jose from 'jose'
import { signHs256, verifyHs256 } from '../../src/tokens/jws'

const KEY = Buffer.from('5e'.repeat(32), 'latin1')
const NOW = 1_800_000_000
const TOLERANCE = 30
const SEED = 20261123

async function joseAccepts(token: string): Promise<Record<string, unknown> | null> {
  try {
    const { payload } = await jose.jwtVerify(token, KEY, {
      algorithms: ['HS256'],
      requiredClaims: ['exp', 'iat'],
      clockTolerance: TOLERANCE,
      currentDate: new Date(NOW * 1000),
    })
    return payload as Record<string, unknown>
  } catch {
    return null
  }
}

function oursAccepts(token: string): Record<string, unknown> | null {
  try {
    return verifyHs256(token, KEY, { now: NOW, tolerance: TOLERANCE })
  } catch {
    return null
  }
}

const claims = fc.record(
  {
    sub: fc.oneof(fc.string(), fc.integer()),
    username: fc.string(),
    type: fc.constantFrom('access', 'refresh'),
    // Mostly plausible numbers near the edges, sometimes the wrong type.
    iat: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: NOW - 100_000, max: NOW + 100 }) }, fc.double({ noNaN: true }), fc.string()),
    exp: fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: NOW - 100, max: NOW + 100_000 }) },
      fc.double({ noNaN: true }),
      fc.string(),
      fc.constant(null),
    ),
    nbf: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: NOW - 100, max: NOW + 100 }) }, fc.string()),
    jti: fc.string(),
  },
  { requiredKeys: ['sub', 'username', 'type'] },
)

const b64 = (text: string) => Buffer.from(text).toString('base64url')
const sign = (input: string, hash = 'sha256') => createHmac(hash, KEY).update(input).digest('base64url')
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** Ways to bend a valid token: each keeps it plausible enough that jose has to look closely. */
const mutation = fc.oneof(
  { weight: 6, arbitrary: fc.constant((token: string) => token) },
  fc.nat().map((n) => (token: string) => {
    const i = n % token.length
    const replacement = ALPHABET[(ALPHABET.indexOf(token[i]!) + 1) % ALPHABET.length] ?? 'A'
    return token[i] === '.' ? token : `${token.slice(0, i)}${replacement}${token.slice(i + 1)}`
  }),
  fc.constant((token: string) => `${token.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(token.at(-1)!) ^ 1]}`),
  fc.constant((token: string) => `${token}=`),
  fc.constantFrom('HS384', 'HS512', 'none', 'hs256').map((alg) => (token: string) => {
    const [, payload] = token.split('.')
    const input = `${b64(JSON.stringify({ alg, typ: 'JWT' }))}.${payload}`
    return `${input}.${alg.startsWith('HS') ? sign(input, `sha${alg.slice(2)}`) : ''}`
  }),
  fc.dictionary(fc.constantFrom('kid', 'cty', 'foo', 'crit', 'jku'), fc.string(), { maxKeys: 2 }).map((extra) => (token: string) => {
    const [, payload] = token.split('.')
    const input = `${b64(JSON.stringify({ alg: 'HS256', typ: 'JWT', ...extra }))}.${payload}`
    return `${input}.${sign(input)}`
  }),
  fc.string().map((text) => (token: string) => `${token}${text}`),
)

function isCanonical(token: string): boolean {
  return token.split('.').every((segment) => /^[A-Za-z0-9_-]+$/.test(segment) && Buffer.from(segment, 'base64url').toString('base64url') === segment)
}

function strictRulesHold(token: string, payload: Record<string, unknown>): boolean {
  const header = Buffer.from(token.split('.')[0]!, 'base64url').toString()
  const headerOk = header === '{"alg":"HS256","typ":"JWT"}' || header === '{"typ":"JWT","alg":"HS256"}'
  const iat = payload.iat as number
  return isCanonical(token) && headerOk && iat <= NOW + TOLERANCE
}

describe('verifyHs256 agrees with jose', () => {
  test('on random claims and mutations: never more lenient, and as lenient unless a stricter rule applies', async () => {
    await fc.assert(
      fc.asyncProperty(claims, mutation, async (payload, mutate) => {
        const token = mutate(signHs256(payload, KEY))
        const ours = oursAccepts(token)
        const theirs = await joseAccepts(token)
        if (ours) expect(theirs).toEqual(ours)
        if (theirs && strictRulesHold(token, theirs)) expect(ours).toEqual(theirs)
      }),
      { seed: SEED, numRuns: 2000 },
    )
  })

  test('accepts every valid token that jose accepts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: NOW - 3000, max: NOW + 30 }), fc.integer({ min: NOW - 29, max: NOW + 100_000 }), fc.string(), async (iat, exp, username) => {
        const token = signHs256({ sub: '1', username, type: 'access', iat, exp, jti: 'j', sid: 's' }, KEY)
        expect(await joseAccepts(token)).not.toBeNull()
        expect(oursAccepts(token)).not.toBeNull()
      }),
      { seed: SEED, numRuns: 500 },
    )
  })

  test('rejects the non-canonical spellings jose lets through', async () => {
    const token = signHs256({ sub: '1', username: '201', type: 'access', iat: NOW, exp: NOW + 60 }, KEY)
    const signature = token.split('.')[2]!
    const sibling = `${token.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(signature.at(-1)!) ^ 1]}`
    expect(await joseAccepts(sibling)).not.toBeNull()
    expect(oursAccepts(sibling)).toBeNull()
  })
})
