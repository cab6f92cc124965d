/** The key ring and `secret rotate`'s rotation, with the clock moved by hand (README "Key rotation"). */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { TokenKeyError } from '../../src/tokens/jws'
import {
  EMPTY_RING,
  parseRing,
  readRingFile,
  rotated,
  serializeRing,
  watchKeyRing,
  writeFileAtomically,
  KeyRing,
  type KeyRingState,
} from '../../src/tokens/key-ring'
import { SecretKeyError } from '../../src/tokens/secret-key'
import { BASE, bearer, createHarness, type Harness } from '../helpers'
import { forge, validClaims } from './attacks/battery'

const NOW = 1_800_000_000
const GRACE = 2_592_030
const kidOf = (token: string): string | undefined => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid

describe('rotated', () => {
  test('the first rotation: a new key with a 16-character kid signs; the legacy key retires after the grace', () => {
    const ring = rotated(EMPTY_RING, { now: NOW, graceSeconds: GRACE, revokeAll: false })
    expect(ring.legacyRetiresAt).toBe(NOW + GRACE)
    expect(ring.keys).toHaveLength(1)
    expect(ring.keys[0]!.kid).toMatch(/^[A-Za-z0-9_-]{16}$/)
    expect(Buffer.from(ring.keys[0]!.key).toString('latin1')).toMatch(/^[0-9a-f]{64}$/)
    expect(ring.keys[0]).toMatchObject({ createdAt: NOW, retiresAt: null })
    const keys = new KeyRing(Buffer.from('ab'.repeat(32)), ring)
    expect(keys.signing().kid).toBe(ring.keys[0]!.kid)
    expect(keys.isLive(undefined, NOW + GRACE - 1)).toBe(true)
    expect(keys.isLive(undefined, NOW + GRACE)).toBe(false)
  })

  test('a second rotation retires the first ring key after its own grace, keeps the legacy deadline, and drops retired keys', () => {
    const first = rotated(EMPTY_RING, { now: NOW, graceSeconds: GRACE, revokeAll: false })
    const second = rotated(first, { now: NOW + 100, graceSeconds: GRACE, revokeAll: false })
    expect(second.legacyRetiresAt).toBe(NOW + GRACE)
    expect(second.keys.map((key) => [key.kid, key.retiresAt])).toEqual([
      [first.keys[0]!.kid, NOW + 100 + GRACE],
      [second.keys[1]!.kid, null],
    ])
    const third = rotated(second, { now: NOW + 100 + GRACE, graceSeconds: GRACE, revokeAll: false })
    expect(third.keys.map((key) => key.kid)).toEqual([second.keys[1]!.kid, third.keys[1]!.kid])
    expect(third.legacyRetiresAt).toBe(NOW + GRACE)
  })

  test('revoke-all retires every earlier key and the legacy key at once', () => {
    const first = rotated(EMPTY_RING, { now: NOW, graceSeconds: GRACE, revokeAll: false })
    const revoked = rotated(first, { now: NOW + 5, graceSeconds: GRACE, revokeAll: true })
    expect(revoked.legacyRetiresAt).toBe(NOW + 5)
    expect(revoked.keys).toHaveLength(1)
    expect(revoked.keys[0]!.kid).not.toBe(first.keys[0]!.kid)
    const keys = new KeyRing(Buffer.from('ab'.repeat(32)), revoked)
    expect(keys.isLive(undefined, NOW + 5)).toBe(false)
    expect(keys.isLive(first.keys[0]!.kid, NOW + 5)).toBe(false)
  })
})

