/** API keys as a credential (README "API keys"): made, checked, bound, idle, revoked, batched, never shown twice. */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import type { Database } from 'bun:sqlite'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ApiKeyStore } from '../../src/api-keys/api-key-store'
import { MAX_SELF_MADE_KEYS, newApiKeyText } from '../../src/api-keys/api-key-service'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

/** Counts the store's writes of last uses, to prove that requests write none. */
class CountingStore extends ApiKeyStore {
  lastUseWrites = 0
  override recordLastUses(uses: ReadonlyArray<{ id: number; at: number }>): void {
    this.lastUseWrites++
    super.recordLastUses(uses)
  }
}

let h: Harness
let store: CountingStore
let userToken: string
let adminToken: string
let superToken: string
/** Every key any test was given, to prove none reaches the log. */
const issued: string[] = []

const INVALID = 'Bearer realm="softphone", error="invalid_token"'
const MALFORMED = 'Bearer realm="softphone", error="invalid_request"'

beforeAll(async () => {
  h = await createHarness({
    apiKeyIdleMinutes: 60,
    apiKeyStore: (db: Database) => (store = new CountingStore(db)),
  })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
  await h.directory.add({ username: '202', password: 'secret-202', displayName: 'Bob', role: 'user', mobile: '' })
  await h.directory.add({ username: '301', password: 'secret-301', displayName: 'Admin', role: 'admin', mobile: '' })
  await h.directory.add({ username: '401', password: 'secret-401', displayName: 'Root', role: 'superadmin', mobile: '' })
})
afterAll(() => h.close())

/** Tests move the clock by hours and days: access tokens are taken again once the last ones are half through their life. */
let loggedInAt = -Infinity
beforeEach(async () => {
  if (h.clock.seconds - loggedInAt < 1800) return
  userToken = (await h.login('201', 'secret-201')).access_token
  adminToken = (await h.login('301', 'secret-301')).access_token
  superToken = (await h.login('401', 'secret-401')).access_token
  loggedInAt = h.clock.seconds
})

/** Through nginx: loopback peer, the client's address in X-Real-IP. */
const from = (ip: string) => ({ 'x-real-ip': ip })

