/** The admin API (README "Admin API"): users, their sessions, the security log's tail, and the role rules. */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ADMIN_BODY_LIMITS, DEFAULT_LOG_LIMIT, DEFAULT_PER_PAGE, MAX_LOG_LIMIT, MAX_PER_PAGE } from '../../src/admin/admin-schemas'
import { TAIL_READ_BYTES, tailSecurityLog } from '../../src/admin/security-log-tail'
import type { Directory, DirectoryUser, Role } from '../../src/directory/directory'
import { ARGON2_PARAMS } from '../../src/directory/embedded'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

const ADMIN = `${BASE}/admin`
const PASSWORD = 'secret-pw-1'
let passwordHash: string

interface UserRow {
  username: string
  display_name: string
  role: Role
  mobile: string
  disabled: number
  password_hash: string
}

beforeAll(async () => {
  passwordHash = await Bun.password.hash(PASSWORD, ARGON2_PARAMS)
})

/** A user row with PASSWORD, without hashing per user. */
function insertUser(h: Harness, username: string, role: Role, displayName = ''): void {
  h.db
    .query('INSERT INTO users (username, display_name, role, password_hash, created_at) VALUES (?, ?, ?, ?, 0)')
    .run(username, displayName, role, passwordHash)
}

/** An access token of a new session of `username`, as a login would start it. */
async function tokenOf(h: Harness, username: string): Promise<string> {
  const started = await h.services.sessions.start(h.directory.findByUsername(username)!, { ip: '10.0.0.9', ua: 'test' })
  return started.accessToken
}

const rowOf = (h: Harness, username: string) => h.db.query<UserRow, [string]>('SELECT * FROM users WHERE username = ?').get(username)

/** Three roles: `root` (superadmin), `boss` (admin), `201` (user), each with an access token. */
async function adminHarness(): Promise<{ h: Harness; tokens: Record<string, string> }> {
  const h = await createHarness()
  insertUser(h, 'root', 'superadmin', 'Root')
  insertUser(h, 'boss', 'admin', 'Boss')
  insertUser(h, '201', 'user', 'Alice')
  const tokens: Record<string, string> = {}
  for (const username of ['root', 'boss', '201']) tokens[username] = await tokenOf(h, username)
  return { h, tokens }
}

const call = (h: Harness, token: string, method: string, path: string, body?: unknown) =>
  body === undefined
    ? h.request(`${ADMIN}${path}`, { method, headers: { ...bearer(token), 'user-agent': 'admin-test' } })
    : h.json(`${ADMIN}${path}`, body, { method, headers: { ...bearer(token), 'user-agent': 'admin-test' } })

const profileStatus = async (h: Harness, token: string) => (await h.request(`${BASE}/profile`, { headers: bearer(token) })).status

let h: Harness
let tokens: Record<string, string>
beforeEach(async () => {
  ;({ h, tokens } = await adminHarness())
})
afterEach(() => h.close())

describe('who may call the admin API', () => {
  test('no token 401, a user 403, an admin and a superadmin 200', async () => {
    expect((await h.request(`${ADMIN}/users`)).status).toBe(401)
    const refused = await call(h, tokens['201']!, 'GET', '/users')
    expect(refused.status).toBe(403)
    expect(await refused.json()).toMatchObject({ success: false, code: 'insufficient_scope' })
    expect((await call(h, tokens.boss!, 'GET', '/users')).status).toBe(200)
    expect((await call(h, tokens.root!, 'GET', '/security-log')).status).toBe(200)
  })
})

