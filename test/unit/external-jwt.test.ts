/** JWTs from an external issuer (README "External tokens"): each algorithm, the claims, the cache, key reloads. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { reloadExternalKeys } from '../../src/auth/external-jwt'
import { IssuerKeyError, parseIssuerKeys, readIssuerKeys } from '../../src/auth/external-jwt-keys'
import { ALGORITHMS, AUDIENCE, externalGround, keyPair, settingsFor, type ExternalGround } from '../external-jwt-fixture'
import { BASE, bearer } from '../helpers'

let ground: ExternalGround
beforeAll(async () => (ground = await externalGround()))
afterAll(() => ground.h.close())

const profile = (token: string) => ground.h.request(`${BASE}/profile`, { headers: bearer(token) })
const media = (token: string) => ground.h.request(`${BASE}/check-media-access`, { headers: bearer(token) })

async function expectInvalid(token: string, label: string): Promise<void> {
  const response = await profile(token)
  expect({ label, status: response.status, challenge: response.headers.get('www-authenticate') }).toEqual({
    label,
    status: 401,
    challenge: 'Bearer realm="softphone", error="invalid_token"',
  })
  expect({ label, body: await response.json() }).toMatchObject({ label, body: { success: false, code: 'invalid_token' } })
  expect({ label, media: (await media(token)).status }).toEqual({ label, media: 401 })
}

describe('accepted', () => {
  for (const algorithm of ALGORITHMS) {
    test(`${algorithm}: profile names the user of sub, check-media-access lets it through`, async () => {
      const token = await ground.token(algorithm)
      const response = await profile(token)
      expect(response.status).toBe(200)
      expect((await response.json()).user).toMatchObject({ username: '201', display_name: 'Alice' })
      expect((await media(token)).status).toBe(200)
    })
  }

  test('an aud list that holds ours, a nbf and iat within the tolerance, typ at+jwt', async () => {
    const now = ground.h.clock.seconds
    expect((await profile(await ground.token('ES256', { aud: ['other', AUDIENCE], nbf: now + 30, iat: now + 30 }, { typ: 'at+jwt' }))).status).toBe(200)
  })

  test('a token without typ or iat', async () => {
    expect((await profile(await ground.token('RS256', { iat: undefined }, { typ: undefined }))).status).toBe(200)
  })
})

describe('refused with 401 invalid_token', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['wrong iss', { iss: 'https://evil.example.test' }],
    ['wrong aud', { aud: 'someone-else' }],
    ['no iss', { iss: undefined }],
    ['no aud', { aud: undefined }],
    ['no exp', { exp: undefined }],
    ['unknown user', { sub: '999' }],
    ['disabled user', { sub: '203' }],
    ['no user claim', { sub: undefined }],
  ]
  for (const [label, claims] of cases) {
    test(label, async () => expectInvalid(await ground.token('ES256', claims), label))
  }

  test('expired, at the tolerance\'s edge', async () => {
    const now = ground.h.clock.seconds
    expect((await profile(await ground.token('RS256', { exp: now - 29 }))).status).toBe(200)
    await expectInvalid(await ground.token('RS256', { exp: now - 30 }), 'exp now-30')
  })

  test('not yet valid: nbf or iat beyond the tolerance', async () => {
    const now = ground.h.clock.seconds
    await expectInvalid(await ground.token('EdDSA', { nbf: now + 31 }), 'nbf')
    await expectInvalid(await ground.token('EdDSA', { iat: now + 31 }), 'iat')
  })

  test('a bad signature: signed by another key of the same type', async () => {
    const stranger = keyPair('RS256')
    const { SignJWT } = await import('jose')
    const token = await new SignJWT(ground.claims()).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(stranger.privateKey)
    await expectInvalid(token, 'stranger')
  })

  test('on routes that take our own access token only: logout and the streams', async () => {
    const token = await ground.token('RS256')
    const logout = await ground.h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(token) })
    expect(logout.status).toBe(401)
    expect((await ground.h.request(`${BASE}/sub/users-state`, { headers: bearer(token) })).status).toBe(401)
  })

  test('check-media-access logs the reason, never the token', async () => {
    const token = await ground.token('ES256', { exp: ground.h.clock.seconds + 60 })
    expect((await media(token)).status).toBe(200)
    ground.h.clock.advance(90)
    expect((await media(token)).status).toBe(401)
    ground.h.clock.advance(-90)
    const lines = ground.h.logLines()
    expect(lines.at(-1)).toMatchObject({ event: 'MEDIA_ACCESS_DENIED', reason: 'external token: expired' })
    expect(JSON.stringify(lines)).not.toContain(token.split('.')[2]!)
  })
})

describe('the verified cache', () => {
  test('a repeat is answered synchronously, time and user checked again on every use', async () => {
    const token = await ground.token('RS256', { exp: ground.h.clock.seconds + 60 })
    const first = ground.issuer.authenticate(token)
    expect(first).toBeInstanceOf(Promise)
    expect((await first).kind).toBe('ok')
    const again = ground.issuer.authenticate(token)
    expect(again).not.toBeInstanceOf(Promise)
    expect(again).toMatchObject({ kind: 'ok', principal: { via: 'external_jwt', user: { username: '201' } } })

    ground.h.directory.setDisabled('201', true)
    expect(ground.issuer.authenticate(token)).toMatchObject({ kind: 'failed', failure: 'invalid' })
    ground.h.directory.setDisabled('201', false)

    ground.h.clock.advance(90)
    expect(ground.issuer.authenticate(token)).toMatchObject({ kind: 'failed', failure: 'invalid', reason: 'external token: expired' })
    ground.h.clock.advance(-90)
  })

  test('a cached token is refused with the same status as a fresh one', async () => {
    const token = await ground.token('EdDSA', { exp: ground.h.clock.seconds + 60 })
    expect((await profile(token)).status).toBe(200)
    ground.h.clock.advance(90)
    await expectInvalid(token, 'expired after caching')
    ground.h.clock.advance(-90)
  })
})

describe('keys replaced at runtime (SIGHUP)', () => {
  let dir: string
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'softphone-extjwt-'))))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('a new key file replaces the keys and forgets tokens verified with the old ones', async () => {
    const local = await externalGround()
    try {
      const old = await local.token('ES256')
      expect((await local.h.request(`${BASE}/profile`, { headers: bearer(old) })).status).toBe(200)
      const next = keyPair('ES256')
      const file = join(dir, 'issuer.pem')
      writeFileSync(file, next.pem)
      expect(reloadExternalKeys(local.issuer, settingsFor({ keyFile: file }))).toBe(`external JWT keys reloaded: 1 from ${file}`)
      expect((await local.h.request(`${BASE}/profile`, { headers: bearer(old) })).status).toBe(401)
      const { SignJWT } = await import('jose')
      const fresh = await new SignJWT(local.claims()).setProtectedHeader({ alg: 'ES256' }).sign(next.privateKey)
      expect((await local.h.request(`${BASE}/profile`, { headers: bearer(fresh) })).status).toBe(200)
    } finally {
      local.h.close()
    }
  })

  test('a missing or unusable file keeps the keys in use', async () => {
    const token = await ground.token('RS256')
    for (const [name, text] of [['missing.pem', null], ['garbage.pem', 'not a key'], ['hmac.json', '{"keys":[{"kty":"oct","k":"AAAA"}]}']] as const) {
      const file = join(dir, name)
      if (text !== null) writeFileSync(file, text)
      expect(reloadExternalKeys(ground.issuer, settingsFor({ keyFile: file }))).toStartWith(`external JWT keys kept: ${file} `)
      expect((await profile(token)).status).toBe(200)
    }
  })
})

describe('the key file', () => {
  test('a JWKS: kid and alg read, encryption keys skipped, the configured algorithms only', () => {
    const rsa = keyPair('RS256').publicKey.export({ format: 'jwk' })
    const ec = keyPair('ES256').publicKey.export({ format: 'jwk' })
    const jwks = JSON.stringify({ keys: [{ ...rsa, kid: 'r1', alg: 'RS256', use: 'sig' }, { ...ec, kid: 'e1' }, { ...rsa, kid: 'enc', use: 'enc' }] })
    expect(parseIssuerKeys(jwks).map(({ algorithm, kid }) => ({ algorithm, kid }))).toEqual([
      { algorithm: 'RS256', kid: 'r1' },
      { algorithm: 'ES256', kid: 'e1' },
    ])
    const dir = mkdtempSync(join(tmpdir(), 'softphone-extjwt-'))
    try {
      writeFileSync(join(dir, 'jwks.json'), jwks)
      expect(readIssuerKeys(join(dir, 'jwks.json'), ['ES256']).map((key) => key.kid)).toEqual(['e1'])
      expect(() => readIssuerKeys(join(dir, 'jwks.json'), ['EdDSA'])).toThrow('holds no key for EdDSA')
      expect(() => readIssuerKeys(join(dir, 'nothing.pem'), ['EdDSA'])).toThrow('does not exist')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('symmetric, private, weak, mislabelled and unknown keys are refused', () => {
    const { generateKeyPairSync } = require('node:crypto') as typeof import('node:crypto')
    const rsa = keyPair('RS256')
    const refused: Array<[string, string]> = [
      [JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), 'symmetric'],
      [JSON.stringify({ keys: [rsa.privateKey.export({ format: 'jwk' })] }), 'private key'],
      [rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'private key'],
      [generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string, 'under 2048 bits'],
      [generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }) as string, 'secp384r1'],
      [JSON.stringify({ keys: [{ ...rsa.publicKey.export({ format: 'jwk' }), alg: 'HS256' }] }), 'marked "alg"'],
      [JSON.stringify({ kty: 'RSA' }), 'without a "keys" array'],
      ['hello', 'neither PEM nor JWKS'],
    ]
    for (const [text, message] of refused) {
      expect(() => parseIssuerKeys(text)).toThrow(IssuerKeyError)
      expect(() => parseIssuerKeys(text)).toThrow(message)
    }
  })
})
