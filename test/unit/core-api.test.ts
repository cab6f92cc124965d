/**
 * The MikoPBX core-compatible routes and the admin cookie login
 * (README "MikoPBX core-compatible API"): envelope bytes, hash and E-Tag recomputed here, who may call them, sessions, throttling.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { DirectoryAdminCredentials, MikoPbxAdminCredentials } from '../../src/core-api/admin-credentials'
import { AdminSessions } from '../../src/core-api/admin-sessions'
import { isoWithOffset, phpJson } from '../../src/core-api/envelope'
import { PbxDatabaseFile, PbxFileError } from '../../src/directory/mikopbx-file'
import { MikoPbxProviders } from '../../src/directory/mikopbx-providers'
import { BASE, bearer, createHarness, ManualClock, type Harness } from '../helpers'
import { buildMikoPbxFixture, FIXTURE_ADMIN, FIXTURE_PROVIDERS, PBX_CHANGES } from '../mikopbx-fixture'
import { contact, FakePbxState } from '../pbx-fake'

const SIP = '/pbxcore/api/sip'
const LOGIN = '/admin-cabinet/session/start'
const PROCESSOR = 'MikoPBX\\PBXCoreREST\\Lib\\'
const REMOTE = '203.0.113.5'
const ADMIN_PASSWORD = 'secret-admin'

const pbx = new FakePbxState()
let h: Harness
let file: PbxDatabaseFile
let pbxDbPath: string

beforeAll(async () => {
  h = await createHarness({ pbx, coreApi: { admins: { verify: (login, password) => new DirectoryAdminCredentials(h.directory).verify(login, password) } } })
  pbxDbPath = join(h.dir, 'mikopbx.db')
  buildMikoPbxFixture(pbxDbPath)
  file = new PbxDatabaseFile(pbxDbPath, () => {}, h.clock)
  await h.directory.add({ username: 'admin', password: ADMIN_PASSWORD, displayName: 'Admin', role: 'admin', mobile: '' })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
  pbx
    .endpoint('201', 'Not in use', [contact('201', 'sip:201@192.0.2.10:5060', { UserAgent: 'Desk/1.0 (büro)' })])
    .endpoint('201-WS', 'Unavailable', [contact('201-WS', '')])
    .endpoint('202', 'In use', [contact('202', ''), contact('202', 'sip:202@192.0.2.12:5060')])
    .endpoint('203', 'Unavailable')
    .endpoint('204', 'Busy')
    .endpoint('205', 'Unavailable')
    .endpoint('205-WS', 'Ringing')
    .endpoint('206', 'On Hold')
    .endpoint('anonymous', 'Not in use')
    .endpoint(FIXTURE_PROVIDERS.inbound.uniqid, 'Not in use', [contact(FIXTURE_PROVIDERS.inbound.uniqid, 'sip:in@198.51.100.1')])
    .registration('REG-SIP-1700000000', 'Registered', 'sip:sip.provider.test:5060', 'sip:account-1@sip.provider.test')
})
afterAll(() => {
  file.close()
  h.close()
})

type Init = RequestInit & { peer?: string }
const request = (path: string, init: Init = {}) => h.request(path, init)
const getPeer = (body: string, contentType = 'application/json', init: Init = {}) =>
  request(`${SIP}/getSipPeer`, { method: 'POST', body, ...init, headers: { 'content-type': contentType, ...(init.headers as Record<string, string>) } })
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex')

/** Checks the envelope's framing, hash and E-Tag from the raw bytes, and returns the parsed body. */
async function envelope(response: Response) {
  const text = await response.text()
  const prefix = '{"jsonapi":{"version":"1.0"},'
  expect(text.startsWith(prefix)).toBe(true)
  const metaAt = text.lastIndexOf(',"meta":')
  const inner = `{${text.slice(prefix.length, metaAt)}}`
  const body = JSON.parse(text)
  expect(Object.keys(body)).toEqual(['jsonapi', 'result', 'data', 'messages', 'function', 'processor', 'pid', 'meta'])
  expect(body.pid).toBe(process.pid)
  expect(body.meta.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/)
  expect(Date.parse(body.meta.timestamp)).toBe(h.clock.now())
  expect(body.meta.hash).toBe(sha1(body.meta.timestamp + inner))
  expect(response.headers.get('e-tag')).toBe(sha1(inner))
  expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
  return { text, inner, body }
}