describe('GET admin/users', () => {
  test('pages in username order with the total, and searches username and display name', async () => {
    for (let index = 1; index <= 25; index++) insertUser(h, `3${String(index).padStart(2, '0')}`, 'user', index === 7 ? 'Zoë Smith' : '')
    const first = await (await call(h, tokens.boss!, 'GET', '/users?per_page=10')).json()
    expect(first).toMatchObject({ success: true, page: 1, per_page: 10, total: 28 })
    expect(first.users.map((user: { username: string }) => user.username)).toEqual(['201', '301', '302', '303', '304', '305', '306', '307', '308', '309'])
    expect(first.users[0]).toEqual({ id: 3, username: '201', display_name: 'Alice', role: 'user', mobile: '', disabled: false })
    const third = await (await call(h, tokens.boss!, 'GET', '/users?per_page=10&page=3')).json()
    expect(third.users.map((user: { username: string }) => user.username)).toEqual(['320', '321', '322', '323', '324', '325', 'boss', 'root'])
    const byName = await (await call(h, tokens.boss!, 'GET', `/users?search=${encodeURIComponent('smith')}`)).json()
    expect(byName).toMatchObject({ total: 1, users: [{ username: '307', display_name: 'Zoë Smith' }] })
    const byUsername = await (await call(h, tokens.boss!, 'GET', '/users?search=31')).json()
    expect(byUsername.users.map((user: { username: string }) => user.username)).toEqual(['310', '311', '312', '313', '314', '315', '316', '317', '318', '319'])
    // LIKE's wildcards are searched for literally.
    expect((await (await call(h, tokens.boss!, 'GET', '/users?search=%25')).json()).total).toBe(0)
    expect((await (await call(h, tokens.boss!, 'GET', '/users?search=_')).json()).total).toBe(0)
  })

  test('per_page is bounded, page and search are checked', async () => {
    for (const query of ['per_page=101', 'per_page=0', 'page=0', 'page=x', `search=${'a'.repeat(65)}`]) {
      const response = await call(h, tokens.boss!, 'GET', `/users?${query}`)
      expect(response.status).toBe(400)
      expect(await response.json()).toMatchObject({ code: 'validation_failed', errors: { [query.split('=')[0]!]: [expect.any(String)] } })
    }
  })

  test('one user by name; 404 for an unknown one, 400 for a malformed name', async () => {
    expect(await (await call(h, tokens.boss!, 'GET', '/users/root')).json()).toEqual({
      success: true,
      user: { id: 1, username: 'root', display_name: 'Root', role: 'superadmin', mobile: '', disabled: false },
    })
    expect((await call(h, tokens.boss!, 'GET', '/users/999')).status).toBe(404)
    expect((await call(h, tokens.boss!, 'GET', `/users/${'9'.repeat(65)}`)).status).toBe(400)
  })
})

