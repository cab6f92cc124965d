import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { BASE, bearer, createHarness, type Harness } from '../helpers'
import { VERSION } from '../../src/version'

let h: Harness
beforeAll(async () => {
  h = await createHarness()
})
afterAll(() => h.close())

describe('health', () => {
  test('answers without auth, with the current time from the clock', async () => {
    const response = await h.request(`${BASE}/health`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ success: true, status: 'ok', timestamp: h.clock.seconds, ami: 'off', version: VERSION, db: 'ok', store: 'ok' })
    h.clock.advance(10)
    expect((await (await h.request(`${BASE}/health`)).json()).timestamp).toBe(h.clock.seconds)
  })
})

describe('unknown routes and methods', () => {
  test('an unknown path → 404 JSON envelope', async () => {
    for (const path of ['/', `${BASE}/nope`, `${BASE}/profile/extra`, '/pbxcore/api/other']) {
      const response = await h.request(path)
      expect(response.status).toBe(404)
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
      expect(response.headers.get('x-content-type-options')).toBe('nosniff')
      expect(await response.json()).toEqual({
        success: false,
        error: 'Not found',
        code: 'not_found',
        message: 'Not found',
        timestamp: h.clock.seconds,
      })
    }
  })

  test('a wrong method on a known path → 405 with Allow', async () => {
    for (const [method, path, allow] of [
      ['POST', '/profile', 'GET'],
      ['DELETE', '/health', 'GET'],
      ['GET', '/auth/login', 'POST'],
      ['PUT', '/check-media-access', 'GET'],
    ] as const) {
      const response = await h.request(`${BASE}${path}`, { method })
      expect(response.status).toBe(405)
      expect(response.headers.get('allow')).toBe(allow)
      expect((await response.json()).code).toBe('method_not_allowed')
    }
  })
})

describe('unexpected failures', () => {
  test('→ 500 with a request id only; the detail goes to stderr', async () => {
    await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
    const { access_token } = await h.login()
    const original = h.directory.findByUsername
    h.directory.findByUsername = () => {
      throw new Error('internal detail that must stay server-side')
    }
    const logged: string[] = []
    const consoleError = console.error
    console.error = (line: string) => logged.push(line)
    try {
      const response = await h.request(`${BASE}/profile`, { headers: bearer(access_token) })
      expect(response.status).toBe(500)
      const text = await response.text()
      const body = JSON.parse(text)
      expect(Object.keys(body).sort()).toEqual(['code', 'error', 'message', 'request_id', 'success', 'timestamp'])
      expect(body.code).toBe('internal_error')
      expect(text).not.toContain('internal detail')
      expect(logged).toHaveLength(1)
      expect(JSON.parse(logged[0]!)).toMatchObject({ request_id: body.request_id })
      expect(logged[0]).toContain('internal detail')
      expect(logged[0]).not.toContain(access_token)
    } finally {
      h.directory.findByUsername = original
      console.error = consoleError
    }
  })
})
