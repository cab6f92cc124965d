/**
 * HTTP Digest through the access model (README "HTTP Digest"): the app as served, its routes
 * answering `Authorization: Digest` from the embedded directory's stored HA1 and from MikoPBX's
 * SIP secrets.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, spyOn, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { digestHa1, type DigestAlgorithm } from '../../src/auth/digest'
import { nonceKey } from '../../src/auth/digest-authenticator'
import { DigestNonces } from '../../src/auth/digest-nonce'
import { CachedDirectory } from '../../src/directory/cached'
import { MikoPbxDirectory } from '../../src/directory/mikopbx'
import { openAtStart, type PbxDatabaseFile } from '../../src/directory/mikopbx-file'
import { challengeField, challengesOf, digestAuthorization } from '../digest-client'
import { BASE, bearer, createHarness, type Harness } from '../helpers'
import { buildMikoPbxFixture, FIXTURE_PEERS } from '../mikopbx-fixture'

const PROFILE = `${BASE}/profile`
const FROM = 'sip:201@pbx.example.org'
const PASSWORD = 'secret-201'

interface Answer {
  username?: string
  password?: string
  uri?: string
  nc?: string
  method?: string
  cnonce?: string
}

const field = challengeField

/** What a client answers to `challenge`, for user 201 on the profile route unless overridden. */
function answer(challenge: string, overrides: Answer = {}): string {
  return digestAuthorization(challenge, {
    username: overrides.username ?? '201',
    password: overrides.password ?? PASSWORD,
    uri: overrides.uri ?? PROFILE,
    method: overrides.method ?? 'GET',
    nc: overrides.nc,
    cnonce: overrides.cnonce,
  })
}

async function expectEnvelope(response: Response, status: number, error: string, timestamp: number) {
  expect(response.status).toBe(status)
  const body = await response.json()
  expect(body).toMatchObject({ success: false, error })
  expect(typeof body.code).toBe('string')
  expect(body.timestamp).toBe(timestamp)
}

function expectDigestChallenges(response: Response, options: { stale?: boolean } = {}) {
  const challenges = challengesOf(response)
  expect(challenges).toHaveLength(2)
  const stale = options.stale ? ', stale=true' : ''
  expect(challenges[0]).toMatch(new RegExp(`^Digest realm="softphone", qop="auth", algorithm=SHA-256, nonce="[A-Za-z0-9_-]{64}", opaque="[A-Za-z0-9_-]{32}"${stale}$`))
  expect(challenges[1]).toMatch(new RegExp(`^Digest realm="softphone", qop="auth", algorithm=MD5, nonce="[A-Za-z0-9_-]{64}", opaque="[A-Za-z0-9_-]{32}"${stale}$`))
}