describe('POST admin/users', () => {
  test('creates the user, who can then log in; the log line names the actor', async () => {
    const response = await call(h, tokens.boss!, 'POST', '/users', { username: '205', password: 'New-pass-205', display_name: 'Eve', role: 'admin', mobile: '0123456789' })
    expect(response.status).toBe(201)
    expect(await response.json()).toEqual({
      success: true,
      user: { id: 4, username: '205', display_name: 'Eve', role: 'admin', mobile: '0123456789', disabled: false },
    })
    const row = rowOf(h, '205')!
    expect(row).toMatchObject({ display_name: 'Eve', role: 'admin', mobile: '0123456789', disabled: 0 })
    expect(row.password_hash).toStartWith('$argon2id$')
    expect(row.password_hash).not.toContain('New-pass-205')
    await h.login('205', 'New-pass-205')
    expect(h.logLines().find((line) => line.event === 'USER_ADDED')).toEqual({
      ts: expect.any(String),
      event: 'USER_ADDED',
      ip: '127.0.0.1',
      user: '205',
      reason: 'role admin',
      ua: 'admin-test',
      actor: 'boss',
    })
    expect(JSON.stringify(h.logLines())).not.toContain('New-pass-205')
  })

  test('role defaults to user; an existing name is 409', async () => {
    expect(await (await call(h, tokens.boss!, 'POST', '/users', { username: '206', password: 'New-pass-206' })).json()).toMatchObject({
      user: { role: 'user', display_name: '', mobile: '' },
    })
    const again = await call(h, tokens.boss!, 'POST', '/users', { username: '206', password: 'New-pass-206' })
    expect(again.status).toBe(409)
    expect(await again.json()).toMatchObject({ success: false, error: 'User already exists', code: 'user_exists' })
  })

  test('unknown fields, bad types, huge strings and short passwords are 400 with the field named; nothing is stored', async () => {
    const cases: Array<[unknown, string]> = [
      [{ username: '207', password: 'New-pass-207', rol: 'admin' }, 'rol'],
      [{ username: '207', password: 'New-pass-207', is_admin: true }, 'is_admin'],
      [{ username: 207, password: 'New-pass-207' }, 'username'],
      [{ username: '207', password: ['New-pass-207'] }, 'password'],
      [{ username: '207', password: 'New-pass-207', role: 'root' }, 'role'],
      [{ username: '207', password: 'New-pass-207', mobile: '+7123' }, 'mobile'],
      [{ username: '207', password: 'New-pass-207', display_name: 'x'.repeat(129) }, 'display_name'],
      [{ username: '207', password: 'New-pass-207', display_name: 'a\nb' }, 'display_name'],
      [{ username: '207', password: 'x'.repeat(1025) }, 'password'],
      [{ username: 'a b', password: 'New-pass-207' }, 'username'],
      [{ username: '207', password: 'short' }, 'password'],
      [{ password: 'New-pass-207' }, 'username'],
      [['207'], 'body'],
    ]
    for (const [body, field] of cases) {
      const response = await call(h, tokens.root!, 'POST', '/users', body)
      expect(response.status).toBe(400)
      const answer = await response.json()
      expect(answer).toMatchObject({ success: false, error: 'Validation failed', code: 'validation_failed', timestamp: expect.any(Number) })
      expect(Object.keys(answer.errors)).toContain(field)
      expect(JSON.stringify(answer)).not.toContain('New-pass-207')
    }
    expect(rowOf(h, '207')).toBeNull()
  })

  test('a body over 16 KiB is 413, one that is not JSON 400', async () => {
    const huge = await call(h, tokens.root!, 'POST', '/users', { username: '207', password: 'New-pass-207', display_name: 'x'.repeat(17_000) })
    expect(huge.status).toBe(413)
    const text = await h.request(`${ADMIN}/users`, { method: 'POST', headers: { ...bearer(tokens.root!), 'content-type': 'text/plain' }, body: 'x' })
    expect(text.status).toBe(400)
    expect(await text.json()).toMatchObject({ code: 'unsupported_content_type' })
  })

  test('an admin creates no superadmin (403); a superadmin does', async () => {
    const refused = await call(h, tokens.boss!, 'POST', '/users', { username: '208', password: 'New-pass-208', role: 'superadmin' })
    expect(refused.status).toBe(403)
    expect(await refused.json()).toMatchObject({ code: 'role_forbidden' })
    expect(rowOf(h, '208')).toBeNull()
    expect((await call(h, tokens.root!, 'POST', '/users', { username: '208', password: 'New-pass-208', role: 'superadmin' })).status).toBe(201)
  })
})

