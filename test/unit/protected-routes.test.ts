import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import { BASE, bearer, createHarness, TEST_KEY_TEXT, type Harness } from '../helpers'

let h: Harness
let tokens: { access_token: string; refresh_token: string }

beforeAll(async () => {
  h = await createHarness()
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '0123456789' })
  tokens = await h.login()
})
afterAll(() => h.close())

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** Mints a token exactly as ModuleSoftphoneBackend (PHP, firebase/php-jwt) does: HMAC over the hex text's bytes. */
function legacyToken(claims: Record<string, unknown>, header: Record<string, unknown> = { typ: 'JWT', alg: 'HS256' }, alg = 'sha256') {
  const input = `${b64(header)}.${b64(claims)}`
  return `${input}.${createHmac(alg, Buffer.from(TEST_KEY_TEXT, 'ascii')).update(input).digest('base64url')}`
}
const legacyClaims = (extra: Record<string, unknown> = {}) => ({
  iat: h.clock.seconds,
  exp: h.clock.seconds + 3600,
  sub: 1,
  username: '201',
  role: 'user',
  type: 'access',
  ...extra,
})

const profile = (headers: Record<string, string> = {}) => h.request(`${BASE}/profile`, { headers })

async function expectDenied(response: Response, status: number, challenge: string, error: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('www-authenticate')).toBe(challenge)
  const body = await response.json()
  expect(body).toMatchObject({ success: false, error })
  expect(typeof body.code).toBe('string')
  expect(body.timestamp).toBe(h.clock.seconds)
}

describe('profile, users and history with a valid access token', () => {
  test('profile returns the legacy shape plus display_name', async () => {
    const response = await profile(bearer(tokens.access_token))
    expect(response.status).toBe(200)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await response.json()).toEqual({ success: true, user: { id: 1, username: '201', role: 'user', display_name: 'Alice' } })
  })

  test('users wraps the last users-state snapshot (none yet) in an array', async () => {
    const response = await h.request(`${BASE}/users`, { headers: bearer(tokens.access_token) })
    expect(await response.json()).toEqual({
      success: true,
      user: { id: 1, username: '201', role: 'user', display_name: 'Alice' },
      statuses: [null],
    })
  })

  test('history without a CDR file returns the mobile number, an empty list and history_source "none"', async () => {
    for (const query of ['', '?date=2026-11-23']) {
      const response = await h.request(`${BASE}/history${query}`, { headers: bearer(tokens.access_token) })
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({
        success: true,
        user: { id: 1, username: '201', role: 'user', display_name: 'Alice', mobile: '0123456789' },
        history: [],
        history_source: 'none',
      })
    }
  })

  for (const date of ['2026-02-30', '2026-13-01', '23.11.2026', 'yesterday', '2026-11-23T00:00:00Z']) {
    test(`history with date=${date} → 400 without echoing it`, async () => {
      const response = await h.request(`${BASE}/history?date=${encodeURIComponent(date)}`, { headers: bearer(tokens.access_token) })
      expect(response.status).toBe(400)
      const text = await response.text()
      expect(JSON.parse(text)).toMatchObject({ code: 'validation_failed', errors: { date: ['must be a date YYYY-MM-DD'] } })
      expect(text).not.toContain(date)
    })
  }

  test('an access token in the access_token cookie works too', async () => {
    const response = await profile({ cookie: `theme=dark; access_token=${tokens.access_token}` })
    expect(response.status).toBe(200)
  })
})