describe('Digest on the embedded directory (HA1 stored per realm)', () => {
  let h: Harness
  /** Each test from its own client address, so the throttle of one never answers another. */
  let clients = 0
  let ip: string

  beforeAll(async () => {
    h = await createHarness()
    await h.directory.add({ username: '201', password: PASSWORD, displayName: 'Alice', role: 'user', mobile: '' })
    await h.directory.add({ username: '202', password: 'secret-202', displayName: 'Bob', role: 'admin', mobile: '' })
  })
  afterAll(() => h.close())
  beforeEach(() => {
    ip = `198.51.100.${++clients}`
  })

  const get = (path: string, headers: Record<string, string>) => h.request(path, { headers: { 'x-real-ip': ip, ...headers } })

  /** A 401 with two challenges, as a client gets by asking without credentials. */
  async function challenge(from = FROM, path = PROFILE): Promise<[sha256: string, md5: string]> {
    const response = await get(path, { from })
    expect(response.status).toBe(401)
    const [sha256, md5] = challengesOf(response)
    return [sha256!, md5!]
  }

  const withDigest = (authorization: string, extra: Record<string, string> = {}) => get(PROFILE, { authorization, from: FROM, ...extra })

  describe('challenge when credentials are missing', () => {
    test('From: sip:<user>@<domain> → 401 with two Digest challenges, SHA-256 first, and the envelope', async () => {
      const response = await get(PROFILE, { from: FROM })
      expectDigestChallenges(response)
      await expectEnvelope(response, 401, 'Unauthorized. Token required', h.clock.seconds)
    })

    for (const [what, from] of [
      ['no From', null],
      ['a display name around the URI', 'Alice <sip:201@pbx.example.org>'],
      ['a tel: URI', 'tel:201'],
      ['no domain', 'sip:201'],
    ] as const) {
      test(`${what} → the Bearer 401`, async () => {
        const response = await get(PROFILE, from === null ? {} : { from })
        expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
        await expectEnvelope(response, 401, 'Unauthorized. Token required', h.clock.seconds)
      })
    }

    test('routes that take only a token never offer Digest: auth/refresh, auth/logout', async () => {
      const refresh = await h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: { from: FROM, 'x-real-ip': ip } })
      expect(refresh.status).toBe(401)
      expect(refresh.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
      const logout = await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: { from: FROM, 'x-real-ip': ip } })
      expect(logout.status).toBe(401)
      expect(logout.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    })

    test('the nonce key is HMAC(signing key, "digest-nonce-v1"): a challenge\'s nonce checks under it', async () => {
      const [sha256] = await challenge()
      const nonces = new DigestNonces(nonceKey(h.key), h.clock)
      expect(nonces.check(field(sha256, 'nonce'), field(sha256, 'opaque'), ip).expired).toBe(false)
    })
  })

  describe('a correct answer', () => {
    for (const index of [0, 1] as const) {
      const algorithm = index === 0 ? 'SHA-256' : 'MD5'
      test(`to the ${algorithm} challenge → 200 as that user; the next nonce count too`, async () => {
        const offered = (await challenge())[index]
        const first = await withDigest(answer(offered))
        expect(first.status).toBe(200)
        expect(await first.json()).toEqual({ success: true, user: { id: 1, username: '201', role: 'user', display_name: 'Alice' } })
        expect((await withDigest(answer(offered, { nc: '00000002' }))).status).toBe(200)
      })
    }

    test('the uri with its query, as the request target was sent', async () => {
      const [sha256] = await challenge()
      const target = `${BASE}/history?date=2026-11-23`
      const response = await get(target, { authorization: answer(sha256, { uri: target }), from: FROM })
      expect(response.status).toBe(200)
    })

    test('the role still decides: a user on an admin route → 403, an admin → not 401/403', async () => {
      const [sha256] = await challenge()
      const forbidden = await get(`${BASE}/registry`, { authorization: answer(sha256, { uri: `${BASE}/registry` }), from: FROM })
      await expectEnvelope(forbidden, 403, 'Administrator role required', h.clock.seconds)
      const [bobs] = await challenge('sip:202@pbx.example.org')
      const admin = await get(`${BASE}/registry`, { authorization: answer(bobs, { username: '202', password: 'secret-202', uri: `${BASE}/registry` }), from: 'sip:202@pbx.example.org' })
      expect([401, 403]).not.toContain(admin.status)
    })

    test('is not logged (every Digest request authenticates; the log would grow with traffic)', async () => {
      const [sha256] = await challenge()
      const before = h.logLines().length
      expect((await withDigest(answer(sha256))).status).toBe(200)
      await Promise.resolve()
      expect(h.logLines().length).toBe(before)
    })

    test('a bearer token beside it → 400 Malformed credentials', async () => {
      const { access_token } = await h.login()
      const [sha256] = await challenge()
      const response = await get(PROFILE, { authorization: answer(sha256), from: FROM, cookie: `access_token=${access_token}` })
      await expectEnvelope(response, 400, 'Malformed credentials', h.clock.seconds)
      expect((await get(PROFILE, bearer(access_token))).status).toBe(200)
    })

    test('a user without a stored HA1 (created before Digest, no password set since) → 401', async () => {
      await h.directory.add({ username: '209', password: 'secret-209', displayName: 'Old', role: 'user', mobile: '' })
      h.db.run("DELETE FROM digest_ha1 WHERE user_id = (SELECT id FROM users WHERE username = '209')")
      const from = 'sip:209@pbx.example.org'
      const [sha256] = await challenge(from)
      const response = await get(PROFILE, { authorization: answer(sha256, { username: '209', password: 'secret-209' }), from })
      expectDigestChallenges(response)
      await expectEnvelope(response, 401, 'Unauthorized', h.clock.seconds)
    })

    test('a disabled user → 401', async () => {
      await h.directory.add({ username: '208', password: 'secret-208', displayName: 'Gone', role: 'user', mobile: '' })
      h.directory.setDisabled('208', true)
      const from = 'sip:208@pbx.example.org'
      const [sha256] = await challenge(from)
      const response = await get(PROFILE, { authorization: answer(sha256, { username: '208', password: 'secret-208' }), from })
      await expectEnvelope(response, 401, 'Unauthorized', h.clock.seconds)
    })
  })

  describe('401 with fresh challenges', () => {
    test('a wrong password: AUTH_FAILED with method digest, never the response or HA1', async () => {
      const [sha256] = await challenge()
      const authorization = answer(sha256, { password: 'wrong-password' })
      const response = await withDigest(authorization, { 'user-agent': 'softphone-test' })
      expectDigestChallenges(response)
      await expectEnvelope(response, 401, 'Unauthorized', h.clock.seconds)
      const line = h.logLines().at(-1)!
      expect(line).toMatchObject({ event: 'AUTH_FAILED', user: '201', ip, method: 'digest', reason: 'wrong response', ua: 'softphone-test' })
      const logged = JSON.stringify(h.logLines())
      expect(logged).not.toContain(field(authorization, 'response'))
      expect(logged).not.toContain(digestHa1('SHA-256', '201', 'softphone', PASSWORD))
      expect(logged).not.toContain(digestHa1('SHA-256', '201', 'softphone', 'wrong-password'))
    })

    test('a proxy\'s invalid X-Real-IP: the line carries ip_note, so fail2ban leaves the proxy alone', async () => {
      ip = 'not-an-address'
      const [sha256] = await challenge()
      const response = await withDigest(answer(sha256, { password: 'wrong-password' }))
      expect(response.status).toBe(401)
      const line = h.logLines().at(-1)!
      expect(line).toMatchObject({ event: 'AUTH_FAILED', ip: '127.0.0.1', method: 'digest' })
      expect(typeof line.ip_note).toBe('string')
    })

    test('an unknown user: the same answer', async () => {
      const from = 'sip:299@pbx.example.org'
      const [sha256] = await challenge(from)
      const response = await get(PROFILE, { authorization: answer(sha256, { username: '299' }), from })
      expectDigestChallenges(response)
      await expectEnvelope(response, 401, 'Unauthorized', h.clock.seconds)
      expect(h.logLines().at(-1)).toMatchObject({ event: 'AUTH_FAILED', user: '299', method: 'digest' })
    })

    test('a correct answer to an expired nonce → stale=true; a wrong one to it → not stale', async () => {
      const [sha256] = await challenge()
      h.clock.advance(300)
      const stale = await withDigest(answer(sha256))
      expectDigestChallenges(stale, { stale: true })
      await expectEnvelope(stale, 401, 'Unauthorized', h.clock.seconds)
      const wrong = await withDigest(answer(sha256, { password: 'wrong-password' }))
      expectDigestChallenges(wrong)
    })

    test('a replayed nonce count → 401, logged', async () => {
      const [sha256] = await challenge()
      expect((await withDigest(answer(sha256, { nc: '00000002' }))).status).toBe(200)
      for (const nc of ['00000002', '00000001']) {
        const replay = await withDigest(answer(sha256, { nc }))
        expectDigestChallenges(replay)
        await expectEnvelope(replay, 401, 'Unauthorized', h.clock.seconds)
      }
      expect(h.logLines().at(-1)).toMatchObject({ event: 'AUTH_FAILED', method: 'digest', reason: 'nonce count reused' })
    })

    test('an opaque and nonce issued to another address → 401', async () => {
      const [sha256] = await challenge()
      const response = await withDigest(answer(sha256), { 'x-real-ip': '203.0.113.99' })
      expectDigestChallenges(response)
      await expectEnvelope(response, 401, 'Unauthorized', h.clock.seconds)
    })

    test('the opaque alone from another address → 401', async () => {
      const [sha256] = await challenge()
      const otherOpaque = field(challengesOf(await get(PROFILE, { from: FROM, 'x-real-ip': '203.0.113.98' }))[0]!, 'opaque')
      const response = await withDigest(answer(sha256).replace(/opaque="[^"]+"/, `opaque="${otherOpaque}"`))
      expectDigestChallenges(response)
    })

    test('another realm → 401', async () => {
      const [sha256] = await challenge()
      const response = await withDigest(answer(sha256.replace('realm="softphone"', 'realm="elsewhere"')))
      expectDigestChallenges(response)
    })
  })

  describe('400 Malformed credentials, without a challenge', () => {
    test('a uri other than the request target', async () => {
      const [sha256] = await challenge()
      for (const uri of [`${BASE}/history`, `${PROFILE}?x=1`, `http://localhost${PROFILE}`]) {
        const response = await withDigest(answer(sha256, { uri }))
        expect(response.headers.get('www-authenticate')).toBeNull()
        await expectEnvelope(response, 400, 'Malformed credentials', h.clock.seconds)
      }
    })

    test('username other than the From user (the request contradicts itself)', async () => {
      const [sha256] = await challenge()
      const response = await withDigest(answer(sha256, { username: '202', password: 'secret-202' }))
      expect(response.headers.get('www-authenticate')).toBeNull()
      await expectEnvelope(response, 400, 'Malformed credentials', h.clock.seconds)
    })

    test('a Digest answer without From, or with a malformed one', async () => {
      const [sha256] = await challenge()
      for (const from of [null, 'Alice <sip:201@pbx.example.org>']) {
        const response = await get(PROFILE, { authorization: answer(sha256), ...(from && { from }) })
        await expectEnvelope(response, 400, 'Malformed credentials', h.clock.seconds)
      }
    })

    const mangled: Array<[string, (header: string) => string]> = [
      ['a repeated parameter', (header) => `${header}, nc=00000009`],
      ['an unquoted username', (header) => header.replace('username="201"', 'username=201')],
      ['a quoted algorithm', (header) => header.replace(/algorithm=([A-Z0-9-]+)/, 'algorithm="$1"')],
      ['algorithm=SHA-512', (header) => header.replace(/algorithm=[A-Z0-9-]+/, 'algorithm=SHA-512')],
      ['algorithm=MD5-sess', (header) => header.replace(/algorithm=[A-Z0-9-]+/, 'algorithm=MD5-sess')],
      ['qop=auth-int', (header) => header.replace('qop=auth', 'qop=auth-int')],
      ['userhash=true', (header) => `${header}, userhash=true`],
      ['a non-hex nc', (header) => header.replace(/nc=[0-9a-f]+/, 'nc=0000000g')],
      ['a short nc', (header) => header.replace(/nc=[0-9a-f]+/, 'nc=1')],
      ['a missing response', (header) => header.replace(/, response="[^"]+"/, '')],
      ['an unterminated quote', (header) => header.replace(/"$/, '')],
      ['a 100 KB header', (header) => `${header}, x="${'a'.repeat(100 * 1024)}"`],
      ['nothing after the scheme', () => 'Digest '],
    ]
    for (const [what, mangle] of mangled) {
      test(what, async () => {
        const [sha256] = await challenge()
        const response = await withDigest(mangle(answer(sha256)))
        expect(response.headers.get('www-authenticate')).toBeNull()
        await expectEnvelope(response, 400, 'Malformed credentials', h.clock.seconds)
        expect(response.status).not.toBe(500)
      })
    }
  })

  describe('check-media-access (nginx\'s subrequest)', () => {
    const MEDIA = `${BASE}/check-media-access`
    const RECORDING = '/pbxcore/softphone/recordings/2026/11/23/call.mp3'

    test('the uri is checked against X-Original-URI, the client\'s request target', async () => {
      const from = 'sip:202@pbx.example.org'
      const [sha256] = await challenge(from)
      const headers = { from, 'x-original-uri': RECORDING, 'x-real-ip': ip }
      const ok = await h.request(MEDIA, { headers: { ...headers, authorization: answer(sha256, { username: '202', password: 'secret-202', uri: RECORDING }) } })
      expect(ok.status).toBe(200)
      const own = await h.request(MEDIA, { headers: { ...headers, authorization: answer(sha256, { username: '202', password: 'secret-202', uri: MEDIA, nc: '00000002' }) } })
      expect(own.status).toBe(401)
      expect(own.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="invalid_request"')
    })
  })

  describe('the login throttle', () => {
    test('Digest and password failures count together; then 429 with Retry-After before any HA1 lookup', async () => {
      const lookups = spyOn(h.directory, 'digestHa1')
      try {
        for (let i = 0; i < 3; i++) expect((await h.json(`${BASE}/auth/login`, { username: '201', password: 'wrong-password' }, { headers: { 'x-real-ip': ip } })).status).toBe(401)
        for (let i = 0; i < 3; i++) {
          const [sha256] = await challenge()
          expect((await withDigest(answer(sha256, { password: 'wrong-password' }))).status).toBe(401)
        }
        const [sha256] = await challenge()
        const calls = lookups.mock.calls.length
        const throttled = await withDigest(answer(sha256))
        expect(throttled.headers.get('retry-after')).toBe('1')
        expect(throttled.headers.get('www-authenticate')).toBeNull()
        await expectEnvelope(throttled, 429, 'Too many login attempts, try again later', h.clock.seconds)
        expect(lookups.mock.calls.length).toBe(calls)
        expect(h.logLines().at(-1)).toMatchObject({ event: 'LOGIN_THROTTLED', user: '201', ip, method: 'digest' })
        // The password login from that address is delayed as well.
        expect((await h.json(`${BASE}/auth/login`, { username: '201', password: PASSWORD }, { headers: { 'x-real-ip': ip } })).status).toBe(429)
        h.clock.advance(1)
        expect((await withDigest(answer(sha256))).status).toBe(200)
      } finally {
        lookups.mockRestore()
      }
    })

    test('a wrong response whose failure cannot be recorded answers 503, not 401, and logs nothing', async () => {
      const [sha256] = await challenge()
      const lines = h.logLines().length
      h.db.run('PRAGMA query_only = ON')
      let response: Response
      try {
        response = await withDigest(answer(sha256, { password: 'wrong-password' }))
      } finally {
        h.db.run('PRAGMA query_only = OFF')
      }
      expect(response.status).toBe(503)
      expect(await response.json()).toMatchObject({ success: false, code: 'store_unavailable' })
      expect(h.logLines().length).toBe(lines)
    })

    test('replayed, malformed, contradicting and foreign-nonce answers spend nothing', async () => {
      const [sha256] = await challenge()
      expect((await withDigest(answer(sha256))).status).toBe(200)
      for (let i = 0; i < 8; i++) {
        expect((await withDigest(answer(sha256))).status).toBe(401)
        expect((await withDigest(answer(sha256, { uri: '/elsewhere' }))).status).toBe(400)
        expect((await withDigest(answer(sha256.replace(/nonce="[^"]+"/, `nonce="${'A'.repeat(64)}"`)))).status).toBe(401)
        expect((await withDigest('Digest username=201')).status).toBe(400)
      }
      const [fresh] = await challenge()
      expect((await withDigest(answer(fresh))).status).toBe(200)
    })
  })

  describe('key rotation', () => {
    const ringKey = (kid: string, hex: string) => ({ kid, key: Buffer.from(hex.repeat(32), 'latin1'), createdAt: h.clock.seconds, retiresAt: null })
    afterEach(() => h.keys.replace({ legacyRetiresAt: null, keys: [] }))

    test('a nonce of the key before answers as stale; of the key before that, as invalid; new ones work', async () => {
      const [beforeRotation] = await challenge()
      h.keys.replace({ legacyRetiresAt: null, keys: [ringKey('AAAAAAAAAAAAAAAA', 'b2')] })
      const stale = await withDigest(answer(beforeRotation))
      expectDigestChallenges(stale, { stale: true })
      const [afterRotation] = await challenge()
      expect((await withDigest(answer(afterRotation))).status).toBe(200)
      expect(new DigestNonces(nonceKey(Buffer.from('b2'.repeat(32), 'latin1')), h.clock).check(field(afterRotation, 'nonce'), field(afterRotation, 'opaque'), ip).expired).toBe(false)
      h.keys.replace({ legacyRetiresAt: null, keys: [ringKey('AAAAAAAAAAAAAAAA', 'b2'), ringKey('BBBBBBBBBBBBBBBB', 'c3')] })
      const [afterSecond] = await challenge()
      expectDigestChallenges(await withDigest(answer(afterRotation, { nc: '00000002' })), { stale: true })
      const forgotten = await withDigest(answer(beforeRotation, { nc: '00000002' }))
      expectDigestChallenges(forgotten)
      expect((await withDigest(answer(afterSecond))).status).toBe(200)
    })
  })
})

describe('Digest on the MikoPBX directory (HA1 from the SIP secret)', () => {
  const { alice, carol, trunk } = FIXTURE_PEERS
  let h: Harness
  let dir: string
  let file: PbxDatabaseFile

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softphone-digest-pbx-'))
    buildMikoPbxFixture(join(dir, 'mikopbx.db'))
    let cached: CachedDirectory | undefined
    file = openAtStart(join(dir, 'mikopbx.db'), () => cached?.invalidate())
    cached = new CachedDirectory(new MikoPbxDirectory(file))
    h = await createHarness({ userDirectory: cached })
  })
  afterAll(() => {
    h.close()
    file.close()
    rmSync(dir, { recursive: true, force: true })
  })

  async function profileAs(username: string, secret: string, algorithm: 0 | 1) {
    const from = `sip:${username}@pbx.example.org`
    const first = await h.request(PROFILE, { headers: { from } })
    expect(first.status).toBe(401)
    const offered = challengesOf(first)[algorithm]!
    return h.request(PROFILE, { headers: { from, authorization: answer(offered, { username, password: secret }) } })
  }

  for (const algorithm of [0, 1] as const) {
    test(`an extension answers with its SIP secret (${algorithm === 0 ? 'SHA-256' : 'MD5'}) → 200`, async () => {
      const response = await profileAs(alice.extension, alice.secret, algorithm)
      expect(response.status).toBe(200)
      expect(await response.json()).toMatchObject({ success: true, user: { username: alice.extension, display_name: alice.displayName } })
    })
  }

  test('a disabled peer, a trunk and a wrong secret → 401', async () => {
    for (const [username, secret] of [
      [carol.extension, carol.secret],
      [trunk.extension, trunk.secret],
      [alice.extension, 'not-the-secret'],
    ] as const) {
      const response = await profileAs(username, secret, 0)
      expect(response.status).toBe(401)
      expectDigestChallenges(response)
    }
  })
})