describe('PATCH admin/users/:username', () => {
  test('changes name, role and mobile; logs the fields and the actor', async () => {
    const response = await call(h, tokens.boss!, 'PATCH', '/users/201', { display_name: 'Alice B', mobile: '79001234', role: 'admin' })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ success: true, user: { username: '201', display_name: 'Alice B', mobile: '79001234', role: 'admin' }, sessions_ended: 0 })
    expect(rowOf(h, '201')).toMatchObject({ display_name: 'Alice B', mobile: '79001234', role: 'admin', password_hash: passwordHash })
    expect(h.logLines().at(-1)).toMatchObject({ event: 'USER_UPDATED', user: '201', actor: 'boss', reason: 'display_name, mobile, role user->admin' })
    // Its session keeps working, and the role counts at once.
    expect((await call(h, tokens['201']!, 'GET', '/users')).status).toBe(200)
  })

  test('a new password replaces the old one and ends the user\'s sessions', async () => {
    const response = await call(h, tokens.boss!, 'PATCH', '/users/201', { password: 'Other-pass-201' })
    expect(await response.json()).toMatchObject({ success: true, sessions_ended: 1 })
    expect(await profileStatus(h, tokens['201']!)).toBe(401)
    expect((await h.json(`${BASE}/auth/login`, { username: '201', password: PASSWORD })).status).toBe(401)
    await h.login('201', 'Other-pass-201')
    expect(h.logLines().find((line) => line.event === 'USER_PASSWORD_CHANGED')).toMatchObject({ user: '201', actor: 'boss', reason: '1 sessions ended' })
    expect(JSON.stringify(h.logLines())).not.toContain('Other-pass-201')
  })

  test('an empty change, unknown fields and a short password are 400; an unknown user 404', async () => {
    const empty = await call(h, tokens.boss!, 'PATCH', '/users/201', {})
    expect(empty.status).toBe(400)
    expect(await empty.json()).toMatchObject({ errors: { body: ['must change at least one field'] } })
    const unknown = await call(h, tokens.boss!, 'PATCH', '/users/201', { username: 'x' })
    expect(await unknown.json()).toMatchObject({ errors: { username: ['unknown field'] } })
    const short = await call(h, tokens.boss!, 'PATCH', '/users/201', { password: 'short' })
    expect(short.status).toBe(400)
    expect(await short.json()).toMatchObject({ errors: { password: [expect.stringContaining('shorter than 8')] } })
    expect((await call(h, tokens.boss!, 'PATCH', '/users/999', { display_name: 'x' })).status).toBe(404)
    expect(rowOf(h, '201')).toMatchObject({ display_name: 'Alice', password_hash: passwordHash })
  })

  test('an admin neither promotes to superadmin nor changes a superadmin (403)', async () => {
    for (const [path, body] of [
      ['/users/201', { role: 'superadmin' }],
      ['/users/boss', { role: 'superadmin' }],
      ['/users/root', { display_name: 'Mallory' }],
      ['/users/root', { role: 'user' }],
      ['/users/root', { password: 'Taken-over-1' }],
    ] as const) {
      const response = await call(h, tokens.boss!, 'PATCH', path, body)
      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ code: 'role_forbidden', error: 'Not allowed to manage a role above your own' })
    }
    expect(rowOf(h, 'root')).toMatchObject({ role: 'superadmin', display_name: 'Root', password_hash: passwordHash })
    expect(rowOf(h, 'boss')!.role).toBe('admin')
    expect(rowOf(h, '201')!.role).toBe('user')
  })

  test('the last enabled superadmin is not demoted (409), one of two is', async () => {
    const refused = await call(h, tokens.root!, 'PATCH', '/users/root', { role: 'admin' })
    expect(refused.status).toBe(409)
    expect(await refused.json()).toMatchObject({ code: 'last_superadmin' })
    expect(rowOf(h, 'root')!.role).toBe('superadmin')
    expect((await call(h, tokens.root!, 'PATCH', '/users/boss', { role: 'superadmin' })).status).toBe(200)
    expect((await call(h, tokens.root!, 'PATCH', '/users/root', { role: 'admin' })).status).toBe(200)
    expect(rowOf(h, 'root')!.role).toBe('admin')
  })
})

