import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { SqliteRevocations } from '../../src/tokens/sqlite-revocations'
import { hashTokenId } from '../../src/sessions/session-records'
import type { RotationMode } from '../../src/sessions/sessions'
import { BASE, bearer, createHarness, TEST_KEY_TEXT, type Harness } from '../helpers'

let h: Harness
async function setUp(rotation: RotationMode = 'compatible') {
  h = await createHarness({ rotation })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
}
afterEach(() => h.close())

const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
const refresh = async (token: string) => {
  const response = await h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: bearer(token) })
  return { status: response.status, challenge: response.headers.get('www-authenticate'), body: await response.json() }
}
const profileStatus = async (token: string) => (await h.request(`${BASE}/profile`, { headers: bearer(token) })).status
const sessionRow = (sid: string) => h.db.query<Record<string, unknown>, [string]>('SELECT * FROM sessions WHERE id = ?').get(sid)

describe('login starts a session', () => {
  beforeEach(() => setUp())

  test('both tokens carry its sid; the row holds client details and only a hash of the refresh id', async () => {
    const tokens = await h.login()
    const { sid, jti } = claims(tokens.refresh_token)
    expect(claims(tokens.access_token).sid).toBe(sid)
    expect(sessionRow(sid)).toMatchObject({
      username: '201',
      ip: '127.0.0.1',
      current_hash: hashTokenId(jti),
      previous_hash: null,
      revoked_at: null,
      created_at: h.clock.seconds,
    })
    h.db.run('PRAGMA wal_checkpoint(TRUNCATE)')
    const file = readFileSync(join(h.dir, 'softphone.db')).toString('latin1')
    expect(file.includes(jti)).toBe(false)
    expect(file.includes(tokens.refresh_token.split('.')[2]!)).toBe(false)
  })

  test('GET sessions lists the user\'s sessions and marks the current one', async () => {
    const first = await h.login()
    h.clock.advance(5)
    const second = await h.request(`${BASE}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'Phone/2' },
      body: JSON.stringify({ username: '201', password: 'secret-201' }),
    })
    const secondTokens = await second.json()
    const response = await h.request(`${BASE}/sessions`, { headers: bearer(first.access_token) })
    expect(response.status).toBe(200)
    const { sessions } = await response.json()
    expect(sessions).toEqual([
      { id: claims(first.access_token).sid, created_at: h.clock.seconds - 5, last_used_at: h.clock.seconds - 5, ip: '127.0.0.1', user_agent: '', current: true },
      { id: claims(secondTokens.access_token).sid, created_at: h.clock.seconds, last_used_at: h.clock.seconds, ip: '127.0.0.1', user_agent: 'Phone/2', current: false },
    ])
  })
})

describe('rotation, compatible mode (the default)', () => {
  beforeEach(() => setUp('compatible'))

  test('each refresh returns a new refresh token and marks the old one used', async () => {
    const { refresh_token: r1 } = await h.login()
    h.clock.advance(10)
    const step = await refresh(r1)
    expect(step.status).toBe(200)
    const r2 = step.body.refresh_token
    expect(r2).not.toBe(r1)
    expect(claims(r2)).toMatchObject({ sid: claims(r1).sid, type: 'refresh', iat: h.clock.seconds, exp: h.clock.seconds + 2592000 })
    expect(sessionRow(claims(r1).sid)).toMatchObject({ current_hash: hashTokenId(claims(r2).jti), previous_hash: hashTokenId(claims(r1).jti) })
    expect(h.logLines().at(-1)).toMatchObject({ event: 'TOKEN_REFRESH', sid: claims(r1).sid, method: 'refresh' })
  })

  test('an app that never adopts the new token keeps getting the same successor', async () => {
    const { refresh_token: r1 } = await h.login()
    const first = await refresh(r1)
    for (let i = 0; i < 3; i++) {
      h.clock.advance(60)
      const again = await refresh(r1)
      expect(again.status).toBe(200)
      expect(again.body.refresh_token).toBe(first.body.refresh_token)
      expect(await profileStatus(again.body.access_token)).toBe(200)
    }
  })

  test('a replayed predecessor after the successor was used is reuse: the whole session dies', async () => {
    const { refresh_token: r1, access_token: a1 } = await h.login()
    const r2 = (await refresh(r1)).body.refresh_token
    const step = await refresh(r2)
    const r3 = step.body.refresh_token
    const a3 = step.body.access_token
    const replay = await refresh(r1)
    expect(replay.status).toBe(401)
    expect(replay.challenge).toBe('Bearer realm="softphone", error="invalid_token"')
    expect(replay.body.error).toBe('Invalid or missing token')
    expect(h.logLines().at(-1)).toMatchObject({ event: 'TOKEN_REUSE', sid: claims(r1).sid, user: '201' })
    expect((await refresh(r3)).status).toBe(401)
    expect(await profileStatus(a1)).toBe(401)
    expect(await profileStatus(a3)).toBe(401)
    expect(sessionRow(claims(r1).sid)).toMatchObject({ revoke_reason: 'reuse', revoked_at: h.clock.seconds })
  })

  test('only the immediate predecessor gets the grace', async () => {
    const { refresh_token: r1 } = await h.login()
    const r2 = (await refresh(r1)).body.refresh_token
    const r3 = (await refresh(r2)).body.refresh_token
    // r2 is r3's immediate predecessor and r3 is unused: a lost response, answered again.
    expect((await refresh(r2)).body.refresh_token).toBe(r3)
    // r1 is two steps back.
    expect((await refresh(r1)).status).toBe(401)
  })

  test('twenty parallel refreshes with one token produce exactly one successor and no 500', async () => {
    const { refresh_token: r1 } = await h.login()
    const results = await Promise.all(Array.from({ length: 20 }, () => refresh(r1)))
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200))
    expect(new Set(results.map((r) => r.body.refresh_token)).size).toBe(1)
    const successor = results[0]!.body.refresh_token
    expect(sessionRow(claims(r1).sid)).toMatchObject({ current_hash: hashTokenId(claims(successor).jti), revoked_at: null })
    expect((await refresh(successor)).status).toBe(200)
  })

  test('revocations survive a restart of the in-memory state', async () => {
    const { refresh_token: r1, access_token: a1 } = await h.login()
    await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(a1) })
    const reloaded = new SqliteRevocations(h.db, h.clock)
    expect(reloaded.isSessionRevoked(claims(r1).sid)).toBe(true)
    expect(reloaded.isTokenIdRevoked(claims(a1).jti)).toBe(true)
  })
})

describe('rotation, strict mode', () => {
  beforeEach(() => setUp('strict'))

  test('any second use of a refresh token is reuse', async () => {
    const { refresh_token: r1 } = await h.login()
    const r2 = (await refresh(r1)).body.refresh_token
    expect((await refresh(r1)).status).toBe(401)
    expect((await refresh(r2)).status).toBe(401)
    expect(h.logLines().some((line) => line.event === 'TOKEN_REUSE')).toBe(true)
  })
})

describe('rotation off (legacy)', () => {
  beforeEach(() => setUp('off'))

  test('the refresh token is never replaced, and keeps working', async () => {
    const { refresh_token: r1 } = await h.login()
    for (let i = 0; i < 3; i++) {
      const step = await refresh(r1)
      expect(step.status).toBe(200)
      expect(Object.keys(step.body)).toEqual(['success', 'access_token', 'token_type', 'expires_in'])
    }
    expect(sessionRow(claims(r1).sid)).toMatchObject({ current_hash: hashTokenId(claims(r1).jti), previous_hash: null })
  })
})

describe('ending sessions', () => {
  beforeEach(() => setUp())

  test('logout ends the session: its refresh token and its other access tokens die too', async () => {
    const { access_token: a1, refresh_token: r1 } = await h.login()
    const a2 = (await refresh(r1)).body.access_token
    const other = await h.login()
    await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(a1) })
    expect(await profileStatus(a1)).toBe(401)
    expect(await profileStatus(a2)).toBe(401)
    expect((await refresh(r1)).status).toBe(401)
    expect(await profileStatus(other.access_token)).toBe(200)
    expect(sessionRow(claims(a1).sid)).toMatchObject({ revoke_reason: 'logout' })
  })

  test('logout-all ends every session of the user; a new login works at once', async () => {
    const one = await h.login()
    const two = await h.login()
    const response = await h.request(`${BASE}/auth/logout-all`, { method: 'POST', headers: bearer(one.access_token) })
    expect(await response.json()).toEqual({ success: true, message: 'Logged out from all sessions', sessions_ended: 2 })
    for (const token of [one.access_token, two.access_token]) expect(await profileStatus(token)).toBe(401)
    expect((await refresh(two.refresh_token)).status).toBe(401)
    expect(h.logLines().at(-1)).toMatchObject({ event: 'SESSION_REVOKED', user: '201', reason: 'logout-all: 2 sessions' })
    const fresh = await h.login()
    expect(await profileStatus(fresh.access_token)).toBe(200)
  })

  test('DELETE sessions/<sid> ends another of the user\'s sessions', async () => {
    const mine = await h.login()
    const lost = await h.login()
    const response = await h.request(`${BASE}/sessions/${claims(lost.access_token).sid}`, { method: 'DELETE', headers: bearer(mine.access_token) })
    expect(response.status).toBe(200)
    expect(await profileStatus(lost.access_token)).toBe(401)
    expect((await refresh(lost.refresh_token)).status).toBe(401)
    expect(await profileStatus(mine.access_token)).toBe(200)
    expect(h.logLines().at(-1)).toMatchObject({ event: 'SESSION_REVOKED', sid: claims(lost.access_token).sid })
  })

  test('DELETE of an unknown, already ended or foreign session → 404; a malformed id → 400', async () => {
    await h.directory.add({ username: '202', password: 'secret-202', displayName: '', role: 'user', mobile: '' })
    const mine = await h.login()
    const theirs = await h.login('202', 'secret-202')
    const del = (sid: string) => h.request(`${BASE}/sessions/${sid}`, { method: 'DELETE', headers: bearer(mine.access_token) })
    expect((await del('A'.repeat(22))).status).toBe(404)
    expect((await del(claims(theirs.access_token).sid)).status).toBe(404)
    expect(await profileStatus(theirs.access_token)).toBe(200)
    const malformed = await del('not-a-session')
    expect(malformed.status).toBe(400)
    expect((await malformed.json()).errors).toEqual({ sid: ['must be a session id'] })
  })
})

describe('legacy refresh tokens', () => {
  beforeEach(() => setUp())

  const legacyRefresh = () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const payload = { iat: h.clock.seconds, exp: h.clock.seconds + 2592000, sub: 1, username: '201', role: 'user', type: 'refresh' }
    const input = `${b64({ typ: 'JWT', alg: 'HS256' })}.${b64(payload)}`
    return `${input}.${createHmac('sha256', Buffer.from(TEST_KEY_TEXT, 'ascii')).update(input).digest('base64url')}`
  }

  test('start a tracked session; a legacy app that keeps sending it keeps working', async () => {
    const legacy = legacyRefresh()
    const first = await refresh(legacy)
    expect(first.status).toBe(200)
    const { sid } = claims(first.body.refresh_token)
    expect(sessionRow(sid)).toMatchObject({ username: '201', revoked_at: null })
    for (let i = 0; i < 2; i++) expect((await refresh(legacy)).body.refresh_token).toBe(first.body.refresh_token)
  })

  test('once the app adopts the new token, replaying the legacy one is reuse', async () => {
    const legacy = legacyRefresh()
    const adopted = (await refresh(legacy)).body.refresh_token
    expect((await refresh(adopted)).status).toBe(200)
    expect((await refresh(legacy)).status).toBe(401)
  })
})