async function selfMade(token = userToken, ip = '198.51.100.7', body?: unknown) {
  const response = await h.request(`${BASE}/accounts/me/api_key`, {
    method: 'POST',
    headers: { ...bearer(token), ...from(ip), ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  expect(response.status).toBe(200)
  const answer = (await response.json()) as { api_key: string; id: number; expires_after_idle_minutes: number }
  issued.push(answer.api_key)
  return answer
}

async function adminMade(user: string, extra: Record<string, unknown> = {}, token = adminToken) {
  const response = await h.json(`${BASE}/admin/api_keys`, { user, ...extra }, { headers: bearer(token) })
  const answer = await response.json()
  if (response.status === 200) issued.push(answer.api_key)
  return { status: response.status, answer }
}

const profileWith = (headers: Record<string, string>, path = `${BASE}/profile`) => h.request(path, { headers })

async function expectRefused(response: Response, status: number, challenge: string, error: string, secret?: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('www-authenticate')).toBe(challenge)
  const text = await response.text()
  expect(JSON.parse(text)).toMatchObject({ success: false, error, timestamp: h.clock.seconds })
  if (secret) expect(text).not.toContain(secret)
}

describe('a self-made key', () => {
  test('is made for the caller, shown once, and opens its routes by header or cookie', async () => {
    const made = await selfMade()
    expect(made).toMatchObject({ success: true, expires_after_idle_minutes: 60 })
    expect(made.api_key).toMatch(/^sbk_[A-Za-z0-9_-]{43}$/)
    const ways: Array<Record<string, string>> = [{ 'x-api-key': made.api_key }, { cookie: `theme=dark; x-api-key=${made.api_key}` }]
    for (const headers of ways) {
      const response = await profileWith({ ...headers, ...from('198.51.100.7') })
      expect(response.status).toBe(200)
      expect((await response.json()).user).toMatchObject({ username: '201', role: 'user' })
    }
  })

  test('is stored as its SHA-256 and a short prefix, bound to the address that made it', async () => {
    const made = await selfMade()
    const row = h.db.query('SELECT * FROM api_keys WHERE id = ?').get(made.id) as Record<string, unknown>
    expect(row).toMatchObject({
      username: '201',
      hash: createHash('sha256').update(made.api_key).digest('hex'),
      prefix: made.api_key.slice(0, 12),
      bound_ip: '198.51.100.7',
      idle_minutes: 60,
      expires_at: null,
      created_by: 'self',
      revoked_at: null,
    })
    expect(JSON.stringify(row)).not.toContain(made.api_key)
  })

  test('works only from its address: another one gets 401', async () => {
    const made = await selfMade(userToken, '198.51.100.7')
    await expectRefused(await profileWith({ 'x-api-key': made.api_key, ...from('198.51.100.8') }), 401, INVALID, 'Unauthorized', made.api_key)
    expect((await profileWith({ 'x-api-key': made.api_key, ...from('198.51.100.7') })).status).toBe(200)
  })

  test('stops working after api_key_idle_minutes unused, counted from its last use in memory', async () => {
    const made = await selfMade()
    const use = () => profileWith({ 'x-api-key': made.api_key, ...from('198.51.100.7') })
    h.clock.advance(59 * 60)
    expect((await use()).status).toBe(200)
    h.clock.advance(59 * 60)
    expect((await use()).status).toBe(200)
    h.clock.advance(60 * 60)
    await expectRefused(await use(), 401, INVALID, 'Unauthorized', made.api_key)
  })

  test('takes an optional name; unknown body fields and non-JSON bodies are refused', async () => {
    const named = await selfMade(userToken, '198.51.100.7', { name: 'desk phone' })
    expect(h.db.query('SELECT name FROM api_keys WHERE id = ?').get(named.id)).toEqual({ name: 'desk phone' })
    const unknown = await h.json(`${BASE}/accounts/me/api_key`, { name: 'x', role: 'admin' }, { headers: bearer(userToken) })
    expect(unknown.status).toBe(400)
    expect(await unknown.json()).toMatchObject({ code: 'validation_failed', errors: { role: ['unknown field'] } })
    const text = await h.request(`${BASE}/accounts/me/api_key`, { method: 'POST', headers: { ...bearer(userToken), 'content-type': 'text/plain' }, body: 'x' })
    expect(text.status).toBe(400)
  })

  test('needs a credential: none gets 401', async () => {
    const response = await h.request(`${BASE}/accounts/me/api_key`, { method: 'POST' })
    expect(response.status).toBe(401)
  })

  test(`more than ${MAX_SELF_MADE_KEYS} revoke the one unused longest, and say so in the log`, async () => {
    const token = (await h.login('202', 'secret-202')).access_token
    const made: Array<{ api_key: string; id: number }> = []
    for (let i = 0; i <= MAX_SELF_MADE_KEYS; i++) {
      made.push(await selfMade(token))
      h.clock.advance(1)
    }
    const use = (key: string) => profileWith({ 'x-api-key': key, ...from('198.51.100.7') })
    expect((await use(made[0]!.api_key)).status).toBe(401)
    for (const key of made.slice(1)) expect((await use(key.api_key)).status).toBe(200)
    expect(h.logLines().filter((line) => line.event === 'API_KEY_REVOKED' && line.key_id === made[0]!.id)).toEqual([
      expect.objectContaining({ user: '202', actor: '202', reason: `over ${MAX_SELF_MADE_KEYS} self-made keys: the one unused longest` }),
    ])
  })
})

describe('bad keys', () => {
  const cases: Array<[string, () => string]> = [
    ['empty', () => ''],
    ['10 KB long', () => `sbk_${'A'.repeat(10 * 1024)}`],
    ['non-ASCII', () => `sbk_${'é'.repeat(43)}`],
    ['unknown', () => newApiKeyText()],
    ['one character short', () => newApiKeyText().slice(0, -1)],
  ]
  for (const [name, key] of cases) {
    test(`${name} → 401 invalid_token, by header and by cookie`, async () => {
      const text = key()
      await expectRefused(await profileWith({ 'x-api-key': text }), 401, INVALID, 'Unauthorized', text || undefined)
      await expectRefused(await profileWith({ cookie: `x-api-key=${text}` }), 401, INVALID, 'Unauthorized', text || undefined)
    })
  }

  test('a malformed key is refused before it is hashed or looked up', () => {
    expect(h.apiKeys.check(`sbk_${'A'.repeat(10 * 1024)}`, '127.0.0.1')).toEqual({ ok: false, reason: 'malformed api key' })
    expect(h.apiKeys.check(newApiKeyText(), '127.0.0.1')).toEqual({ ok: false, reason: 'unknown or revoked api key' })
  })

  for (const name of ['x-api-key', 'api_key']) {
    test(`a key in the query string (?${name}=) → 400 invalid_request, without the key`, async () => {
      const made = await selfMade()
      await expectRefused(await profileWith({}, `${BASE}/profile?${name}=${made.api_key}`), 400, MALFORMED, 'Malformed credentials', made.api_key)
      // Even with the right header as well: a key in a URL is never used.
      await expectRefused(await profileWith({ 'x-api-key': made.api_key, ...from('198.51.100.7') }, `${BASE}/profile?${name}=${made.api_key}`), 400, MALFORMED, 'Malformed credentials', made.api_key)
    })
  }

  test('header and cookie that differ → 400; the same key in both is fine', async () => {
    const one = await selfMade()
    const other = await selfMade()
    const ip = from('198.51.100.7')
    await expectRefused(await profileWith({ 'x-api-key': one.api_key, cookie: `x-api-key=${other.api_key}`, ...ip }), 400, MALFORMED, 'Malformed credentials', one.api_key)
    await expectRefused(await profileWith({ cookie: `x-api-key=${one.api_key}; x-api-key=${one.api_key}`, ...ip }), 400, MALFORMED, 'Malformed credentials')
    expect((await profileWith({ 'x-api-key': one.api_key, cookie: `x-api-key=${one.api_key}`, ...ip })).status).toBe(200)
  })

  test('a key and a bearer token at once → 400', async () => {
    const made = await selfMade()
    await expectRefused(await profileWith({ 'x-api-key': made.api_key, ...bearer(userToken), ...from('198.51.100.7') }), 400, MALFORMED, 'Malformed credentials')
  })

  test("a disabled user's keys stop working", async () => {
    const made = await adminMade('202')
    expect((await profileWith({ 'x-api-key': made.answer.api_key })).status).toBe(200)
    h.directory.setDisabled('202', true)
    try {
      await expectRefused(await profileWith({ 'x-api-key': made.answer.api_key }), 401, INVALID, 'Unauthorized')
    } finally {
      h.directory.setDisabled('202', false)
    }
  })
})

describe('admin-made keys', () => {
  test('are stable: any address, no idle limit', async () => {
    const { status, answer } = await adminMade('201', { name: 'crm' })
    expect(status).toBe(200)
    expect(answer).toMatchObject({ success: true, user: '201', name: 'crm', expires_at: null })
    h.clock.advance(400 * 24 * 3600)
    for (const ip of ['198.51.100.7', '203.0.113.9']) expect((await profileWith({ 'x-api-key': answer.api_key, ...from(ip) })).status).toBe(200)
  })

  test('with expires_at stop working then', async () => {
    const expiresAt = new Date(h.clock.now() + 3600_000).toISOString()
    const { answer } = await adminMade('201', { expires_at: expiresAt })
    expect(answer.expires_at).toBe(Math.floor(Date.parse(expiresAt) / 1000))
    expect((await profileWith({ 'x-api-key': answer.api_key })).status).toBe(200)
    h.clock.advance(3600)
    await expectRefused(await profileWith({ 'x-api-key': answer.api_key }), 401, INVALID, 'Unauthorized')
  })

  test('carry the user role: an admin key opens admin routes', async () => {
    const { answer } = await adminMade('301')
    const response = await profileWith({ 'x-api-key': answer.api_key }, `${BASE}/admin/api_keys?user=301`)
    expect(response.status).toBe(200)
  })

  test('need an admin: a user gets 403, nobody 401', async () => {
    const user = await h.json(`${BASE}/admin/api_keys`, { user: '201' }, { headers: bearer(userToken) })
    expect(user.status).toBe(403)
    expect(user.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="insufficient_scope"')
    expect((await h.json(`${BASE}/admin/api_keys`, { user: '201' })).status).toBe(401)
    expect((await h.request(`${BASE}/admin/api_keys`, { headers: bearer(userToken) })).status).toBe(403)
  })

  test("an admin can't make one for a superadmin (403); a superadmin can make one for an admin", async () => {
    const refused = await adminMade('401')
    expect(refused.status).toBe(403)
    expect(refused.answer).toMatchObject({ success: false, code: 'role_forbidden' })
    expect((await adminMade('301', {}, superToken)).status).toBe(200)
  })

  test('bad bodies: unknown field, unknown user, a past or malformed expires_at → 400 naming the field', async () => {
    const expectField = async (body: Record<string, unknown>, field: string) => {
      const { status, answer } = await adminMade(body.user as string, body)
      expect(status).toBe(400)
      expect(answer).toMatchObject({ code: 'validation_failed' })
      expect(Object.keys(answer.errors)).toEqual([field])
    }
    await expectField({ user: '201', scope: 'all' }, 'scope')
    await expectField({ user: '999' }, 'user')
    await expectField({ user: '201', expires_at: '2020-01-01' }, 'expires_at')
    await expectField({ user: '201', expires_at: 'tomorrow' }, 'expires_at')
  })
})

describe('listing and revoking', () => {
  test('list shows working keys of a user without the key or its hash', async () => {
    const { answer } = await adminMade('202', { name: 'listed' })
    const response = await h.request(`${BASE}/admin/api_keys?user=202`, { headers: bearer(adminToken) })
    const { api_keys } = (await response.json()) as { api_keys: Array<Record<string, unknown>> }
    const listed = api_keys.find((key) => key.id === answer.id)!
    expect(listed).toMatchObject({ user: '202', name: 'listed', prefix: answer.prefix, created_by: 'admin:301', bound_ip: null, idle_minutes: null })
    expect(listed).not.toHaveProperty('hash')
    expect(JSON.stringify(api_keys)).not.toContain(answer.api_key)
    expect(api_keys.every((key) => key.user === '202')).toBe(true)
    const unknownParameter = await h.request(`${BASE}/admin/api_keys?username=202`, { headers: bearer(adminToken) })
    expect(unknownParameter.status).toBe(400)
  })

  test('DELETE revokes at once; a second DELETE or an unknown id is 404', async () => {
    const { answer } = await adminMade('201')
    expect((await profileWith({ 'x-api-key': answer.api_key })).status).toBe(200)
    const deleted = await h.request(`${BASE}/admin/api_keys/${answer.id}`, { method: 'DELETE', headers: bearer(adminToken) })
    expect(deleted.status).toBe(200)
    expect(await deleted.json()).toEqual({ success: true, message: 'API key revoked', id: answer.id })
    await expectRefused(await profileWith({ 'x-api-key': answer.api_key }), 401, INVALID, 'Unauthorized')
    expect((h.db.query('SELECT revoked_at FROM api_keys WHERE id = ?').get(answer.id) as { revoked_at: number }).revoked_at).toBe(h.clock.seconds)
    expect((await h.request(`${BASE}/admin/api_keys/${answer.id}`, { method: 'DELETE', headers: bearer(adminToken) })).status).toBe(404)
    expect((await h.request(`${BASE}/admin/api_keys/99999`, { method: 'DELETE', headers: bearer(adminToken) })).status).toBe(404)
    expect((await h.request(`${BASE}/admin/api_keys/abc`, { method: 'DELETE', headers: bearer(adminToken) })).status).toBe(400)
  })

  test("an admin can't revoke a superadmin's key", async () => {
    const { answer } = await adminMade('401', {}, superToken)
    const refused = await h.request(`${BASE}/admin/api_keys/${answer.id}`, { method: 'DELETE', headers: bearer(adminToken) })
    expect(refused.status).toBe(403)
    expect((await profileWith({ 'x-api-key': answer.api_key })).status).toBe(200)
  })

  test('creations and revocations are logged with actor and key id', async () => {
    const { answer } = await adminMade('201')
    await h.request(`${BASE}/admin/api_keys/${answer.id}`, { method: 'DELETE', headers: bearer(adminToken) })
    await h.securityLog.flush()
    const lines = h.logLines().filter((line) => line.key_id === answer.id)
    expect(lines).toEqual([
      expect.objectContaining({ event: 'API_KEY_CREATED', user: '201', actor: '301', reason: 'admin-made' }),
      expect.objectContaining({ event: 'API_KEY_REVOKED', user: '201', actor: '301', reason: 'revoked by an admin' }),
    ])
  })
})

describe('last uses', () => {
  let key: { api_key: string; id: number }
  beforeEach(async () => {
    h.apiKeys.flushLastUses()
    key = (await adminMade('201')).answer
  })
  const lastUsedAt = () => (h.db.query('SELECT last_used_at FROM api_keys WHERE id = ?').get(key.id) as { last_used_at: number | null }).last_used_at

  test('requests write nothing; a flush writes all of them in one go', async () => {
    const writes = store.lastUseWrites
    for (let i = 0; i < 20; i++) expect((await profileWith({ 'x-api-key': key.api_key })).status).toBe(200)
    expect(store.lastUseWrites).toBe(writes)
    expect(lastUsedAt()).toBeNull()
    expect(h.apiKeys.flushLastUses()).toBe(1)
    expect(store.lastUseWrites).toBe(writes + 1)
    expect(lastUsedAt()).toBe(h.clock.seconds)
    expect(h.apiKeys.flushLastUses()).toBe(0)
  })

  test('the list shows the last use before it is flushed', async () => {
    await profileWith({ 'x-api-key': key.api_key })
    const response = await h.request(`${BASE}/admin/api_keys?user=201`, { headers: bearer(adminToken) })
    const listed = ((await response.json()) as { api_keys: Array<{ id: number; last_used_at: number }> }).api_keys.find((each) => each.id === key.id)
    expect(listed?.last_used_at).toBe(h.clock.seconds)
  })
})

describe('the table changed by another process (the CLI)', () => {
  test('reload drops keys it revoked, takes up keys it made, and keeps last uses not yet written', async () => {
    const kept = (await adminMade('201')).answer
    const revoked = (await adminMade('201')).answer
    expect((await profileWith({ 'x-api-key': kept.api_key })).status).toBe(200)
    const other = new ApiKeyStore(h.db)
    other.revoke(revoked.id, h.clock.seconds)
    expect((await profileWith({ 'x-api-key': revoked.api_key })).status).toBe(200)
    h.apiKeys.reload()
    expect((await profileWith({ 'x-api-key': revoked.api_key })).status).toBe(401)
    expect(h.apiKeys.flushLastUses()).toBeGreaterThanOrEqual(1)
    expect(h.db.query('SELECT last_used_at FROM api_keys WHERE id = ?').get(kept.id)).toEqual({ last_used_at: h.clock.seconds })
  })
})

describe('purge', () => {
  test('deletes keys dead for 30 days, keeps working and recently dead ones', async () => {
    const stable = (await adminMade('201')).answer
    const revoked = (await adminMade('201')).answer
    await h.request(`${BASE}/admin/api_keys/${revoked.id}`, { method: 'DELETE', headers: bearer(adminToken) })
    const idle = await selfMade()
    const exists = (id: number) => h.db.query('SELECT id FROM api_keys WHERE id = ?').get(id) !== null
    h.clock.advance(29 * 24 * 3600)
    h.apiKeys.purge()
    expect([exists(stable.id), exists(revoked.id), exists(idle.id)]).toEqual([true, true, true])
    h.clock.advance(2 * 24 * 3600)
    h.apiKeys.purge()
    expect([exists(stable.id), exists(revoked.id), exists(idle.id)]).toEqual([true, false, false])
    expect((await profileWith({ 'x-api-key': stable.api_key })).status).toBe(200)
  })
})

test('no key ever reaches the security log', async () => {
  await h.securityLog.flush()
  const log = readFileSync(join(h.dir, 'log', 'security.log'), 'utf8')
  expect(issued.length).toBeGreaterThan(10)
  for (const key of issued) {
    expect(log).not.toContain(key)
    expect(log).not.toContain(key.slice(12))
  }
})
