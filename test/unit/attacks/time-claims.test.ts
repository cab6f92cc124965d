/** Attack family: exp, nbf and iat: required as README "Security notes and decisions" says, numbers only, 30 s tolerance. */
import { afterAll, beforeAll, test } from 'bun:test'
import type { Harness } from '../../helpers'
import { battleground, expectAccepted, expectRefused, forge, validClaims } from './battery'

let h: Harness
beforeAll(async () => ({ h } = await battleground()))
afterAll(() => h.close())

const token = (extra: Record<string, unknown>) => forge({ alg: 'HS256', typ: 'JWT' }, validClaims(h, extra))

test('exp missing, a string, null, NaN-like, a float in the past', async () => {
  for (const exp of [undefined, String(h.clock.seconds + 3600), null, '1e400', h.clock.seconds - 31.5, true]) {
    await expectRefused(h, token({ exp }), `exp=${exp}`)
  }
})

test('exp at the edge of the tolerance', async () => {
  await expectAccepted(h, token({ exp: h.clock.seconds - 29 }))
  await expectRefused(h, token({ exp: h.clock.seconds - 30 }))
})

test('a float exp in the future is a number like any other', async () => {
  await expectAccepted(h, token({ exp: h.clock.seconds + 60.5 }))
})

test('iat missing, a string, or in the future beyond the tolerance', async () => {
  for (const iat of [undefined, String(h.clock.seconds), h.clock.seconds + 31, h.clock.seconds + 86400]) {
    await expectRefused(h, token({ iat }), `iat=${iat}`)
  }
  await expectAccepted(h, token({ iat: h.clock.seconds + 30 }))
})

test('nbf in the future beyond the tolerance, or not a number', async () => {
  await expectRefused(h, token({ nbf: h.clock.seconds + 31 }))
  await expectRefused(h, token({ nbf: 'now' }))
  await expectAccepted(h, token({ nbf: h.clock.seconds + 30 }))
})

test('type, sub, username, jti and sid of the wrong shape', async () => {
  for (const extra of [{ type: undefined }, { type: 'ACCESS' }, { sub: undefined }, { sub: null }, { username: '' }, { username: 201 }, { jti: '' }, { sid: 7 }]) {
    await expectRefused(h, token(extra), JSON.stringify(extra))
  }
})

test('a token that expires while in use is refused from then on', async () => {
  const { access_token } = await h.login()
  await expectAccepted(h, access_token)
  h.clock.advance(3600 + 30)
  await expectRefused(h, access_token)
  h.clock.advance(-(3600 + 30))
})
