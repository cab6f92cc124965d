/**
 * Shared parts of the JWT attack battery: each family file forges tokens and checks that
 * both the profile route and check-media-access (header and X-Original-URI forms) refuse them.
 */
import { expect } from 'bun:test'
import { createHmac } from 'node:crypto'
import { BASE, createHarness, TEST_KEY_TEXT, type Harness } from '../../helpers'

export const REAL_KEY = Buffer.from(TEST_KEY_TEXT, 'ascii')

export async function battleground(): Promise<{ h: Harness; tokens: { access_token: string; refresh_token: string } }> {
  const h = await createHarness()
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
  return { h, tokens: await h.login() }
}

export const encode = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
export const decode = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString())

/** Signs header and payload (objects or raw JSON text) with HMAC-<hash> and the given key. */
export function forge(header: unknown, payload: unknown, { hash = 'sha256', key = REAL_KEY }: { hash?: string; key?: Uint8Array } = {}): string {
  const input = `${encode(header)}.${encode(payload)}`
  return `${input}.${createHmac(hash, key).update(input).digest('base64url')}`
}

/** The claims of a valid access token for user 201, at the harness's clock. */
export const validClaims = (h: Harness, extra: Record<string, unknown> = {}) => ({
  sub: '1',
  username: '201',
  role: 'user',
  type: 'access',
  iat: h.clock.seconds,
  exp: h.clock.seconds + 3600,
  jti: 'Zm9yZ2VkLXRva2VuLWlkLTE',
  sid: 'Zm9yZ2VkLXNlc3Npb24taWQ',
  ...extra,
})

/**
 * Every place a token is checked refuses it. The profile route answers a token that isn't even
 * b64token-shaped with 400 invalid_request (RFC 6750 §3.1) and anything else with 401
 * invalid_token; check-media-access answers 401 either way, since nginx needs 401 or 403.
 */
export async function expectRefused(h: Harness, token: string, label = ''): Promise<void> {
  const profile = await h.request(`${BASE}/profile`, { headers: { authorization: `Bearer ${token}` } })
  const challenge = profile.headers.get('www-authenticate')
  expect({ label, outcome: [profile.status, challenge] }).toEqual({
    label,
    outcome: profile.status === 400
      ? [400, 'Bearer realm="softphone", error="invalid_request"']
      : [401, 'Bearer realm="softphone", error="invalid_token"'],
  })
  const media = [
    await h.request(`${BASE}/check-media-access`, { headers: { authorization: `Bearer ${token}` } }),
    await h.request(`${BASE}/check-media-access`, {
      headers: { 'x-original-uri': `/pbxcore/softphone/recordings/a.mp3?authorization=${encodeURIComponent(token)}` },
    }),
  ]
  for (const response of media) {
    expect({ label, status: response.status }).toEqual({ label, status: 401 })
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="softphone", error="invalid_(token|request)"$/)
  }
}

/** The positive control: the same path accepts a correctly signed token. */
export async function expectAccepted(h: Harness, token: string): Promise<void> {
  expect((await h.request(`${BASE}/profile`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
  expect((await h.request(`${BASE}/check-media-access`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
}