describe('disable, enable, delete', () => {
  test('disable ends the sessions and refuses logins; enable lets the user log in again', async () => {
    const disabled = await call(h, tokens.boss!, 'POST', '/users/201/disable')
    expect(await disabled.json()).toMatchObject({ success: true, user: { disabled: true }, sessions_ended: 1 })
    expect(rowOf(h, '201')!.disabled).toBe(1)
    expect(await profileStatus(h, tokens['201']!)).toBe(401)
    expect((await h.json(`${BASE}/auth/login`, { username: '201', password: PASSWORD })).status).toBe(401)
    const enabled = await call(h, tokens.boss!, 'POST', '/users/201/enable')
    expect(await enabled.json()).toMatchObject({ success: true, user: { disabled: false } })
    expect(rowOf(h, '201')!.disabled).toBe(0)
    await h.login('201', PASSWORD)
    const events = h.logLines().filter((line) => line.actor === 'boss')
    expect(events.map((line) => [line.event, line.user])).toEqual([
      ['USER_DISABLED', '201'],
      ['USER_ENABLED', '201'],
    ])
  })

  test('delete removes the row and ends the sessions', async () => {
    const response = await call(h, tokens.boss!, 'DELETE', '/users/201')
    expect(await response.json()).toEqual({ success: true, message: 'User removed', sessions_ended: 1 })
    expect(rowOf(h, '201')).toBeNull()
    expect(await profileStatus(h, tokens['201']!)).toBe(401)
    expect(h.logLines().at(-1)).toMatchObject({ event: 'USER_REMOVED', user: '201', actor: 'boss', reason: '1 sessions ended' })
    expect((await call(h, tokens.boss!, 'DELETE', '/users/201')).status).toBe(404)
  })

  test('a user added again under a removed name inherits none of its sessions', async () => {
    const refresh = (await h.services.sessions.start(h.directory.findByUsername('201')!, { ip: '10.0.0.9', ua: 'test' })).refreshToken
    expect((await call(h, tokens.boss!, 'DELETE', '/users/201')).status).toBe(200)
    expect((await call(h, tokens.boss!, 'POST', '/users', { username: '201', password: 'New-pass-201' })).status).toBe(201)
    expect(await profileStatus(h, tokens['201']!)).toBe(401)
    expect((await h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: bearer(refresh) })).status).toBe(401)
  })

  test('an admin neither disables nor deletes a superadmin (403)', async () => {
    for (const [method, path] of [
      ['POST', '/users/root/disable'],
      ['DELETE', '/users/root'],
    ]) {
      expect((await call(h, tokens.boss!, method!, path!)).status).toBe(403)
    }
    expect(rowOf(h, 'root')).toMatchObject({ disabled: 0 })
    expect(await profileStatus(h, tokens.root!)).toBe(200)
  })

  test('the last enabled superadmin is neither disabled nor deleted, not even by itself (409)', async () => {
    for (const [method, path] of [
      ['POST', '/users/root/disable'],
      ['DELETE', '/users/root'],
    ]) {
      const response = await call(h, tokens.root!, method!, path!)
      expect(response.status).toBe(409)
      expect(await response.json()).toMatchObject({ success: false, error: 'The last enabled superadmin must stay', code: 'last_superadmin' })
    }
    expect(rowOf(h, 'root')).toMatchObject({ disabled: 0, role: 'superadmin' })
    expect(await profileStatus(h, tokens.root!)).toBe(200)
  })

  test('with a second enabled superadmin, one may go; a disabled one does not count', async () => {
    insertUser(h, 'root2', 'superadmin')
    expect((await call(h, tokens.root!, 'POST', '/users/root2/disable')).status).toBe(200)
    expect((await call(h, tokens.root!, 'DELETE', '/users/root')).status).toBe(409)
    expect((await call(h, tokens.root!, 'POST', '/users/root2/enable')).status).toBe(200)
    expect((await call(h, tokens.root!, 'DELETE', '/users/root')).status).toBe(200)
    expect(rowOf(h, 'root')).toBeNull()
  })
})

