/** Attack family: replaying what was revoked, in the original or a malleated spelling. */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { BASE, bearer, type Harness } from '../../helpers'
import { battleground, expectAccepted, expectRefused } from './battery'

let h: Harness
beforeAll(async () => ({ h } = await battleground()))
afterAll(() => h.close())

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

test('after logout the token and every malleated copy of it are refused', async () => {
  const { access_token } = await h.login()
  await expectAccepted(h, access_token)
  expect((await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access_token) })).status).toBe(200)
  const [header, payload, signature] = access_token.split('.') as [string, string, string]
  const sibling = `${signature.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(signature.at(-1)!) ^ 1]}`
  for (const token of [access_token, `${access_token}=`, `${header}.${payload}.${sibling}`, ` ${access_token}`]) {
    await expectRefused(h, token)
  }
})

test('a refresh token is refused where an access token is needed, before and after use', async () => {
  const { refresh_token } = await h.login()
  for (const path of ['/profile', '/check-media-access']) {
    const response = await h.request(`${BASE}${path}`, { headers: bearer(refresh_token) })
    expect(response.status).toBe(403)
  }
})
