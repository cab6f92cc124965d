import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MIGRATIONS } from '../../src/store/migrations'
import { openStore } from '../../src/store/database'
import { parseInstant } from '../../src/spaces/space-input'
import { requestFor } from '../route-calls'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

async function addUser(h: Harness, username: string, role: 'user' | 'admin' | 'superadmin', spaceId?: number) {
  await h.directory.add({ username, password: `secret-${username}`, displayName: username, role, mobile: '', spaceId })
}

/** A request for the route `path` with its parameters filled in. */

describe('a user of an expired space (README "Spaces")', () => {
  let h: Harness
  let expiredTokens: { access_token: string; refresh_token: string }
  let otherTokens: { access_token: string; refresh_token: string }

  beforeEach(async () => {
    h = await createHarness()
    const space = h.spaces.add('expired.example', h.clock.seconds + 60)
    // A superadmin, so that no route refuses it for its role: every 403 below is the space's.
    await addUser(h, '301', 'superadmin', space.id)
    await addUser(h, '201', 'user')
    expiredTokens = await h.login('301', 'secret-301')
    otherTokens = await h.login('201', 'secret-201')
    h.clock.advance(61)
  })
  afterEach(() => h.close())

  test('gets 403 space_expired, without a challenge, on every authenticated route under the base path', async () => {
    const routes = h.app.routes.filter((route) => route.path.startsWith(BASE) && (route.hooks as { detail?: Record<string, unknown> }).detail?.['x-access'] !== 'public')
    expect(routes.length).toBeGreaterThan(15)
    for (const route of routes) {
      const access = (route.hooks as { detail: Record<string, unknown> }).detail['x-access']
      const token = access === 'refresh' ? expiredTokens.refresh_token : expiredTokens.access_token
      const response = await h.request(...requestFor(`${route.method} ${route.path.slice(BASE.length)}`, route.method, bearer(token)))
      const body = (await response.json()) as Record<string, unknown>
      expect({ route: `${route.method} ${route.path}`, status: response.status, code: body.code }).toEqual({
        route: `${route.method} ${route.path}`,
        status: 403,
        code: 'space_expired',
      })
      expect(body.error).toBe('The account space has expired')
      // check-media-access sends its insufficient_scope challenge with every 403 (README "Recordings: check-media-access").
      if (!route.path.endsWith('/check-media-access')) expect(response.headers.get('www-authenticate')).toBeNull()
    }
  })

  test('profile, sessions and check-media-access answer 403; a user of the default space still gets 200', async () => {
    for (const path of ['/profile', '/sessions', '/check-media-access']) {
      expect((await h.request(`${BASE}${path}`, { headers: bearer(expiredTokens.access_token) })).status).toBe(403)
      expect((await h.request(`${BASE}${path}`, { headers: bearer(otherTokens.access_token) })).status).toBe(200)
    }
  })

  test('login with the right password gets 403 and no tokens, logged as AUTH_FAILED; a wrong password stays 401', async () => {
    const refused = await h.json(`${BASE}/auth/login`, { username: '301', password: 'secret-301' })
    expect(refused.status).toBe(403)
    const body = (await refused.json()) as Record<string, unknown>
    expect(body).toMatchObject({ success: false, code: 'space_expired', error: 'The account space has expired' })
    expect(body).not.toHaveProperty('access_token')
    expect(h.logLines().at(-1)).toMatchObject({ event: 'AUTH_FAILED', user: '301', reason: 'space expired' })
    expect((await h.json(`${BASE}/auth/login`, { username: '301', password: 'wrong-password' })).status).toBe(401)
    expect((await h.json(`${BASE}/auth/login`, { username: '201', password: 'secret-201' })).status).toBe(200)
  })

  test('refresh gets 403 space_expired', async () => {
    const response = await h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: bearer(expiredTokens.refresh_token) })
    expect(response.status).toBe(403)
    expect(((await response.json()) as { code: string }).code).toBe('space_expired')
  })

  test('public routes still answer', async () => {
    expect((await h.request(`${BASE}/health`)).status).toBe(200)
    expect((await h.request(`${BASE}/health`, { headers: bearer(expiredTokens.access_token) })).status).toBe(200)
  })

  test('renewing the expiry lets the user back in at once', async () => {
    h.spaces.setExpiry('expired.example', null)
    expect((await h.request(`${BASE}/profile`, { headers: bearer(expiredTokens.access_token) })).status).toBe(200)
  })
})

