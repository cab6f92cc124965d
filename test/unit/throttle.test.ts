import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { DirectoryBusyError } from '../../src/directory/directory'
import { LoginThrottle } from '../../src/throttle/login-throttle'
import { BASE, createHarness, type Harness } from '../helpers'

let h: Harness
beforeEach(async () => {
  h = await createHarness({ throttle: { accountFreeFailures: 3, ipFreeFailures: 6, maxDelay: 60 } })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
})
afterEach(() => h.close())

async function login(username: string, password: string, ip = '198.51.100.7') {
  // The harness's requests come from loopback, a trusted proxy, so X-Real-IP names the client.
  const response = await h.json(`${BASE}/auth/login`, { username, password }, { headers: { 'x-real-ip': ip } })
  return { status: response.status, retryAfter: response.headers.get('retry-after'), text: await response.text() }
}

describe('login throttling', () => {
  test('after the free failures, delays double; the right password gets 429 during a delay', async () => {
    for (let i = 0; i < 3; i++) expect((await login('201', 'wrong')).status).toBe(401)
    expect((await login('201', 'wrong')).status).toBe(401) // 4th failure: first delay, 1 s
    const blocked = await login('201', 'secret-201')
    expect(blocked.status).toBe(429)
    expect(blocked.retryAfter).toBe('1')
    expect(JSON.parse(blocked.text)).toMatchObject({ success: false, error: 'Too many login attempts, try again later', code: 'login_throttled' })
    expect(h.logLines().at(-1)).toMatchObject({ event: 'LOGIN_THROTTLED', user: '201', method: 'password' })

    h.clock.advance(1)
    expect((await login('201', 'wrong')).status).toBe(401) // 5th: 2 s
    expect((await login('201', 'secret-201')).retryAfter).toBe('2')
    h.clock.advance(2)
    expect((await login('201', 'wrong')).status).toBe(401) // 6th: 4 s
    expect((await login('201', 'wrong')).retryAfter).toBe('4')
    h.clock.advance(4)
    expect((await login('201', 'secret-201')).status).toBe(200)
  })

  test('a concurrent burst gets no more attempts than the free failures plus the one that starts the delay', async () => {
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => login(i % 2 ? '201' : '299', 'wrong')))
    const byStatus = Object.groupBy(results, (result) => String(result.status))
    // 201 and 299 share the address: its limit (6) and each account's (3) apply.
    expect((byStatus['401'] ?? []).length).toBeLessThanOrEqual(7)
    expect((byStatus['429'] ?? []).length).toBeGreaterThanOrEqual(23)
    // Refusals come at request rate; the log writes one line per (address, account) per window.
    const throttled = h.logLines().filter((line) => line.event === 'LOGIN_THROTTLED')
    expect(throttled.length).toBeLessThanOrEqual(2)
  })

  test('the delay is capped, so nobody is locked out for long', async () => {
    for (let i = 0; i < 12; i++) {
      await login('201', 'wrong')
      h.clock.advance(3600 - 1)
    }
    const blocked = await login('201', 'secret-201')
    expect(Number(blocked.retryAfter ?? 0)).toBeLessThanOrEqual(60)
  })

  test('existing and unknown extensions are throttled alike, with identical answers', async () => {
    for (let i = 0; i < 4; i++) {
      await login('201', 'wrong', '198.51.100.8')
      await login('299', 'wrong', '198.51.100.9')
    }
    const existing = await login('201', 'secret-201', '198.51.100.8')
    const unknown = await login('299', 'whatever', '198.51.100.9')
    expect(existing.status).toBe(429)
    expect(unknown.status).toBe(429)
    expect(existing.text).toBe(unknown.text)
    expect(existing.retryAfter).toBe(unknown.retryAfter)
  })

  test('an attacker\'s address is slowed, the user elsewhere is not', async () => {
    for (let i = 0; i < 8; i++) await login('201', 'wrong', '203.0.113.66')
    expect((await login('201', 'secret-201', '203.0.113.66')).status).toBe(429)
    expect((await login('201', 'secret-201', '192.0.2.10')).status).toBe(200)
  })

  test('many extensions from one address hit the per-address limit', async () => {
    for (let i = 0; i < 6; i++) expect((await login(`30${i}`, 'wrong')).status).toBe(401)
    expect((await login('310', 'wrong')).status).toBe(401) // 7th from this address: delay starts
    expect((await login('201', 'secret-201')).status).toBe(429)
  })

  test('throttling happens before password work', async () => {
    for (let i = 0; i < 4; i++) await login('201', 'wrong')
    let hashed = 0
    const authenticate = h.directory.authenticate.bind(h.directory)
    h.directory.authenticate = (...args) => {
      hashed++
      return authenticate(...args)
    }
    expect((await login('201', 'secret-201')).status).toBe(429)
    expect(hashed).toBe(0)
    h.directory.authenticate = authenticate
  })

  test('a login the directory is too busy to check gets 503 and counts for nothing', async () => {
    const authenticate = h.directory.authenticate.bind(h.directory)
    h.directory.authenticate = async () => {
      throw new DirectoryBusyError('too many logins in progress')
    }
    for (let i = 0; i < 10; i++) {
      const busy = await login('201', 'secret-201')
      expect(busy.status).toBe(503)
      expect(busy.retryAfter).toBe('1')
      expect(JSON.parse(busy.text)).toMatchObject({ code: 'login_busy', error: 'Too many logins in progress, try again' })
    }
    h.directory.authenticate = authenticate
    expect((await login('201', 'secret-201')).status).toBe(200)
  })

  test('a success clears the account counter for that address', async () => {
    for (let i = 0; i < 3; i++) await login('201', 'wrong')
    expect((await login('201', 'secret-201')).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await login('201', 'wrong')).status).toBe(401)
    expect((await login('201', 'secret-201')).status).toBe(200)
  })

  test('state survives a restart: a new throttle on the same database still blocks', async () => {
    for (let i = 0; i < 4; i++) await login('201', 'wrong')
    const reopened = new LoginThrottle(h.db, h.clock, { accountFreeFailures: 3, ipFreeFailures: 6, maxDelay: 60 })
    expect(reopened.check('201', '198.51.100.7')).toEqual({ allowed: false, retryAfter: 1 })
    h.clock.advance(3601)
    expect(reopened.purgeExpired()).toBe(2)
    expect(reopened.check('201', '198.51.100.7')).toEqual({ allowed: true })
  })
})
