import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

const LOGIN = `${BASE}/auth/login`
const PASSWORD = 'secret-201'
let h: Harness

beforeAll(async () => {
  h = await createHarness()
  await h.directory.add({ username: '201', password: PASSWORD, displayName: 'Alice', role: 'user', mobile: '' })
  await h.directory.add({ username: '203', password: 'secret-203', displayName: 'Off', role: 'user', mobile: '' })
  h.directory.setDisabled('203', true)
})
afterAll(() => h.close())

/** Sends a login and returns status, headers and the raw body text (bodies are compared byte for byte). */
async function login(body: unknown, headers: Record<string, string> = {}) {
  const response = await h.json(LOGIN, body, { headers })
  return { status: response.status, headers: response.headers, text: await response.text() }
}

describe('login succeeds', () => {
  test('with the exact legacy shape, no-store and nosniff', async () => {
    const { status, headers, text } = await login({ username: '201', password: PASSWORD })
    expect(status).toBe(200)
    const body = JSON.parse(text)
    expect(Object.keys(body)).toEqual(['success', 'access_token', 'refresh_token', 'token_type', 'expires_in'])
    expect(body).toMatchObject({ success: true, token_type: 'Bearer', expires_in: 3600 })
    expect(headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(headers.get('cache-control')).toBe('no-store')
    expect(headers.get('x-content-type-options')).toBe('nosniff')
  })

  test('issues tokens whose claims carry username, role, type, jti and sid', async () => {
    const { text } = await login({ username: '201', password: PASSWORD })
    const { access_token, refresh_token } = JSON.parse(text)
    const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
    const access = claims(access_token)
    const refresh = claims(refresh_token)
    expect(access).toMatchObject({ sub: '1', username: '201', role: 'user', type: 'access', iat: h.clock.seconds, exp: h.clock.seconds + 3600 })
    expect(refresh).toMatchObject({ type: 'refresh', exp: h.clock.seconds + 2592000 })
    expect(access.sid).toBe(refresh.sid)
    expect(access.jti).not.toBe(refresh.jti)
    expect(access.jti).toMatch(/^[A-Za-z0-9_-]{22}$/)
  })

  test('records AUTH_SUCCESS with user, method and sid, and no secret', async () => {
    await login({ username: '201', password: PASSWORD }, { 'user-agent': 'TestPhone/1.0' })
    const event = h.logLines().filter((line) => line.event === 'AUTH_SUCCESS').at(-1)!
    expect(event).toMatchObject({ user: '201', method: 'password', ua: 'TestPhone/1.0' })
    expect(typeof event.sid).toBe('string')
    expect(JSON.stringify(h.logLines())).not.toContain(PASSWORD)
  })

  test('ignores extra fields such as role: no privilege change', async () => {
    const { status, text } = await login({ username: '201', password: PASSWORD, role: 'superadmin', id: 99 })
    expect(status).toBe(200)
    const profile = await h.request(`${BASE}/profile`, { headers: bearer(JSON.parse(text).access_token) })
    expect((await profile.json()).user).toEqual({ id: 1, username: '201', role: 'user', display_name: 'Alice' })
  })
})

describe('login refuses bad credentials without telling them apart', () => {
  test('unknown user, wrong password and disabled user get byte-identical 401s', async () => {
    const unknown = await login({ username: '299', password: PASSWORD })
    const wrong = await login({ username: '201', password: 'nope' })
    const disabled = await login({ username: '203', password: 'secret-203' })
    for (const result of [unknown, wrong, disabled]) {
      expect(result.status).toBe(401)
      expect(result.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    }
    expect(wrong.text).toBe(unknown.text)
    expect(disabled.text).toBe(unknown.text)
    expect(JSON.parse(unknown.text)).toEqual({
      success: false,
      error: 'Invalid credentials',
      code: 'invalid_credentials',
      message: 'Invalid credentials',
      timestamp: h.clock.seconds,
    })
  })

  test('logs the client IP: X-Real-IP only from a trusted proxy, never X-Forwarded-For', async () => {
    const attempt = async (peer: string, headers: Record<string, string>) => {
      await h.json(LOGIN, { username: '201', password: 'nope' }, { peer, headers })
      return h.logLines().at(-1)!.ip
    }
    expect(await attempt('127.0.0.1', { 'x-real-ip': '198.51.100.23' })).toBe('198.51.100.23')
    expect(await attempt('203.0.113.5', { 'x-real-ip': '198.51.100.23' })).toBe('203.0.113.5')
    expect(await attempt('127.0.0.1', { 'x-forwarded-for': '198.51.100.24' })).toBe('127.0.0.1')
    expect(await attempt('::ffff:127.0.0.1', { 'x-real-ip': '2001:db8::1' })).toBe('2001:db8::1')
  })

  test('records AUTH_FAILED with the attempted user and reason, never the password', async () => {
    await login({ username: '201', password: 'wrong-password-canary' })
    const event = h.logLines().filter((line) => line.event === 'AUTH_FAILED').at(-1)!
    expect(event).toMatchObject({ user: '201', method: 'password', reason: 'invalid credentials' })
    expect(JSON.stringify(h.logLines())).not.toContain('wrong-password-canary')
  })
})

describe('login rejects malformed input with 400 and no echo', () => {
  const legacyEmpty = { success: false, error: 'Invalid credentials provided', code: 'credentials_missing' }
  for (const [name, body] of [
    ['empty username', { username: '', password: PASSWORD }],
    ['empty password', { username: '201', password: '' }],
    ['missing password', { username: '201' }],
    ['null fields', { username: null, password: null }],
    ['empty object', {}],
  ] as const) {
    test(`${name} → Invalid credentials provided`, async () => {
      const { status, text } = await login(body)
      expect(status).toBe(400)
      expect(JSON.parse(text)).toMatchObject(legacyEmpty)
    })
  }

  test('non-string fields → validation errors per field', async () => {
    const { status, text, headers } = await login({ username: 201, password: ['secret-echo'] })
    expect(status).toBe(400)
    expect(headers.get('www-authenticate')).toBeNull()
    expect(JSON.parse(text)).toMatchObject({
      code: 'validation_failed',
      errors: { username: ['must be a string'], password: ['must be a string'] },
    })
    expect(text).not.toContain('secret-echo')
  })

  test('a JSON array or string body', async () => {
    for (const body of ['[1,2]', '"text"', 'null', '42']) {
      const { status, text } = await login(body)
      expect(status).toBe(400)
      expect(JSON.parse(text).code).toBe('validation_failed')
    }
  })

  test('invalid JSON', async () => {
    const { status, text } = await login('{"username":"201","password":"secret-echo"')
    expect(status).toBe(400)
    expect(JSON.parse(text).code).toBe('invalid_json')
    expect(text).not.toContain('secret-echo')
  })

  test('invalid UTF-8 in the body', async () => {
    const response = await h.request(LOGIN, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    })
    expect(response.status).toBe(400)
    expect((await response.json()).code).toBe('invalid_json')
  })

  test('no body at all', async () => {
    const response = await h.request(LOGIN, { method: 'POST' })
    expect(response.status).toBe(400)
    expect((await response.json()).code).toBe('unsupported_content_type')
  })

  for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
    test(`content type ${type}`, async () => {
      const response = await h.request(LOGIN, {
        method: 'POST',
        headers: { 'content-type': type },
        body: 'username=201&password=secret-echo',
      })
      expect(response.status).toBe(400)
      const text = await response.text()
      expect(JSON.parse(text).code).toBe('unsupported_content_type')
      expect(text).not.toContain('secret-echo')
    })
  }

  test('a body over 8 KiB → 413', async () => {
    const { status, text } = await login({ username: '201', password: PASSWORD, pad: 'x'.repeat(9000) })
    expect(status).toBe(413)
    expect(JSON.parse(text).code).toBe('payload_too_large')
  })

  test('a username over 64 characters or a password over 1024 bytes is refused before any hashing', async () => {
    let hashed = 0
    const original = h.directory.authenticate.bind(h.directory)
    h.directory.authenticate = (...args) => {
      hashed++
      return original(...args)
    }
    try {
      const longUser = await login({ username: '2'.repeat(65), password: PASSWORD })
      // 600 two-byte characters: 600 characters but 1200 bytes.
      const longPassword = await login({ username: '201', password: 'é'.repeat(600) })
      expect(longUser.status).toBe(400)
      expect(JSON.parse(longUser.text).errors).toEqual({ username: ['must be at most 64 characters'] })
      expect(longPassword.status).toBe(400)
      expect(JSON.parse(longPassword.text).errors).toEqual({ password: ['must be at most 1024 bytes'] })
      expect(hashed).toBe(0)
    } finally {
      h.directory.authenticate = original
    }
  })
})