describe('an open stream', () => {
  test('ends with a final event once its user\'s space expires', async () => {
    const h = await createHarness()
    const space = h.spaces.add('streams.example', null)
    await addUser(h, '301', 'user', space.id)
    const { access_token } = await h.login('301', 'secret-301')
    const response = await h.request(`${BASE}/sub/users-state?token=${access_token}`, { headers: { accept: 'text/event-stream' } })
    expect(response.status).toBe(200)
    h.spaces.setExpiry('streams.example', h.clock.seconds)
    expect(await new Response(response.body).text()).toContain('event: close\ndata: {"reason":"auth_failed"}\n\n')
    expect(h.hub.subscriptionCount).toBe(0)
    h.close()
  })
})

describe('the space check', () => {
  let h: Harness
  beforeEach(async () => {
    h = await createHarness()
  })
  afterEach(() => h.close())

  test('refuses from expire_at on, not a second before', async () => {
    const space = h.spaces.add('edge.example', h.clock.seconds + 10)
    await addUser(h, '301', 'user', space.id)
    const { access_token } = await h.login('301', 'secret-301')
    h.clock.advance(9)
    expect((await h.request(`${BASE}/profile`, { headers: bearer(access_token) })).status).toBe(200)
    h.clock.advance(1)
    expect((await h.request(`${BASE}/profile`, { headers: bearer(access_token) })).status).toBe(403)
  })

  test('reads the database only when reloaded: a commit by another connection counts after reload()', async () => {
    const space = h.spaces.add('later.example', null)
    await addUser(h, '301', 'user', space.id)
    const { access_token } = await h.login('301', 'secret-301')
    const other = new Database(join(h.dir, 'softphone.db'))
    other.query('UPDATE spaces SET expire_at = ? WHERE domain = ?').run(h.clock.seconds - 1, 'later.example')
    other.close()
    expect((await h.request(`${BASE}/profile`, { headers: bearer(access_token) })).status).toBe(200)
    h.spaces.reload()
    expect((await h.request(`${BASE}/profile`, { headers: bearer(access_token) })).status).toBe(403)
  })

  test('an expired default space refuses its users, and users of another space are unaffected', async () => {
    const space = h.spaces.add('other.example', null)
    await addUser(h, '201', 'user')
    await addUser(h, '301', 'user', space.id)
    h.spaces.setExpiry('default', h.clock.seconds)
    expect((await h.json(`${BASE}/auth/login`, { username: '201', password: 'secret-201' })).status).toBe(403)
    expect((await h.json(`${BASE}/auth/login`, { username: '301', password: 'secret-301' })).status).toBe(200)
  })
})

