import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { PasswordLogin } from '../../src/auth/password-login'
import type { Directory, DirectoryUser } from '../../src/directory/directory'
import { ARGON2_PARAMS } from '../../src/directory/embedded'
import { SqliteLoginThrottle } from '../../src/throttle/sqlite-login-throttle'
import { BASE, createHarness, type Harness } from '../helpers'

let h: Harness
beforeEach(async () => {
  h = await createHarness({ throttle: { accountFreeFailures: 3, ipFreeFailures: 6, maxDelay: 60 } })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
})
afterEach(() => h.close())

/** Counts password checks from now on. */
function countChecks(): () => number {
  let checks = 0
  const authenticate = h.directory.authenticate.bind(h.directory)
  h.directory.authenticate = (...args) => {
    checks++
    return authenticate(...args)
  }
  return () => checks
}

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

  test('a concurrent burst of failures gets no more checks than the free failures plus the concurrency', async () => {
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => login(i % 2 ? '201' : '299', 'wrong')))
    const byStatus = Object.groupBy(results, (result) => String(result.status))
    // 201 and 299 share the address: its limit (6) plus the 2 checks that may be pending at once.
    expect((byStatus['401'] ?? []).length).toBeLessThanOrEqual(6 + 2)
    expect((byStatus['429'] ?? []).length).toBeGreaterThanOrEqual(30 - 8)
    // Refusals come at request rate; the log writes one line per (address, account) per window.
    const throttled = h.logLines().filter((line) => line.event === 'LOGIN_THROTTLED')
    expect(throttled.length).toBeLessThanOrEqual(2)
  })

  test('a storm of wrong passwords from one address stops within its free failures plus the concurrency', async () => {
    const hashed = countChecks()
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => login(`4${String(i).padStart(2, '0')}`, 'wrong')))
    const statuses = results.map((result) => result.status)
    expect(hashed()).toBeLessThanOrEqual(6 + 2)
    expect(statuses.filter((status) => status === 401).length).toBe(hashed())
    expect(statuses.filter((status) => status === 429).length).toBe(120 - hashed())
  })

  test('correct passwords are never throttled for being concurrent: 100 users behind one address', async () => {
    const hash = await Bun.password.hash('office-pass', ARGON2_PARAMS)
    const insert = h.db.query('INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, 0)')
    for (let i = 0; i < 100; i++) insert.run(`5${String(i).padStart(2, '0')}`, hash)
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => login(`5${String(i).padStart(2, '0')}`, 'office-pass')))
    expect(results.map((result) => result.status)).toEqual(Array(100).fill(200))
    // Twelve phones of one user at once (after a Wi-Fi outage): its account limit is 3.
    const same = await Promise.all(Array.from({ length: 12 }, () => login('201', 'secret-201')))
    expect(same.map((result) => result.status)).toEqual(Array(12).fill(200))
    expect(h.logLines().filter((line) => line.event === 'LOGIN_THROTTLED')).toEqual([])
    expect(h.db.query('SELECT count(*) AS n FROM login_failures').get()).toEqual({ n: 0 })
  }, 60_000)

  test('after an address-wide delay ends, correct logins keep succeeding instead of alternating with 429', async () => {
    for (let i = 0; i < 7; i++) await login(`60${i}`, 'wrong')
    expect((await login('201', 'secret-201')).status).toBe(429)
    h.clock.advance(1)
    const statuses = []
    for (let i = 0; i < 6; i++) statuses.push((await login('201', 'secret-201')).status)
    expect(statuses).toEqual(Array(6).fill(200))
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

  test('a login beyond the waiting queue gets 503 and counts for nothing', async () => {
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const directory: Directory = {
      authenticate: async () => (await held, null),
      findById: () => null,
      findByUsername: () => null,
    }
    // One slot and two waiting places: the fourth concurrent attempt is refused at once.
    const logins = new PasswordLogin(directory, h.services.throttle, 1, 2)
    const pending = [1, 2, 3].map(() => logins.attempt('201', 'wrong', '198.51.100.7'))
    expect(await logins.attempt('201', 'secret-201', '198.51.100.7')).toEqual({ ok: false, reason: 'busy' })
    release()
    expect(await Promise.all(pending)).toEqual(Array(3).fill({ ok: false, reason: 'invalid' }))
    // Three failures were recorded, the refused attempt none: the account's limit (3) isn't passed.
    expect(await h.services.throttle.check('201', '198.51.100.7')).toEqual({ allowed: true })
  })

  test('the login route answers a full queue with 503 and Retry-After', async () => {
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const authenticate = h.directory.authenticate.bind(h.directory)
    h.directory.authenticate = async (...args): Promise<DirectoryUser | null> => (await held, authenticate(...args))
    // Two slots and 128 waiting places, all taken by different addresses.
    const pending = Array.from({ length: 130 }, (_, i) => login('201', 'secret-201', `10.1.${i >> 8}.${i & 255}`))
    const busy = await login('201', 'secret-201')
    expect(busy.status).toBe(503)
    expect(busy.retryAfter).toBe('1')
    expect(JSON.parse(busy.text)).toMatchObject({ code: 'login_busy', error: 'Too many logins in progress, try again' })
    release()
    expect((await Promise.all(pending)).every((result) => result.status === 200)).toBe(true)
    h.directory.authenticate = authenticate
  }, 60_000)

  test('a success clears the account counter for that address', async () => {
    for (let i = 0; i < 3; i++) await login('201', 'wrong')
    expect((await login('201', 'secret-201')).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await login('201', 'wrong')).status).toBe(401)
    expect((await login('201', 'secret-201')).status).toBe(200)
  })

  test('past 100 000 counters SQLite alone answers, exactly as the memory copy did; a purge brings the copy back', async () => {
    for (let i = 0; i < 4; i++) await login('201', 'wrong')
    const insert = h.db.query('INSERT INTO login_failures (key, failures, last_failure, blocked_until) VALUES (?, 1, ?, 0)')
    h.db.transaction(() => {
      for (let i = 0; i < 100_000; i++) insert.run(`ip:10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, h.clock.seconds - 3700)
    })()
    const settings = { accountFreeFailures: 3, ipFreeFailures: 6, maxDelay: 60 }
    const large = new SqliteLoginThrottle(h.db, h.clock, settings)
    expect(await large.check('201', '198.51.100.7')).toEqual({ allowed: false, retryAfter: 1 })
    // A change behind its back shows which one answers: here SQLite.
    h.db.run("UPDATE login_failures SET blocked_until = 0 WHERE key LIKE 'account:%'")
    expect(await large.check('201', '198.51.100.7')).toEqual({ allowed: true })
    await large.begin('202', '198.51.100.8')
    await large.finish('202', '198.51.100.8', 'failure')
    expect(h.db.query('SELECT failures FROM login_failures WHERE key = ?').get('ip:198.51.100.8')).toEqual({ failures: 1 })
    // The old rows are over an hour old: the purge removes them and loads the memory copy, which answers from then on.
    expect(await large.purgeExpired()).toBe(100_000)
    h.db.run(`UPDATE login_failures SET blocked_until = ${h.clock.seconds + 5} WHERE key LIKE 'account:%'`)
    expect(await large.check('201', '198.51.100.7')).toEqual({ allowed: true })
  })

  test('state survives a restart: a new throttle on the same database still blocks', async () => {
    for (let i = 0; i < 4; i++) await login('201', 'wrong')
    const reopened = new SqliteLoginThrottle(h.db, h.clock, { accountFreeFailures: 3, ipFreeFailures: 6, maxDelay: 60 })
    expect(await reopened.check('201', '198.51.100.7')).toEqual({ allowed: false, retryAfter: 1 })
    h.clock.advance(3601)
    expect(await reopened.purgeExpired()).toBe(2)
    expect(await reopened.check('201', '198.51.100.7')).toEqual({ allowed: true })
  })
})