describe('getPeersStatuses', () => {
  test("from loopback without credentials: MikoPBX's envelope, -WS folded in, anonymous left out", async () => {
    const response = await request(`${SIP}/getPeersStatuses`)
    expect(response.status).toBe(200)
    const { text, body } = await envelope(response)
    expect(body).toMatchObject({
      jsonapi: { version: '1.0' },
      result: true,
      messages: [],
      function: 'getPeersStatuses',
      processor: `${PROCESSOR}Sip\\GetPeersStatusesAction::main`,
    })
    expect(body.data).toEqual([
      { id: '201', state: 'OK' },
      { id: '202', state: 'OK' },
      { id: '203', state: 'UNKNOWN' },
      { id: '204', state: 'OK' },
      { id: '205', state: 'OK' },
      { id: '206', state: 'UNKNOWN' },
      { id: FIXTURE_PROVIDERS.inbound.uniqid, state: 'OK' },
    ])
    // PHP's json_encode escapes the backslashes of the class name.
    expect(text).toContain('"processor":"MikoPBX\\\\PBXCoreREST\\\\Lib\\\\Sip\\\\GetPeersStatusesAction::main"')
  })

  test('a wrong method → 405 JSON with Allow', async () => {
    const response = await request(`${SIP}/getPeersStatuses`, { method: 'POST' })
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('GET')
    expect((await response.json()).code).toBe('method_not_allowed')
  })
})