describe('profile refuses bad credentials (RFC 6750 challenges)', () => {
  const required = 'Unauthorized. Token required'
  const invalidRequest = 'Bearer realm="softphone", error="invalid_request"'
  const invalidToken = 'Bearer realm="softphone", error="invalid_token"'

  test('no credentials → 401 with a challenge without error', async () => {
    await expectDenied(await profile(), 401, 'Bearer realm="softphone"', required)
  })

  for (const [name, header] of [
    ['Basic scheme', 'Basic MjAxOnNlY3JldA=='],
    ['Bearer without a token', 'Bearer'],
    ['Bearer and a space only', 'Bearer '],
    ['two spaces', 'Bearer  abc.def.ghi'],
    ['a token with a space', 'Bearer abc def'],
    ['a token with a comma', 'Bearer abc,def'],
  ] as const) {
    test(`${name} → 400 invalid_request`, async () => {
      await expectDenied(await profile({ authorization: header }), 400, invalidRequest, 'Malformed credentials')
    })
  }

  test('header and cookie at once → 400 invalid_request', async () => {
    const response = await profile({ ...bearer(tokens.access_token), cookie: `access_token=${tokens.access_token}` })
    await expectDenied(response, 400, invalidRequest, 'Malformed credentials')
  })

  test('the bearer scheme name is case-insensitive (RFC 9110 §11.1)', async () => {
    expect((await profile({ authorization: `bearer ${tokens.access_token}` })).status).toBe(200)
  })

  const invalid = (): Array<[string, string]> => {
    const [header, payload, signature] = tokens.access_token.split('.') as [string, string, string]
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
    return [
      ['a garbage string', 'garbage'],
      ['two segments', `${header}.${payload}`],
      ['four segments', `${tokens.access_token}.${signature}`],
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`],
      ['HS512 re-signed with the real key', legacyToken(claims, { alg: 'HS512', typ: 'JWT' }, 'sha512')],
      ['no exp', legacyToken({ ...claims, exp: undefined })],
      ['iat in the future', legacyToken({ ...claims, iat: h.clock.seconds + 3600 })],
      ['a tampered payload', `${header}.${b64({ ...claims, role: 'superadmin' })}.${signature}`],
      ['a trailing = on the signature', `${tokens.access_token}=`],
      ['a token over 8 KiB', legacyToken({ ...claims, pad: 'x'.repeat(9000) })],
      ['type neither access nor refresh', legacyToken({ ...claims, type: 'id' })],
      ['jti without sid', legacyToken({ ...claims, sid: undefined })],
    ]
  }
  test('each malformed, forged or out-of-time token → 401 invalid_token', async () => {
    for (const [name, token] of invalid()) {
      const response = await profile(bearer(token))
      expect({ name, status: response.status }).toEqual({ name, status: 401 })
      await expectDenied(response, 401, invalidToken, 'Unauthorized')
    }
  })

  test('an expired token → 401, and the error body does not echo it', async () => {
    h.clock.advance(3600 + 31)
    try {
      const response = await profile(bearer(tokens.access_token))
      expect(response.status).toBe(401)
      expect(await response.clone().text()).not.toContain(tokens.access_token)
      await expectDenied(response, 401, invalidToken, 'Unauthorized')
    } finally {
      h.clock.advance(-(3600 + 31))
    }
  })

  test('a refresh token where an access token is needed → 403 insufficient_scope', async () => {
    await expectDenied(await profile(bearer(tokens.refresh_token)), 403, 'Bearer realm="softphone", error="insufficient_scope"', 'Invalid token type')
  })

  test('a disabled or removed user loses access at the next request', async () => {
    await h.directory.add({ username: '205', password: 'secret-205', displayName: '', role: 'user', mobile: '' })
    const own = await h.login('205', 'secret-205')
    expect((await profile(bearer(own.access_token))).status).toBe(200)
    h.directory.setDisabled('205', true)
    await expectDenied(await profile(bearer(own.access_token)), 401, invalidToken, 'Unauthorized')
    h.directory.setDisabled('205', false)
    expect((await profile(bearer(own.access_token))).status).toBe(200)
    h.directory.remove('205')
    await expectDenied(await profile(bearer(own.access_token)), 401, invalidToken, 'Unauthorized')
  })
})

describe('refresh', () => {
  const refresh = (headers: Record<string, string> = {}) => h.request(`${BASE}/auth/refresh`, { method: 'POST', headers })

  test('a refresh token gets a new access token in the same session', async () => {
    const response = await refresh(bearer(tokens.refresh_token))
    expect(response.status).toBe(200)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const body = await response.json()
    expect(Object.keys(body)).toEqual(['success', 'access_token', 'token_type', 'expires_in', 'refresh_token'])
    expect(body).toMatchObject({ success: true, token_type: 'Bearer', expires_in: 3600 })
    const claim = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
    expect(claim(body.access_token).sid).toBe(claim(tokens.refresh_token).sid)
    expect((await profile(bearer(body.access_token))).status).toBe(200)
    expect(h.logLines().some((line) => line.event === 'TOKEN_REFRESH' && line.user === '201')).toBe(true)
  })

  test('an access token → 403 with the legacy text', async () => {
    await expectDenied(
      await refresh(bearer(tokens.access_token)),
      403,
      'Bearer realm="softphone", error="insufficient_scope"',
      'Invalid token type. Refresh token required',
    )
  })

  test('no token or a bad one → 401 Invalid or missing token', async () => {
    await expectDenied(await refresh(), 401, 'Bearer realm="softphone"', 'Invalid or missing token')
    await expectDenied(await refresh(bearer('x.y.z')), 401, 'Bearer realm="softphone", error="invalid_token"', 'Invalid or missing token')
  })

  test('GET on the refresh route → 405 with Allow: POST', async () => {
    const response = await h.request(`${BASE}/auth/refresh`)
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('POST')
    expect((await response.json()).code).toBe('method_not_allowed')
  })
})

describe('logout', () => {
  test('revokes the access token durably; other sessions keep working', async () => {
    const mine = await h.login()
    const other = await h.login()
    const response = await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(mine.access_token) })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ success: true, message: 'Logged out successfully' })
    await expectDenied(await profile(bearer(mine.access_token)), 401, 'Bearer realm="softphone", error="invalid_token"', 'Unauthorized')
    // A malleated copy of the revoked token (trailing '=') is refused as well.
    expect((await profile(bearer(`${mine.access_token}=`))).status).toBe(401)
    expect((await profile(bearer(other.access_token))).status).toBe(200)
    const jti = JSON.parse(Buffer.from(mine.access_token.split('.')[1]!, 'base64url').toString()).jti
    expect(h.db.query('SELECT jti FROM revoked_tokens WHERE jti = ?').get(jti)).toEqual({ jti })
    const event = h.logLines().find((line) => line.event === 'LOGOUT' && line.jti === jti)
    expect(event).toMatchObject({ user: '201' })
  })

  test('without a token → 401', async () => {
    const response = await h.request(`${BASE}/auth/logout`, { method: 'POST' })
    await expectDenied(response, 401, 'Bearer realm="softphone"', 'Unauthorized. Token required')
  })
})

describe('legacy tokens from ModuleSoftphoneBackend', () => {
  test('are accepted on /profile while accept_legacy_tokens is on', async () => {
    const response = await profile(bearer(legacyToken(legacyClaims())))
    expect(response.status).toBe(200)
    expect((await response.json()).user.username).toBe('201')
  })

  test('a legacy refresh token gets an access token that starts a session', async () => {
    const response = await h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: bearer(legacyToken(legacyClaims({ type: 'refresh' }))) })
    expect(response.status).toBe(200)
    const { access_token } = await response.json()
    const claims = JSON.parse(Buffer.from(access_token.split('.')[1], 'base64url').toString())
    expect(claims.sid).toMatch(/^[A-Za-z0-9_-]{22}$/)
  })

  test('logout with a legacy token cuts off that user\'s older legacy tokens, not our own', async () => {
    const own = await h.login()
    const legacy = legacyToken(legacyClaims())
    const older = legacyToken(legacyClaims({ iat: h.clock.seconds - 60 }))
    expect((await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(legacy) })).status).toBe(200)
    expect((await profile(bearer(legacy))).status).toBe(401)
    expect((await profile(bearer(older))).status).toBe(401)
    expect((await profile(bearer(own.access_token))).status).toBe(200)
    h.clock.advance(1)
    expect((await profile(bearer(legacyToken(legacyClaims())))).status).toBe(200)
  })

  test('are refused when accept_legacy_tokens is off', async () => {
    const strict = await createHarness({ acceptLegacyTokens: false })
    try {
      await strict.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
      const response = await strict.request(`${BASE}/profile`, { headers: bearer(legacyToken(legacyClaims())) })
      expect(response.status).toBe(401)
    } finally {
      strict.close()
    }
  })
})
