/**
 * A write the store can't commit (disk full, I/O error, read-only file) answers 503 with
 * Retry-After and changes nothing, in memory either; the same request succeeds once the store is
 * writable again. `PRAGMA query_only` makes every write fail with SQLITE_READONLY, deterministically;
 * test/binary/disk-full.test.ts does the same with a really full disk.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { storeOutageOf } from '../../src/store/database'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

let h: Harness
beforeEach(async () => {
  h = await createHarness()
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
})
afterEach(() => h.close())

const readOnly = (on: boolean) => h.db.run(`PRAGMA query_only = ${on ? 'ON' : 'OFF'}`)
const post = (path: string, token: string) => h.request(`${BASE}${path}`, { method: 'POST', headers: bearer(token) })
const profileStatus = async (token: string) => (await h.request(`${BASE}/profile`, { headers: bearer(token) })).status
const sessionCount = () => h.db.query<{ n: number }, []>('SELECT count(*) AS n FROM sessions WHERE revoked_at IS NULL').get()!.n

async function expectUnavailable(response: Response, ...secrets: string[]) {
  expect(response.status).toBe(503)
  expect(response.headers.get('retry-after')).toBe('5')
  const text = await response.text()
  expect(JSON.parse(text)).toMatchObject({ success: false, code: 'store_unavailable', error: 'Storage unavailable, nothing was changed; try again' })
  for (const secret of secrets) expect(text).not.toContain(secret)
}

describe('storeOutageOf', () => {
  test('maps lock, full, I/O and read-only failures, extended codes included, and nothing else', () => {
    const outage = (code: string) => storeOutageOf(Object.assign(new Error('x'), { code }))
    expect(outage('SQLITE_BUSY')).toBe('busy')
    expect(outage('SQLITE_BUSY_SNAPSHOT')).toBe('busy')
    expect(outage('SQLITE_LOCKED_SHAREDCACHE')).toBe('busy')
    expect(outage('SQLITE_FULL')).toBe('unavailable')
    expect(outage('SQLITE_IOERR')).toBe('unavailable')
    expect(outage('SQLITE_IOERR_WRITE')).toBe('unavailable')
    expect(outage('SQLITE_IOERR_FSYNC')).toBe('unavailable')
    expect(outage('SQLITE_READONLY')).toBe('unavailable')
    expect(outage('SQLITE_READONLY_DBMOVED')).toBe('unavailable')
    expect(outage('SQLITE_CONSTRAINT_PRIMARYKEY')).toBeNull()
    expect(outage('ENOSPC')).toBeNull()
    expect(storeOutageOf(new Error('plain'))).toBeNull()
    expect(storeOutageOf(null)).toBeNull()
  })
})

describe('writes the store cannot commit', () => {
  test('logout answers 503, the token keeps working, and the same logout succeeds later', async () => {
    const { access_token, refresh_token } = await h.login()
    readOnly(true)
    await expectUnavailable(await post('/auth/logout', access_token), access_token)
    // Memory follows the commit only: nothing was revoked.
    expect(await profileStatus(access_token)).toBe(200)
    readOnly(false)
    expect((await post('/auth/logout', access_token)).status).toBe(200)
    expect(await profileStatus(access_token)).toBe(401)
    expect((await post('/auth/refresh', refresh_token)).status).toBe(401)
  })

  test('login, refresh, logout-all and session delete answer 503 and change nothing', async () => {
    const { access_token, refresh_token } = await h.login()
    const sid = JSON.parse(Buffer.from(access_token.split('.')[1]!, 'base64url').toString()).sid
    readOnly(true)
    await expectUnavailable(await h.json(`${BASE}/auth/login`, { username: '201', password: 'secret-201' }), 'secret-201')
    await expectUnavailable(await post('/auth/refresh', refresh_token), refresh_token)
    await expectUnavailable(await post('/auth/logout-all', access_token))
    await expectUnavailable(await h.request(`${BASE}/sessions/${sid}`, { method: 'DELETE', headers: bearer(access_token) }))
    expect(sessionCount()).toBe(1)
    expect(await profileStatus(access_token)).toBe(200)

    readOnly(false)
    // The refresh token was not rotated by the failed attempt, so it still rotates now.
    expect((await post('/auth/refresh', refresh_token)).status).toBe(200)
    expect((await post('/auth/logout-all', access_token)).status).toBe(200)
    expect(sessionCount()).toBe(0)
    expect(await profileStatus(access_token)).toBe(401)
  })

  test('a wrong password whose failure cannot be recorded answers 503, not 401', async () => {
    readOnly(true)
    await expectUnavailable(await h.json(`${BASE}/auth/login`, { username: '201', password: 'wrong-one' }), 'wrong-one')
    readOnly(false)
    expect(h.db.query('SELECT count(*) AS n FROM login_failures').get()).toEqual({ n: 0 })
    expect(h.logLines().filter((line) => line.event === 'AUTH_FAILED')).toEqual([])
  })
})
