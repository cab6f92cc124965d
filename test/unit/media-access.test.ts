import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

const MEDIA = `${BASE}/check-media-access`
let h: Harness
let tokens: { access_token: string; refresh_token: string }

// The token rules; which recordings a token opens (recordings_access = "owner") is recording-owners.test.ts.
beforeAll(async () => {
  h = await createHarness({ recordingsAccess: 'any' })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
  tokens = await h.login()
})
afterAll(() => h.close())

const check = (headers: Record<string, string> = {}) => h.request(MEDIA, { headers })
const originalUri = (query: string) => ({ 'x-original-uri': `/pbxcore/softphone/recordings/2026/11/23/call.mp3?${query}` })

describe('check-media-access allows a valid access token', () => {
  for (const [name, headers] of [
    ['in the Authorization header', () => bearer(tokens.access_token)],
    ['as ?authorization= in X-Original-URI', () => originalUri(`authorization=${tokens.access_token}`)],
    ['as ?token= in X-Original-URI', () => originalUri(`x=1&token=${tokens.access_token}`)],
    ['in the access_token cookie', () => ({ cookie: `access_token=${tokens.access_token}` })],
  ] as const) {
    test(name, async () => {
      const response = await check(headers())
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ success: true })
    })
  }
})

const RECORDINGS = '/pbxcore/softphone/recordings/'
/** Path tricks a header can carry (a header can't hold NUL, CR or LF; recording-path.test.ts covers those). */
const PATH_TRICKS = [
  ['a dot-dot segment', `${RECORDINGS}2026/../call.mp3`, 'path has a dot segment'],
  ['%2e%2e', `${RECORDINGS}%2e%2e/%2e%2e/secret.mp3`, 'path has a dot segment'],
  ['.%2E', `${RECORDINGS}2026/.%2E/call.mp3`, 'path has a dot segment'],
  ['%2f', `${RECORDINGS}..%2f..%2fsecret.mp3`, 'path has an encoded slash'],
  ['%5C', `${RECORDINGS}..%5Csecret.mp3`, 'path has an encoded slash'],
  ['a backslash', `${RECORDINGS}2026\\..\\call.mp3`, 'path has a backslash'],
  ['a double slash', `${RECORDINGS}2026//call.mp3`, 'path has a double slash'],
  ['%00', `${RECORDINGS}call.mp3%00.txt`, 'path has a NUL byte'],
  ['a raw tab', `${RECORDINGS}call\t.mp3`, 'path has a control character'],
  ['%1b', `${RECORDINGS}call%1b.mp3`, 'path has a control character'],
  ['a path outside the recordings location', '/pbxcore/api/module-softphone-backend/v1/profile', 'path outside the recordings location'],
  ['an empty X-Original-URI', '', 'path outside the recordings location'],
] as const

describe('check-media-access refuses a tricky recording path with 403, whatever the token', () => {
  PATH_TRICKS.forEach(([name, path, reason], index) => {
    test(`${name}, with a valid token in the query and in the header`, async () => {
      const query = `?authorization=${tokens.access_token}`
      for (const [headers, peer] of [
        [{ 'x-original-uri': `${path}${query}` }, `192.0.2.${index + 1}`],
        [{ 'x-original-uri': path, ...bearer(tokens.access_token) }, `198.51.100.${index + 1}`],
      ] as const) {
        const response = await h.request(MEDIA, { headers, peer })
        expect(response.status).toBe(403)
        expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="insufficient_scope"')
        const body = await response.json()
        expect(body).toEqual({
          success: false,
          error: 'Invalid recording path',
          code: 'invalid_recording_path',
          message: 'Invalid recording path',
          timestamp: h.clock.seconds,
        })
        const line = h.logLines().at(-1)!
        expect(line).toMatchObject({ event: 'MEDIA_ACCESS_DENIED', ip: peer, reason })
        const logged = JSON.stringify(line)
        expect(logged).not.toContain(tokens.access_token.split('.')[2]!)
        expect(logged).not.toContain('authorization=')
        expect(JSON.stringify(body)).not.toContain(tokens.access_token.split('.')[2]!)
      }
    })
  })

  test('without a token a tricky path is 403 too, so bad paths never probe tokens', async () => {
    const response = await h.request(MEDIA, { headers: { 'x-original-uri': `${RECORDINGS}..%2fsecret.mp3` }, peer: '203.0.113.1' })
    expect(response.status).toBe(403)
    expect((await response.json()).code).toBe('invalid_recording_path')
    expect(h.logLines().at(-1)).toMatchObject({ event: 'MEDIA_ACCESS_DENIED', reason: 'path has an encoded slash' })
  })

  test('a recording path as MikoPBX names it, with an encoded space, is checked by its token', async () => {
    const path = `${RECORDINGS}2026/11/23/14/mikopbx-1732370000.12_Ab3dEf%20x.mp3`
    expect((await check({ 'x-original-uri': `${path}?token=${tokens.access_token}` })).status).toBe(200)
    expect((await check({ 'x-original-uri': path })).status).toBe(401)
  })

  test('without X-Original-URI (a direct token check) only the token is checked', async () => {
    expect((await check(bearer(tokens.access_token))).status).toBe(200)
    expect((await check()).status).toBe(401)
  })
})