describe('a user\'s sessions', () => {
  test('lists them, ends one at once (its token gets 401), then the rest', async () => {
    const second = await tokenOf(h, '201')
    const listed = await (await call(h, tokens.boss!, 'GET', '/users/201/sessions')).json()
    expect(listed.sessions).toHaveLength(2)
    expect(listed.sessions[0]).toEqual({ id: expect.any(String), created_at: expect.any(Number), last_used_at: expect.any(Number), ip: '10.0.0.9', user_agent: 'test' })
    const sid = JSON.parse(Buffer.from(tokens['201']!.split('.')[1]!, 'base64url').toString()).sid
    const ended = await call(h, tokens.boss!, 'DELETE', `/users/201/sessions/${sid}`)
    expect(await ended.json()).toEqual({ success: true, message: 'Session ended' })
    expect(await profileStatus(h, tokens['201']!)).toBe(401)
    expect(await profileStatus(h, second)).toBe(200)
    expect(h.logLines().at(-1)).toMatchObject({ event: 'SESSION_REVOKED', user: '201', sid, actor: 'boss', reason: 'revoked by admin boss' })
    expect((await call(h, tokens.boss!, 'DELETE', `/users/201/sessions/${sid}`)).status).toBe(404)
    const all = await call(h, tokens.boss!, 'DELETE', '/users/201/sessions')
    expect(await all.json()).toEqual({ success: true, message: 'Sessions ended', sessions_ended: 1 })
    expect(await profileStatus(h, second)).toBe(401)
    expect((await (await call(h, tokens.boss!, 'GET', '/users/201/sessions')).json()).sessions).toEqual([])
  })

  test('another user\'s sid is 404; a malformed sid 400; a superadmin\'s sessions are not an admin\'s (403)', async () => {
    const rootSid = JSON.parse(Buffer.from(tokens.root!.split('.')[1]!, 'base64url').toString()).sid
    expect((await call(h, tokens.boss!, 'DELETE', `/users/201/sessions/${rootSid}`)).status).toBe(404)
    expect((await call(h, tokens.boss!, 'DELETE', '/users/201/sessions/short')).status).toBe(400)
    for (const [method, path] of [
      ['GET', '/users/root/sessions'],
      ['DELETE', '/users/root/sessions'],
      ['DELETE', `/users/root/sessions/${rootSid}`],
    ]) {
      expect((await call(h, tokens.boss!, method!, path!)).status).toBe(403)
    }
    expect(await profileStatus(h, tokens.root!)).toBe(200)
    expect((await call(h, tokens.boss!, 'GET', '/users/999/sessions')).status).toBe(404)
  })
})

describe('GET admin/security-log', () => {
  test('newest first, filtered exactly by event, user, ip and time, bounded by limit', async () => {
    await call(h, tokens.boss!, 'POST', '/users/201/disable')
    h.clock.advance(60)
    await call(h, tokens.boss!, 'POST', '/users/201/enable')
    h.clock.advance(60)
    await h.json(`${BASE}/auth/login`, { username: '20', password: 'wrong-password' }, { headers: { 'x-real-ip': '10.1.1.1' } })
    const read = async (query: string) => (await (await call(h, tokens.boss!, 'GET', `/security-log?${query}`)).json())
    const all = await read('')
    expect(all.success).toBe(true)
    expect(all.more).toBe(false)
    expect(all.events.map((line: { event: string }) => line.event)).toEqual(['AUTH_FAILED', 'USER_ENABLED', 'USER_DISABLED'])
    expect(all.events).toEqual(h.logLines().reverse())
    expect((await read('event=USER_ENABLED')).events).toEqual([expect.objectContaining({ event: 'USER_ENABLED', actor: 'boss', user: '201' })])
    // Exact: `20` is not a prefix match for `201`.
    expect((await read('user=20')).events.map((line: { event: string }) => line.event)).toEqual(['AUTH_FAILED'])
    expect((await read('ip=10.1.1.1')).events).toHaveLength(1)
    expect((await read('ip=10.1.1')).events).toHaveLength(0)
    const start = h.clock.seconds - 120
    expect((await read(`since=${start + 60}`)).events.map((line: { event: string }) => line.event)).toEqual(['AUTH_FAILED', 'USER_ENABLED'])
    expect((await read(`until=${start + 60}`)).events.map((line: { event: string }) => line.event)).toEqual(['USER_ENABLED', 'USER_DISABLED'])
    expect((await read('since=2026-11-23T12:01:00Z&until=2026-11-23T12:01:00.000Z')).events.map((line: { event: string }) => line.event)).toEqual(['USER_ENABLED'])
    const one = await read('limit=1')
    expect(one).toMatchObject({ events: [{ event: 'AUTH_FAILED' }], more: true })
  })

  test('bad filters are 400', async () => {
    for (const query of ['limit=1001', 'limit=0', 'event=NOPE', 'since=yesterday', 'until=2026-11-23', `user=${'u'.repeat(65)}`, 'ip=10.0.0.1;x']) {
      const response = await call(h, tokens.boss!, 'GET', `/security-log?${query}`)
      expect(response.status).toBe(400)
      expect(await response.json()).toMatchObject({ code: 'validation_failed', errors: { [query.split('=')[0]!]: [expect.any(String)] } })
    }
  })
})