describe('getSipPeer', () => {
  test("JSON body: MikoPBX's flattening, the WebRTC twin's registered contact first", async () => {
    pbx.endpoint('207-WS', 'Not in use', [contact('207-WS', 'sip:207@192.0.2.13:443;transport=ws')])
    pbx.endpoint('207', 'Not in use', [contact('207', 'sip:207@192.0.2.14:5060')])
    const { body } = await envelope(await getPeer('{"peer":"207"}'))
    expect(body).toMatchObject({ result: true, messages: [], function: 'getSipPeer', processor: `${PROCESSOR}Sip\\GetPeerStatusAction::main` })
    const ws = contact('207-WS', 'sip:207@192.0.2.13:443;transport=ws')
    const main = contact('207', 'sip:207@192.0.2.14:5060')
    expect(Object.entries(body.data)).toEqual([
      ...Object.entries(ws),
      ['state', 'OK'],
      ...Object.entries(main).map(([key, value]): [string, string] => [`${key}-0`, value]),
    ])
  })

  test("a twin without a URI is dropped; the first contact with a URI gets the plain names", async () => {
    const { body } = await envelope(await getPeer('{"peer":"202"}'))
    const [empty, registered] = [contact('202', ''), contact('202', 'sip:202@192.0.2.12:5060')]
    expect(body.data).toEqual({
      ...Object.fromEntries(Object.entries(empty).map(([key, value]) => [`${key}-0`, value])),
      ...registered,
      state: 'OK',
    })
  })

  test('form-encoded peer=201, and JSON sent as a form (MikoPBX\'s own curl example), and a number', async () => {
    for (const [body, type] of [
      ['peer=201', 'application/x-www-form-urlencoded'],
      ['{"peer": "201"}', 'application/x-www-form-urlencoded'],
      ['{"peer":201}', 'application/json'],
    ] as const) {
      const response = await getPeer(body, type)
      expect(response.status).toBe(200)
      const { body: parsed } = await envelope(response)
      expect(parsed.data).toMatchObject({ URI: 'sip:201@192.0.2.10:5060', state: 'OK' })
    }
  })

  test('non-ASCII and slashes are escaped as PHP writes them', async () => {
    const { text } = await envelope(await getPeer('{"peer":"201"}'))
    expect(text).toContain('"UserAgent":"Desk\\/1.0 (b\\u00fcro)"')
    expect(phpJson({ a: 'é/😀' })).toBe('{"a":"\\u00e9\\/\\ud83d\\ude00"}')
  })

  test('an unknown peer → result true, state UNKNOWN', async () => {
    const { body } = await envelope(await getPeer('{"peer":"299"}'))
    expect(body).toMatchObject({ result: true, data: { state: 'UNKNOWN' }, messages: [] })
  })

  test('missing, non-JSON or odd bodies and peers → 400 in the core error form, never 500', async () => {
    const cases: Array<[string, string, string]> = [
      ['', 'application/json', 'Request body is empty'],
      ['{bad', 'application/json', 'Request body is not valid JSON'],
      ['peer=201', 'application/json', 'Request body is not valid JSON'],
      ['["201"]', 'application/json', 'Request body must be a JSON object'],
      ['{}', 'application/json', 'Empty peer value in POST/GET data'],
      ['{"peer":""}', 'application/json', 'Empty peer value in POST/GET data'],
      ['{"peer":null}', 'application/json', 'Empty peer value in POST/GET data'],
      ['{"peer":"../etc/passwd"}', 'application/json', 'Invalid peer value in POST/GET data'],
      ['{"peer":"201/../202"}', 'application/json', 'Invalid peer value in POST/GET data'],
      ['{"peer":" 201"}', 'application/json', 'Invalid peer value in POST/GET data'],
      ['{"peer":["201"]}', 'application/json', 'Invalid peer value in POST/GET data'],
      ['{"peer":{"x":1}}', 'application/json', 'Invalid peer value in POST/GET data'],
      ['{"peer":-1}', 'application/json', 'Invalid peer value in POST/GET data'],
      [`{"peer":"${'2'.repeat(65)}"}`, 'application/json', 'Invalid peer value in POST/GET data'],
      ['peer=..%2F201', 'application/x-www-form-urlencoded', 'Invalid peer value in POST/GET data'],
      ['peer=201&peer=202', 'application/x-www-form-urlencoded', 'Request body repeats a field'],
      ['{"a":'.repeat(10) + '1' + '}'.repeat(10), 'application/json', 'Request body is nested too deeply or has too many fields'],
      [`{"peer":"201","pad":"${'x'.repeat(9000)}"}`, 'application/json', 'Request body is too large or not UTF-8'],
    ]
    for (const [body, type, message] of cases) {
      const response = await getPeer(body, type)
      expect({ body: body.slice(0, 40), status: response.status }).toEqual({ body: body.slice(0, 40), status: 400 })
      const { body: parsed } = await envelope(response)
      expect(parsed).toMatchObject({
        result: false,
        data: [],
        messages: { error: [message] },
        function: 'getSipPeer',
        processor: `${PROCESSOR}SIPStackProcessor::callBack`,
      })
    }
  })

  test('invalid UTF-8 and no body at all → 400', async () => {
    const bad = await request(`${SIP}/getSipPeer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: new Uint8Array([0x7b, 0xff, 0x7d]) })
    expect(bad.status).toBe(400)
    const none = await request(`${SIP}/getSipPeer`, { method: 'POST' })
    expect(none.status).toBe(400)
    expect((await envelope(none)).body.messages).toEqual({ error: ['Request body is empty'] })
  })
})

describe('getRegistry', () => {
  test('embedded: the outbound registrations alone, named by provider id', async () => {
    const { body } = await envelope(await request(`${SIP}/getRegistry`))
    expect(body).toMatchObject({ result: true, function: 'getRegistry', processor: `${PROCESSOR}Sip\\GetRegistryAction::main` })
    expect(body.data).toEqual([{ id: 'SIP-1700000000', state: 'REGISTERED', host: 'sip.provider.test', username: 'account-1' }])
  })

  test("with MikoPBX's providers: disabled → OFF, inbound and none by their contacts", async () => {
    const withProviders = await createHarness({ pbx, providers: new MikoPbxProviders(file), coreApi: { admins: { verify: async () => null } } })
    try {
      const response = await withProviders.request(`${SIP}/getRegistry`)
      expect(response.status).toBe(200)
      const body = JSON.parse(await response.text())
      const { inbound, none, disabled } = FIXTURE_PROVIDERS
      expect(body.data).toEqual([
        { id: 'SIP-1700000000', state: 'REGISTERED', host: 'sip.provider.test', username: 'account-1' },
        { id: inbound.uniqid, state: 'REGISTERED', host: inbound.host, username: inbound.username },
        { id: none.uniqid, state: 'UNKNOWN', host: none.host, username: none.username },
        { id: disabled.uniqid, state: 'OFF', host: disabled.host, username: disabled.username },
      ])
    } finally {
      withProviders.close()
    }
  })
})

describe('who may call the core routes', () => {
  const path = `${SIP}/getPeersStatuses`

  test('loopback peers without proxy headers need nothing', async () => {
    for (const peer of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '127.0.0.2']) {
      expect((await request(path, { peer })).status).toBe(200)
    }
  })

  test('proxied (X-Real-IP, X-Forwarded-For, Forwarded) or remote without credentials → 401 core error form', async () => {
    const refused: Init[] = [
      { peer: '127.0.0.1', headers: { 'x-real-ip': '127.0.0.1' } },
      { peer: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.1' } },
      { peer: '127.0.0.1', headers: { forwarded: 'for=127.0.0.1' } },
      { peer: REMOTE },
      { peer: REMOTE, headers: { authorization: 'Bearer not.a.token' } },
      { peer: REMOTE, headers: { authorization: 'Basic YWRtaW46eA==' } },
    ]
    for (const init of refused) {
      const response = await request(path, init)
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
      const { body } = await envelope(response)
      expect(body).toMatchObject({ result: false, data: [], messages: { error: ['Unauthorized'] }, function: 'getPeersStatuses' })
    }
  })

  test("an admin's access token opens them; a user's or a refresh token → 403", async () => {
    const admin = await h.login('admin', ADMIN_PASSWORD)
    const user = await h.login('201', 'secret-201')
    expect((await request(path, { peer: REMOTE, headers: bearer(admin.access_token) })).status).toBe(200)
    for (const token of [user.access_token, admin.refresh_token]) {
      const response = await request(path, { peer: REMOTE, headers: bearer(token) })
      expect(response.status).toBe(403)
      expect((await envelope(response)).body.messages).toEqual({ error: ['Administrator role required'] })
    }
  })

  test("an admin of an expired space → 403 (README \"Spaces\")", async () => {
    const admin = await h.login('admin', ADMIN_PASSWORD)
    h.spaces.setExpiry('default', h.clock.seconds)
    try {
      const response = await request(path, { peer: REMOTE, headers: bearer(admin.access_token) })
      expect(response.status).toBe(403)
      expect((await envelope(response)).body.messages).toEqual({ error: ['The account space has expired'] })
    } finally {
      h.spaces.setExpiry('default', null)
    }
  })

  test('not served with core_api off: 404 module envelope', async () => {
    const off = await createHarness({ pbx })
    try {
      for (const [method, target] of [['GET', path], ['POST', `${SIP}/getSipPeer`], ['POST', LOGIN]] as const) {
        const response = await off.request(target, { method })
        expect(response.status).toBe(404)
        expect((await response.json()).code).toBe('not_found')
      }
    } finally {
      off.close()
    }
  })
})

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
const adminLogin = (fields: Record<string, string>, init: Init = {}) =>
  request(LOGIN, { method: 'POST', body: form(fields), ...init, headers: { 'content-type': 'application/x-www-form-urlencoded', ...(init.headers as Record<string, string>) } })
const cookieOf = (response: Response) => response.headers.get('set-cookie')!.split(';')[0]!

describe('the admin cookie login', () => {
  test('success: MikoPBX\'s body, a PHPSESSID cookie, AUTH_SUCCESS without the password', async () => {
    const response = await adminLogin({ login: 'admin', password: ADMIN_PASSWORD }, { peer: REMOTE, headers: { 'user-agent': 'curl/8.0' } })
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('{"success":true,"reload":"index/index","message":[]}')
    expect(response.headers.get('set-cookie')).toMatch(/^PHPSESSID=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const event = h.logLines().filter((line) => line.event === 'AUTH_SUCCESS').at(-1)!
    expect(event).toMatchObject({ ip: REMOTE, user: 'admin', method: 'admin_password', ua: 'curl/8.0' })
    expect(JSON.stringify(h.logLines())).not.toContain(ADMIN_PASSWORD)
    expect(JSON.stringify(h.logLines())).not.toContain(cookieOf(response).slice('PHPSESSID='.length))
  })

  test('the cookie opens the core routes from the same address only', async () => {
    const cookie = cookieOf(await adminLogin({ login: 'admin', password: ADMIN_PASSWORD }, { peer: REMOTE }))
    expect((await request(`${SIP}/getPeersStatuses`, { peer: REMOTE, headers: { cookie } })).status).toBe(200)
    expect((await getPeer('{"peer":"201"}', 'application/json', { peer: REMOTE, headers: { cookie } })).status).toBe(200)
    expect((await request(`${SIP}/getPeersStatuses`, { peer: '198.51.100.77', headers: { cookie } })).status).toBe(401)
  })

  test('behind nginx the address is X-Real-IP', async () => {
    const viaNginx = (ip: string) => ({ peer: '127.0.0.1', headers: { 'x-real-ip': ip } })
    const cookie = cookieOf(await adminLogin({ login: 'admin', password: ADMIN_PASSWORD }, viaNginx('198.51.100.9')))
    const use = (ip: string) => request(`${SIP}/getRegistry`, { ...viaNginx(ip), headers: { ...viaNginx(ip).headers, cookie } })
    expect((await use('198.51.100.9')).status).toBe(200)
    expect((await use('198.51.100.10')).status).toBe(401)
  })

  test('forged, repeated or expired cookies → 401; use keeps a session alive', async () => {
    const cookie = cookieOf(await adminLogin({ login: 'admin', password: ADMIN_PASSWORD }, { peer: REMOTE }))
    const use = (value: string) => request(`${SIP}/getPeersStatuses`, { peer: REMOTE, headers: { cookie: value } })
    for (const forged of ['PHPSESSID=' + 'A'.repeat(43), 'PHPSESSID=../../x', 'PHPSESSID=', `${cookie}; ${cookie}`]) {
      const response = await use(forged)
      expect(response.status).toBe(401)
      expect((await envelope(response)).body.messages).toEqual({ error: ['Unauthorized'] })
    }
    h.clock.advance(29 * 60)
    expect((await use(cookie)).status).toBe(200)
    h.clock.advance(29 * 60)
    expect((await use(`theme=dark; ${cookie}`)).status).toBe(200)
    h.clock.advance(30 * 60)
    expect((await use(cookie)).status).toBe(401)
  })

  test("failure: MikoPBX's body, AUTH_FAILED; a plain user's right password fails too", async () => {
    for (const fields of [{ login: 'admin', password: 'wrong' }, { login: 'nobody', password: 'x' }, { login: '201', password: 'secret-201' }]) {
      const response = await adminLogin(fields, { peer: '198.51.100.20' })
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('{"success":false,"reload":false,"message":{"error":["Authorization failed, check the login and password"]}}')
      expect(response.headers.get('set-cookie')).toBeNull()
    }
    const failed = h.logLines().filter((line) => line.event === 'AUTH_FAILED' && line.ip === '198.51.100.20')
    expect(failed.map((line) => [line.user, line.method, line.reason])).toEqual([
      ['admin', 'admin_password', 'invalid admin credentials'],
      ['nobody', 'admin_password', 'invalid admin credentials'],
      ['201', 'admin_password', 'invalid admin credentials'],
    ])
  })

  test('missing fields, JSON or oversized input → 400 before any password work', async () => {
    for (const init of [
      { body: form({ login: 'admin' }) },
      { body: form({ login: '', password: 'x' }) },
      { body: form({ login: 'admin', password: ADMIN_PASSWORD, extra: 'x' }).replace('extra=x', 'login=admin') },
      { body: JSON.stringify({ login: 'admin', password: ADMIN_PASSWORD }), headers: { 'content-type': 'application/json' } },
      { body: form({ login: 'a'.repeat(65), password: 'x' }) },
      { body: form({ login: 'admin', password: 'x'.repeat(9000) }) },
    ]) {
      const response = await request(LOGIN, { method: 'POST', peer: '198.51.100.30', ...init, headers: { 'content-type': 'application/x-www-form-urlencoded', ...init.headers } })
      expect(response.status).toBe(400)
      expect((await response.json()).success).toBe(false)
    }
    expect(h.logLines().filter((line) => line.ip === '198.51.100.30')).toEqual([])
  })
})

describe('one throttle for auth/login and the admin login', () => {
  test('failures at the admin login delay auth/login for that name and address', async () => {
    const ip = '198.51.100.40'
    for (let attempt = 0; attempt < 5; attempt++) await adminLogin({ login: 'admin', password: 'wrong' }, { peer: ip })
    const sixth = await adminLogin({ login: 'admin', password: 'wrong' }, { peer: ip })
    expect(sixth.status).toBe(200)
    const throttled = await h.json(`${BASE}/auth/login`, { username: 'admin', password: ADMIN_PASSWORD }, { peer: ip })
    expect(throttled.status).toBe(429)
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0)
  })

  test('failures at auth/login delay the admin login, even with the right password', async () => {
    const ip = '198.51.100.41'
    for (let attempt = 0; attempt < 6; attempt++) await h.json(`${BASE}/auth/login`, { username: 'admin', password: 'wrong' }, { peer: ip })
    const response = await adminLogin({ login: 'admin', password: ADMIN_PASSWORD }, { peer: ip })
    expect(response.status).toBe(429)
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await response.json()).toEqual({ success: false, reload: false, message: { error: ['Too many login attempts, try again later'] } })
    expect(response.headers.get('set-cookie')).toBeNull()
    expect(h.logLines().filter((line) => line.event === 'LOGIN_THROTTLED' && line.ip === ip).at(-1)).toMatchObject({ method: 'admin_password' })
  })
})

describe("MikoPBX's web administrator (m_PbxSettings)", () => {
  const credentials = () => new MikoPbxAdminCredentials(file)
  const setPassword = (value: string) => {
    const writer = new Database(pbxDbPath)
    writer.query(PBX_CHANGES.setAdminPassword).run(value)
    writer.close()
  }

  test('a plaintext password, compared exactly', async () => {
    setPassword(FIXTURE_ADMIN.password)
    expect(await credentials().verify(FIXTURE_ADMIN.login, FIXTURE_ADMIN.password)).toBe('admin')
    expect(await credentials().verify(FIXTURE_ADMIN.login, `${FIXTURE_ADMIN.password} `)).toBeNull()
    expect(await credentials().verify('Admin', FIXTURE_ADMIN.password)).toBeNull()
    expect(await credentials().verify('', '')).toBeNull()
  })

  test("a bcrypt hash as PHP writes it ($2y$), read at each login", async () => {
    const hash = (await Bun.password.hash('New-web-pass-2', { algorithm: 'bcrypt', cost: 4 })).replace(/^\$2b\$/, '$2y$')
    setPassword(hash)
    try {
      const admins = credentials()
      expect(await admins.verify('admin', 'New-web-pass-2')).toBe('admin')
      expect(await admins.verify('admin', FIXTURE_ADMIN.password)).toBeNull()
      expect(await admins.verify('admin', hash)).toBeNull()
      expect(await admins.verify('other', 'New-web-pass-2')).toBeNull()
    } finally {
      setPassword(FIXTURE_ADMIN.password)
    }
  })

  test('through the login route, then the cookie', async () => {
    const onPbx = await createHarness({ pbx, coreApi: { admins: credentials() } })
    try {
      const login = (password: string) =>
        onPbx.request(LOGIN, { method: 'POST', peer: REMOTE, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form({ login: 'admin', password }) })
      expect((await (await login('nope')).json()).success).toBe(false)
      const response = await login(FIXTURE_ADMIN.password)
      expect((await response.json()).success).toBe(true)
      const cookie = cookieOf(response)
      expect((await onPbx.request(`${SIP}/getPeersStatuses`, { peer: REMOTE, headers: { cookie } })).status).toBe(200)
    } finally {
      onPbx.close()
    }
  })

  test("MikoPBX's database locked → 503 with Retry-After in each route's own form, never 500", async () => {
    const busy = () => {
      throw new PbxFileError('locked by its writer', 'SQLITE_BUSY')
    }
    const locked = await createHarness({ pbx, providers: { list: busy }, coreApi: { admins: { verify: async () => busy() } } })
    try {
      const registry = await locked.request(`${SIP}/getRegistry`)
      expect(registry.status).toBe(503)
      expect(registry.headers.get('retry-after')).toBe('1')
      expect(JSON.parse(await registry.text())).toMatchObject({ result: false, data: [], messages: { error: ['Service busy, try again'] } })
      const login = await locked.request(LOGIN, {
        method: 'POST',
        peer: REMOTE,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form({ login: 'admin', password: 'x' }),
      })
      expect(login.status).toBe(503)
      expect(login.headers.get('retry-after')).toBe('1')
      expect(await login.json()).toEqual({ success: false, reload: false, message: { error: ['Service busy, try again'] } })
    } finally {
      locked.close()
    }
  })

  test('a database without m_PbxSettings has no administrator', async () => {
    const path = join(h.dir, 'bare.db')
    buildMikoPbxFixture(path)
    const writer = new Database(path)
    writer.run('DROP TABLE m_PbxSettings')
    writer.close()
    const bare = new PbxDatabaseFile(path, () => {})
    try {
      expect(await new MikoPbxAdminCredentials(bare).verify('admin', FIXTURE_ADMIN.password)).toBeNull()
    } finally {
      bare.close()
    }
  })
})

describe('admin sessions', () => {
  test('at most max: a new one pushes out the least recently used', () => {
    const clock = new ManualClock()
    const sessions = new AdminSessions(clock, { idleMs: 60_000, max: 2 })
    const first = sessions.start('admin', REMOTE)
    const second = sessions.start('admin', REMOTE)
    clock.advance(1)
    expect(sessions.check(first, REMOTE)).toBe('admin')
    sessions.start('admin', REMOTE)
    expect(sessions.size).toBe(2)
    expect(sessions.check(second, REMOTE)).toBeNull()
    expect(sessions.check(first, REMOTE)).toBe('admin')
  })

  test('expired sessions are dropped when a new one starts', () => {
    const clock = new ManualClock()
    const sessions = new AdminSessions(clock, { idleMs: 60_000, max: 10 })
    sessions.start('admin', REMOTE)
    sessions.start('admin', REMOTE)
    clock.advance(60)
    sessions.start('admin', REMOTE)
    expect(sessions.size).toBe(1)
  })
})

test("meta.timestamp is PHP's date('c'): local time with its offset", () => {
  const at = new Date(Date.UTC(2026, 10, 30, 18, 0, 0))
  const text = isoWithOffset(at)
  expect(text).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00[+-]\d{2}:\d{2}$/)
  expect(Date.parse(text)).toBe(at.getTime())
})