describe('admin/spaces', () => {
  let h: Harness
  let superadmin: string
  let admin: string
  beforeEach(async () => {
    h = await createHarness()
    await addUser(h, '100', 'superadmin')
    await addUser(h, '101', 'admin')
    superadmin = (await h.login('100', 'secret-100')).access_token
    admin = (await h.login('101', 'secret-101')).access_token
  })
  afterEach(() => h.close())

  const send = (method: string, path: string, token: string, body?: unknown) =>
    h.request(`${BASE}/admin/spaces${path}`, {
      method,
      headers: { ...bearer(token), ...(body !== undefined && { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    })

  test('a superadmin adds, lists, changes and removes a space; each write is in the security log', async () => {
    const added = await send('POST', '', superadmin, { domain: 'Sip.Example.COM', expire_at: '2027-01-31' })
    expect(added.status).toBe(201)
    expect(await added.json()).toEqual({ success: true, space: { domain: 'sip.example.com', expire_at: '2027-01-31T00:00:00.000Z', expired: false } })
    expect(h.logLines().at(-1)).toMatchObject({ event: 'SPACE_ADDED', user: '100', reason: 'space sip.example.com expires 2027-01-31T00:00:00.000Z' })

    const listed = (await (await send('GET', '', superadmin)).json()) as { spaces: unknown[] }
    expect(listed.spaces).toEqual([
      { domain: 'default', expire_at: null, expired: false, users: 2 },
      { domain: 'sip.example.com', expire_at: '2027-01-31T00:00:00.000Z', expired: false, users: 0 },
    ])

    const changed = await send('PATCH', '/sip.example.com', superadmin, { expire_at: '2026-11-23T11:00:00+03:00' })
    expect(await changed.json()).toEqual({ success: true, space: { domain: 'sip.example.com', expire_at: '2026-11-23T08:00:00.000Z', expired: true } })
    expect(h.logLines().at(-1)).toMatchObject({ event: 'SPACE_EXPIRY_CHANGED', user: '100' })
    const never = await send('PATCH', '/sip.example.com', superadmin, { expire_at: null })
    expect(((await never.json()) as { space: unknown }).space).toEqual({ domain: 'sip.example.com', expire_at: null, expired: false })

    expect((await send('DELETE', '/sip.example.com', superadmin)).status).toBe(200)
    expect(h.logLines().at(-1)).toMatchObject({ event: 'SPACE_REMOVED', user: '100', reason: 'space sip.example.com' })
    expect((await send('DELETE', '/sip.example.com', superadmin)).status).toBe(404)
  })

  test('an admin gets 403 on every space route, and nothing changes', async () => {
    for (const [method, path, body] of [['GET', ''], ['POST', '', { domain: 'a.example' }], ['PATCH', '/default', { expire_at: null }], ['DELETE', '/default']] as const) {
      const response = await send(method, path, admin, body)
      expect(response.status).toBe(403)
      expect(((await response.json()) as { code: string }).code).toBe('insufficient_scope')
    }
    expect(h.spaces.list().map((space) => space.domain)).toEqual(['default'])
  })

  test('without a token, a good body is 401; a bad one is 400 first, as bodies are checked before credentials (README "Who may call what")', async () => {
    const good = await h.request(`${BASE}/admin/spaces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"domain":"a.example"}' })
    expect(good.status).toBe(401)
    const bad = await h.request(`${BASE}/admin/spaces`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { code: string }).code).toBe('unsupported_content_type')
  })

  test.each([
    ['an unknown field', { domain: 'a.example', owner: 'x' }, { owner: ['unknown field'] }],
    ['no domain', {}, { domain: ['is required'] }],
    ['a domain that is no host name', { domain: 'a..example' }, { domain: [expect.stringContaining('host name')] }],
    ['a malformed date', { domain: 'a.example', expire_at: '31.01.2027' }, { expire_at: [expect.stringContaining('ISO 8601')] }],
    ['a date that does not exist', { domain: 'a.example', expire_at: '2027-02-30' }, { expire_at: [expect.stringContaining('ISO 8601')] }],
    ['a time without a zone', { domain: 'a.example', expire_at: '2027-01-31T10:00:00' }, { expire_at: [expect.stringContaining('ISO 8601')] }],
    ['a number for a date', { domain: 'a.example', expire_at: 1795435200 }, { expire_at: ['must be a string or null'] }],
    ['an array', [], { body: ['must be a JSON object'] }],
  ])('POST with %s is 400 validation_failed naming the field', async (_name, body, errors) => {
    const response = await send('POST', '', superadmin, body)
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ code: 'validation_failed', errors })
    expect(h.spaces.list()).toHaveLength(1)
  })

  test('PATCH refuses an unknown field and a missing expire_at', async () => {
    expect((await send('PATCH', '/default', superadmin, { expire_at: null, domain: 'x.example' })).status).toBe(400)
    expect((await send('PATCH', '/default', superadmin, {})).status).toBe(400)
  })

  test('a duplicate domain is 409, in any case', async () => {
    expect((await send('POST', '', superadmin, { domain: 'a.example' })).status).toBe(201)
    const again = await send('POST', '', superadmin, { domain: 'A.Example' })
    expect(again.status).toBe(409)
    expect(((await again.json()) as { code: string }).code).toBe('space_exists')
  })

  test('an unknown or malformed domain is 404', async () => {
    for (const path of ['/nowhere.example', '/bad%20name', '/%zz']) {
      const response = await send('PATCH', path, superadmin, { expire_at: null })
      expect(response.status).toBe(404)
      expect(((await response.json()) as { code: string }).code).toBe('space_not_found')
    }
    expect((await send('DELETE', '/nowhere.example', superadmin)).status).toBe(404)
  })

  test('a space with users, and the default space, are not removed (409)', async () => {
    const space = h.spaces.add('busy.example', null)
    await addUser(h, '301', 'user', space.id)
    const busy = await send('DELETE', '/busy.example', superadmin)
    expect(busy.status).toBe(409)
    expect(((await busy.json()) as { code: string }).code).toBe('space_has_users')
    const defaultSpace = await send('DELETE', '/default', superadmin)
    expect(defaultSpace.status).toBe(409)
    expect(((await defaultSpace.json()) as { code: string }).code).toBe('space_is_default')
    expect(h.spaces.list()).toHaveLength(2)
  })

  test('a superadmin who expires their own space is refused by the next request', async () => {
    expect((await send('PATCH', '/default', superadmin, { expire_at: '2026-11-23T12:00:00Z' })).status).toBe(200)
    expect((await send('GET', '', superadmin)).status).toBe(403)
  })
})

describe('the spaces migration', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'softphone-spaces-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  test('puts existing users in the default space, which never expires', () => {
    const path = join(dir, 'softphone.db')
    const spacesMigration = MIGRATIONS.findIndex((migration) => migration.includes('CREATE TABLE spaces'))
    const before = new Database(path)
    for (const migration of MIGRATIONS.slice(0, spacesMigration)) before.run(migration)
    before.run(`PRAGMA user_version = ${spacesMigration}`)
    before.run("INSERT INTO users (username, password_hash, created_at) VALUES ('201', 'x', 0)")
    before.close()
    const db = openStore(path)
    expect(db.query('SELECT username, space_id FROM users').all()).toEqual([{ username: '201', space_id: 1 }])
    expect(db.query('SELECT id, domain, expire_at FROM spaces').all()).toEqual([{ id: 1, domain: 'default', expire_at: null }])
    db.close()
  })
})

describe('parseInstant', () => {
  test.each([
    ['2027-01-31', Date.UTC(2027, 0, 31) / 1000],
    ['2027-01-31T18:30Z', Date.UTC(2027, 0, 31, 18, 30) / 1000],
    ['2027-01-31T18:30:15.250+03:00', Date.UTC(2027, 0, 31, 15, 30, 15) / 1000],
    ['2024-02-29T00:00:00-01:30', Date.UTC(2024, 1, 29, 1, 30) / 1000],
  ])('%s', (text, seconds) => {
    expect(parseInstant(text)).toBe(seconds)
  })

  test.each(['never', '', '2027-1-31', '2027-13-01', '2025-02-29', '2027-01-31T24:00Z', '2027-01-31T10:00', '2027-01-31 10:00Z', '2027-01-31T10:00+3', ' 2027-01-31'])(
    '%p is refused',
    (text) => {
      expect(parseInstant(text)).toBeNull()
    },
  )
})

