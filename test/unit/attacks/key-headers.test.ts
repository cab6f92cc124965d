/**
 * Attack family: header parameters that name keys or extensions. No key is ever looked up outside
 * our own key ring, and a kid only picks among its live keys (README "Key rotation").
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Harness } from '../../helpers'
import { TokenClaimError, TokenKeyError, TokenMalformedError, TokenSignatureError } from '../../../src/tokens/jws'
import { rotated } from '../../../src/tokens/key-ring'
import { battleground, expectAccepted, expectRefused, forge, REAL_KEY, validClaims } from './battery'

let h: Harness
let listener: ReturnType<typeof Bun.serve>
let hits = 0
beforeAll(async () => {
  ;({ h } = await battleground())
  // A key server an attacker would love us to consult: it must never be contacted.
  listener = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => (hits++, Response.json({ keys: [] })) })
})
afterAll(() => {
  listener.stop(true)
  h.close()
})

test('jku, x5u, jwk and x5c headers are refused and nothing is fetched', async () => {
  const url = `http://127.0.0.1:${listener.port}/keys`
  for (const extra of [{ jku: url }, { x5u: url }, { jwk: { kty: 'oct', k: 'AAAA' } }, { x5c: ['MIIB'] }]) {
    await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT', ...extra }, validClaims(h)), Object.keys(extra)[0])
  }
  await Bun.sleep(50)
  expect(hits).toBe(0)
})

test('crit, with known and unknown names, and b64=false', async () => {
  for (const extra of [{ crit: ['exp'] }, { crit: ['x-unknown'], 'x-unknown': 1 }, { crit: [] }, { b64: false, crit: ['b64'] }]) {
    await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT', ...extra }, validClaims(h)), JSON.stringify(extra))
  }
})

test('a kid is never used to choose a key', async () => {
  for (const kid of ['../../../dev/null', 'other', '']) {
    const otherKey = forge({ alg: 'HS256', typ: 'JWT', kid }, validClaims(h), { key: Buffer.from('attacker-key') })
    await expectRefused(h, otherKey, `kid=${kid}`)
  }
})

describe('after a rotation', () => {
  let ringKid: string
  let ringKey: Uint8Array
  beforeAll(() => {
    h.keys.replace(rotated({ legacyRetiresAt: null, keys: [] }, { now: h.clock.seconds, graceSeconds: 3600, revokeAll: false }))
    ;({ kid: ringKid, key: ringKey } = h.keys.signing() as { kid: string; key: Uint8Array })
  })
  afterAll(() => h.keys.replace({ legacyRetiresAt: null, keys: [] }))

  /** Refused over HTTP, and by the token service with this error class. */
  async function expectRefusedAs(token: string, type: new (...args: never[]) => Error, label: string) {
    await expectRefused(h, token, label)
    expect(() => h.tokens.verify(token, 'access')).toThrow(type)
  }

  test('the positive controls: the new kid with its key, and the legacy key without a kid', async () => {
    await expectAccepted(h, forge({ alg: 'HS256', typ: 'JWT', kid: ringKid }, validClaims(h), { key: ringKey }))
    await expectAccepted(h, forge({ alg: 'HS256', typ: 'JWT' }, validClaims(h)))
  })

  test('an unknown kid, even signed with a key of the ring', async () => {
    for (const key of [ringKey, REAL_KEY]) {
      await expectRefusedAs(forge({ alg: 'HS256', typ: 'JWT', kid: `${ringKid.slice(0, -1)}${ringKid.endsWith('x') ? 'y' : 'x'}` }, validClaims(h), { key }), TokenKeyError, 'unknown kid')
    }
  })

  test('the right kid over the wrong key, and no kid over the ring key', async () => {
    await expectRefusedAs(forge({ alg: 'HS256', typ: 'JWT', kid: ringKid }, validClaims(h)), TokenSignatureError, 'kid over legacy key')
    await expectRefusedAs(forge({ alg: 'HS256', typ: 'JWT' }, validClaims(h), { key: ringKey }), TokenSignatureError, 'no kid over ring key')
  })

  test('a kid of the wrong type, length, alphabet or place', async () => {
    const kids: unknown[] = [7, null, true, [ringKid], { kid: ringKid }, '', 'k'.repeat(65), `${ringKid}/`, `${ringKid} `]
    for (const kid of kids) {
      await expectRefusedAs(forge({ alg: 'HS256', typ: 'JWT', kid }, validClaims(h), { key: ringKey }), TokenMalformedError, `kid ${JSON.stringify(kid)}`)
    }
    await expectRefusedAs(forge({ kid: ringKid, alg: 'HS256', typ: 'JWT' }, validClaims(h), { key: ringKey }), TokenMalformedError, 'kid first')
    await expectRefusedAs(forge({ alg: 'HS256', kid: ringKid }, validClaims(h), { key: ringKey }), TokenMalformedError, 'kid without typ')
  })

  test('a kid on a legacy token (no jti, no sid)', async () => {
    const legacy = validClaims(h, { jti: undefined, sid: undefined })
    await expectAccepted(h, forge({ typ: 'JWT', alg: 'HS256' }, legacy))
    await expectRefusedAs(forge({ alg: 'HS256', typ: 'JWT', kid: ringKid }, legacy, { key: ringKey }), TokenClaimError, 'legacy with kid')
  })
})
