/** Attack family: header parameters that name keys or extensions. No key is ever looked up. */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Harness } from '../../helpers'
import { battleground, expectRefused, forge, validClaims } from './battery'

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