describe('check-media-access denies with 401 or 403 only', () => {
  test('no token → 401 with a plain challenge, logged as MEDIA_ACCESS_DENIED', async () => {
    const response = await check(originalUri('a=1'))
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    expect(h.logLines().at(-1)).toMatchObject({ event: 'MEDIA_ACCESS_DENIED', reason: 'no credentials' })
  })

  test('a refresh token → 403 insufficient_scope', async () => {
    const response = await check(originalUri(`token=${tokens.refresh_token}`))
    expect(response.status).toBe(403)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="insufficient_scope"')
  })

  test('malformed input that other routes answer with 400 → 401 here', async () => {
    const cases = [
      { authorization: 'Basic abc' },
      originalUri(`token=${tokens.access_token}&token=${tokens.access_token}`),
      originalUri('token='),
      { ...bearer(tokens.access_token), ...originalUri(`token=${tokens.access_token}`) },
    ]
    for (const headers of cases) {
      const response = await check(headers)
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="invalid_request"')
    }
  })

  test('a token revoked by logout → 401, and the log never holds the token', async () => {
    const mine = await h.login()
    await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(mine.access_token) })
    const response = await check(originalUri(`authorization=${mine.access_token}`))
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="invalid_token"')
    const log = JSON.stringify(h.logLines())
    expect(log).not.toContain(mine.access_token.split('.')[2]!)
    expect(log).not.toContain(tokens.access_token.split('.')[2]!)
  })

  test('a store failure is a 403, never a 500', async () => {
    const original = h.directory.findByUsername
    h.directory.findByUsername = () => {
      throw new Error('disk I/O error')
    }
    const errors: unknown[] = []
    const consoleError = console.error
    console.error = (...args: unknown[]) => errors.push(args)
    try {
      const response = await check(bearer(tokens.access_token))
      expect(response.status).toBe(403)
      expect((await response.json()).code).toBe('access_check_unavailable')
      expect(errors).toHaveLength(1)
    } finally {
      h.directory.findByUsername = original
      console.error = consoleError
    }
  })

  test('random headers, URIs and tokens never get anything but 200, 401 or 403', async () => {
    const [header, payload] = tokens.access_token.split('.') as [string, string]
    const token = fc.oneof(
      fc.string(),
      fc.constant(tokens.access_token),
      fc.constant(tokens.refresh_token),
      fc.string().map((s) => `${header}.${payload}.${s}`),
      fc.string().map((s) => `${tokens.access_token}${s}`),
    )
    const headerValue = fc.string().filter((s) => /^[\t\x20-\x7e]*$/.test(s))
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            authorization: fc.oneof(headerValue, token.map((t) => `Bearer ${t}`)),
            'x-original-uri': fc.oneof(headerValue, token.map((t) => `${RECORDINGS}a.mp3?authorization=${encodeURIComponent(t)}`)),
            cookie: fc.oneof(headerValue, token.map((t) => `access_token=${t}`)),
          },
          { requiredKeys: [] },
        ),
        async (headers) => {
          const response = await check(headers as Record<string, string>)
          expect([200, 401, 403]).toContain(response.status)
        },
      ),
      { seed: 20261123, numRuns: 300 },
    )
  })
})