describe('the security log tail', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'log-tail-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const line = (index: number, event = 'AUTH_FAILED') => JSON.stringify({ ts: new Date(Date.UTC(2026, 10, 23, 0, 0, index)).toISOString(), event, user: `u${index}` })

  test('reads on into the rotated files, skips lines that do not parse, stops at since', async () => {
    const path = join(dir, 'a', 'security.log')
    mkdirSync(join(dir, 'a'))
    writeFileSync(`${path}.2`, `${line(1)}\n${line(2)}\n`)
    writeFileSync(`${path}.1`, `${line(3)}\n{"ts":"cut\n${line(4)}\n`)
    writeFileSync(path, `${line(5)}\n${line(6)}\n`)
    const users = (tail: { events: Array<Record<string, unknown>> }) => tail.events.map((event) => event.user)
    expect(users(await tailSecurityLog(path, {}, 100))).toEqual(['u6', 'u5', 'u4', 'u3', 'u2', 'u1'])
    expect(users(await tailSecurityLog(path, { since: Date.UTC(2026, 10, 23, 0, 0, 3) }, 100))).toEqual(['u6', 'u5', 'u4', 'u3'])
  })

  test('reads at most the byte budget, from the end, and says there may be more', async () => {
    const path = join(dir, 'b.log')
    const lines = Array.from({ length: 20_000 }, (_, index) => line(index))
    writeFileSync(path, `${lines.join('\n')}\n`)
    const budget = 300 * 1024
    const tail = await tailSecurityLog(path, { user: 'u0' }, 1000, budget)
    expect(tail).toEqual({ events: [], more: true })
    const newest = await tailSecurityLog(path, {}, 1000, budget)
    expect(newest.events).toHaveLength(1000)
    expect(newest.events[0]!.user).toBe('u19999')
    expect(newest.more).toBe(true)
  })
})

describe('with MikoPBX\'s directory', () => {
  test('the user routes answer 409 directory_read_only; sessions still work', async () => {
    const pbxUser: DirectoryUser = { id: 7, username: '301', displayName: 'PBX', role: 'admin', mobile: '', disabled: false }
    const pbxDirectory: Directory = {
      authenticate: async () => null,
      findById: (id) => (id === 7 ? pbxUser : null),
      findByUsername: (username) => (username === '301' ? pbxUser : null),
    }
    const pbx = await createHarness({ userDirectory: pbxDirectory })
    try {
      const token = (await pbx.services.sessions.start(pbxUser, { ip: '10.0.0.9', ua: 'test' })).accessToken
      for (const [method, path, body] of [
        ['GET', '/users', undefined],
        ['GET', '/users/301', undefined],
        ['POST', '/users', { username: '302', password: 'New-pass-302' }],
        ['PATCH', '/users/301', { display_name: 'x' }],
        ['POST', '/users/301/disable', undefined],
        ['POST', '/users/301/enable', undefined],
        ['DELETE', '/users/301', undefined],
      ] as const) {
        const response = await call(pbx, token, method, path, body)
        expect(response.status).toBe(409)
        expect(await response.json()).toMatchObject({ code: 'directory_read_only', error: 'The user directory is read-only (directory = "mikopbx")' })
      }
      expect((await (await call(pbx, token, 'GET', '/users/301/sessions')).json()).sessions).toHaveLength(1)
    } finally {
      pbx.close()
    }
  })
})

test('the README states the limits the admin API enforces', () => {
  const readme = readFileSync('README.md', 'utf8')
  const section = readme.slice(readme.indexOf('## Admin API'), readme.indexOf('\n## ', readme.indexOf('## Admin API') + 1))
  expect(section).toContain(`\`per_page\` 1 to ${MAX_PER_PAGE} (default ${DEFAULT_PER_PAGE})`)
  expect(section).toContain(`(1 to ${MAX_LOG_LIMIT}, default ${DEFAULT_LOG_LIMIT})`)
  expect(section).toContain(`at most ${TAIL_READ_BYTES / 1024 / 1024} MiB in all`)
  expect(section).toContain(`at most ${ADMIN_BODY_LIMITS.maxBytes / 1024} KiB`)
})
