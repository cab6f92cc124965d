/** Attack family: the algorithm. Only HS256 with our key is ever accepted (RFC 8725 §2.1, §3.1). */
import { afterAll, beforeAll, test } from 'bun:test'
import type { Harness } from '../../helpers'
import { battleground, encode, expectAccepted, expectRefused, forge, validClaims } from './battery'

let h: Harness
beforeAll(async () => ({ h } = await battleground()))
afterAll(() => h.close())

test('control: a forged-but-correct HS256 token with the real key is accepted', async () => {
  await expectAccepted(h, forge({ alg: 'HS256', typ: 'JWT' }, validClaims(h)))
})

for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
  test(`alg ${alg}, without and with a signature`, async () => {
    await expectRefused(h, `${encode({ alg, typ: 'JWT' })}.${encode(validClaims(h))}.`, alg)
    await expectRefused(h, forge({ alg, typ: 'JWT' }, validClaims(h)), alg)
  })
}

test('HS384 and HS512 signed with the real key', async () => {
  await expectRefused(h, forge({ alg: 'HS384', typ: 'JWT' }, validClaims(h), { hash: 'sha384' }), 'HS384')
  await expectRefused(h, forge({ alg: 'HS512', typ: 'JWT' }, validClaims(h), { hash: 'sha512' }), 'HS512')
})

test('HS256 signed with an empty key, or with the key decoded from hex', async () => {
  await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT' }, validClaims(h), { key: new Uint8Array(0) }), 'empty key')
  const decoded = Buffer.from('a1'.repeat(32), 'hex')
  await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT' }, validClaims(h), { key: decoded }), 'hex-decoded key')
})

for (const alg of ['RS256', 'ES256', 'PS256', 'EdDSA', 'hs256', 'HS256 ']) {
  test(`${JSON.stringify(alg)} in the header, HMAC-signed with the real key`, async () => {
    await expectRefused(h, forge({ alg, typ: 'JWT' }, validClaims(h)), alg)
  })
}

test('no alg at all', async () => {
  await expectRefused(h, forge({ typ: 'JWT' }, validClaims(h)))
})