describe('tokens across a rotation, with a moved clock', () => {
  let h: Harness
  let state: KeyRingState
  beforeEach(async () => {
    h = await createHarness({ accessTtl: 600, refreshTtl: 3600 })
    await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
    state = EMPTY_RING
  })
  afterEach(() => h.close())
  /** What `secret rotate` writes and the server reads, for refresh_ttl 3600. */
  const rotate = (revokeAll = false) => {
    state = rotated(state, { now: h.clock.seconds, graceSeconds: 3600 + 30, revokeAll })
    h.keys.replace(state)
  }
  const profile = (token: string) => h.request(`${BASE}/profile`, { headers: bearer(token) })
  const refresh = (token: string) => h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: bearer(token) })
  /** A token as ModuleSoftphoneBackend signed it with the legacy key: no jti, sid or kid, and its own long TTL. */
  const moduleToken = () => forge({ typ: 'JWT', alg: 'HS256' }, validClaims(h, { jti: undefined, sid: undefined, exp: h.clock.seconds + 30 * 86400 }))

  test('new logins carry the new kid; earlier tokens work until refresh_ttl has passed, then the old key is retired', async () => {
    const before = await h.login()
    const fromModule = moduleToken()
    expect(kidOf(before.access_token)).toBeUndefined()
    rotate()
    const after = await h.login()
    const kid = h.keys.signing().kid!
    expect(kidOf(after.access_token)).toBe(kid)
    expect(kidOf(after.refresh_token)).toBe(kid)
    expect((await profile(before.access_token)).status).toBe(200)

    h.clock.advance(3599)
    const renewed = await refresh(before.refresh_token)
    expect(renewed.status).toBe(200)
    expect(kidOf((await renewed.json()).access_token)).toBe(kid)
    h.clock.advance(30)
    expect((await profile(fromModule)).status).toBe(200)
    h.clock.advance(1)
    // Its own exp is days away, but the key that signed it retired with the grace.
    expect(() => h.tokens.verify(fromModule, 'access')).toThrow(TokenKeyError)
    expect((await profile(fromModule)).status).toBe(401)
    expect(kidOf((await h.login()).access_token)).toBe(kid)
  })

  test('a remembered verification stops counting once its key retires', async () => {
    const fromModule = moduleToken()
    expect(h.tokens.verify(fromModule, 'access').kid).toBeUndefined()
    rotate()
    h.clock.advance(3600 + 29)
    expect(h.tokens.verify(fromModule, 'access').username).toBe('201')
    h.clock.advance(1)
    expect(() => h.tokens.verify(fromModule, 'access')).toThrow(TokenKeyError)
  })

  test('a refresh token from before the rotation rotates into the new key; its repeat gets the same successor', async () => {
    const before = await h.login()
    const first = await (await refresh(before.refresh_token)).json()
    rotate()
    const again = await (await refresh(before.refresh_token)).json()
    expect(kidOf(again.refresh_token)).toBe(h.keys.signing().kid)
    const jti = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti
    expect(jti(again.refresh_token)).toBe(jti(first.refresh_token))
    expect((await refresh(again.refresh_token)).status).toBe(200)
  })

  test('revoke-all: tokens signed with earlier keys fail at once', async () => {
    const legacy = await h.login()
    rotate()
    const withKid = await h.login()
    rotate(true)
    expect(() => h.tokens.verify(withKid.access_token, 'access')).toThrow(TokenKeyError)
    expect(() => h.tokens.verify(legacy.access_token, 'access')).toThrow(TokenKeyError)
    expect((await profile(withKid.access_token)).status).toBe(401)
    expect((await profile((await h.login()).access_token)).status).toBe(200)
  })
})

describe('the ring file', () => {
  let dir: string
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'key-ring-'))))
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  test('round-trips, is written 0600, and no file is the empty ring', () => {
    const path = join(dir, 'secret.key.ring')
    expect(readRingFile(path)).toEqual(EMPTY_RING)
    const ring = rotated(rotated(EMPTY_RING, { now: NOW, graceSeconds: GRACE, revokeAll: false }), { now: NOW + 1, graceSeconds: GRACE, revokeAll: false })
    writeFileAtomically(path, serializeRing(ring))
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(readRingFile(path)).toEqual(ring)
  })

  test('refuses a ring others can read, a symlink, and contents this build did not write', () => {
    const path = join(dir, 'secret.key.ring')
    writeFileAtomically(path, serializeRing(rotated(EMPTY_RING, { now: NOW, graceSeconds: GRACE, revokeAll: false })))
    chmodSync(path, 0o640)
    expect(() => readRingFile(path)).toThrow(`run: chmod 600 ${path}`)
    chmodSync(path, 0o600)
    symlinkSync(path, join(dir, 'link'))
    expect(() => readRingFile(join(dir, 'link'))).toThrow(/symlink/)
    const good = JSON.parse(readFileSync(path, 'utf8'))
    const entry = good.keys[0]
    for (const bad of [
      'not json',
      '{}',
      JSON.stringify({ ...good, legacy_retires_at: '1' }),
      JSON.stringify({ ...good, keys: [{ ...entry, kid: '../x' }] }),
      JSON.stringify({ ...good, keys: [{ ...entry, secret: 'AB'.repeat(32) }] }),
      JSON.stringify({ ...good, keys: [{ ...entry, retires_at: -1 }] }),
      JSON.stringify({ ...good, keys: [entry, entry] }),
    ]) {
      expect(() => parseRing(bad, 'x')).toThrow(SecretKeyError)
    }
  })

  test('the server re-reads a replaced ring on its next check, and keeps its keys when the new one is bad', () => {
    const path = join(dir, 'secret.key.ring')
    const keys = new KeyRing(Buffer.from('ab'.repeat(32)))
    const lines: string[] = []
    const watch = watchKeyRing(path, keys, (line) => lines.push(line))
    try {
      const ring = rotated(EMPTY_RING, { now: NOW, graceSeconds: GRACE, revokeAll: false })
      writeFileAtomically(path, serializeRing(ring))
      watch.check()
      expect(keys.signing().kid).toBe(ring.keys[0]!.kid)
      expect(lines).toEqual([`key ring ${path} reloaded; signing with ${ring.keys[0]!.kid}`])
      writeFileSync(path, 'garbage')
      watch.check()
      expect(keys.signing().kid).toBe(ring.keys[0]!.kid)
      expect(lines[1]).toContain('is invalid (not JSON); restore it from a backup; keeping the keys in memory')
      expect(lines.join('\n')).not.toContain(Buffer.from(ring.keys[0]!.key).toString('latin1'))
    } finally {
      watch.close()
    }
  })
})
