import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

const MEDIA = `${BASE}/check-media-access`
let h: Harness
let tokens: { access_token: string; refresh_token: string }

beforeAll(async () => {
  h = await createHarness()
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

describe('check-media-access denies with 401 or 403 only', () => {
  test('no token → 401 with a plain challenge, logged as MEDIA_ACCESS_DENIED', async () => {
    const response = await check(originalUri('a=1'))
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    expect(h.logLines().at(-1)).toMatchObject({ event: 'MEDIA_ACCESS_DENIED', reason: 'no token' })
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
            'x-original-uri': fc.oneof(headerValue, token.map((t) => `/rec/a.mp3?authorization=${encodeURIComponent(t)}`)),
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
