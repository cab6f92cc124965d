import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Database } from 'bun:sqlite'
import { digestHa1 } from '../../src/auth/digest'
import { DirectoryError, EmbeddedDirectory } from '../../src/directory/embedded'
import { openStore } from '../../src/store/database'
import { ManualClock } from '../helpers'

let dir: string
let db: Database
let directory: EmbeddedDirectory
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-dir-'))
  db = openStore(join(dir, 'softphone.db'))
  directory = new EmbeddedDirectory(db, new ManualClock())
  await directory.add({ username: '201', password: 'pw-201-alice', displayName: 'Alice', role: 'admin', mobile: '0123456789' })
})
afterAll(() => {
  db.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('EmbeddedDirectory', () => {
  test('stores argon2id hashes with the documented parameters, never the password', () => {
    const row = db.query<{ password_hash: string }, []>('SELECT password_hash FROM users').get()!
    expect(row.password_hash).toStartWith('$argon2id$v=19$m=19456,t=2,p=1$')
    expect(row.password_hash).not.toContain('pw-201-alice')
  })

  test('authenticates the right password only', async () => {
    expect(await directory.authenticate('201', 'pw-201-alice')).toEqual({
      id: 1,
      username: '201',
      displayName: 'Alice',
      role: 'admin',
      mobile: '0123456789',
      disabled: false,
      spaceId: 1,
    })
    expect(await directory.authenticate('201', 'PW-201-ALICE')).toBeNull()
    expect(await directory.authenticate('999', 'pw-201-alice')).toBeNull()
  })

  test('a disabled user cannot authenticate; enabling restores access', async () => {
    directory.setDisabled('201', true)
    expect(await directory.authenticate('201', 'pw-201-alice')).toBeNull()
    expect(directory.findByUsername('201')?.disabled).toBe(true)
    directory.setDisabled('201', false)
    expect(await directory.authenticate('201', 'pw-201-alice')).not.toBeNull()
  })

  test('passwd replaces the hash', async () => {
    await directory.setPassword('201', 'new-pw-201')
    expect(await directory.authenticate('201', 'pw-201-alice')).toBeNull()
    expect(await directory.authenticate('201', 'new-pw-201')).not.toBeNull()
  })

  test('duplicates and unknown users are clear errors', async () => {
    await expect(directory.add({ username: '201', password: 'long-enough', displayName: '', role: 'user', mobile: '' })).rejects.toThrow(DirectoryError)
    expect(() => directory.setDisabled('999', true)).toThrow('no such user: 999')
    expect(() => directory.remove('999')).toThrow(DirectoryError)
  })

  test('findById and list', async () => {
    await directory.add({ username: '202', password: 'pw-202-bob', displayName: 'Bob', role: 'user', mobile: '' })
    expect(directory.findById(1)?.username).toBe('201')
    expect(directory.findById(42)).toBeNull()
    expect(directory.list().map((user) => user.username)).toEqual(['201', '202'])
    directory.remove('202')
    expect(directory.findByUsername('202')).toBeNull()
  })

  test('a new password needs password_min_length characters, counted as characters, not bytes', async () => {
    const strict = new EmbeddedDirectory(db, new ManualClock(), 10)
    const tooShort = 'ü'.repeat(9) // 18 bytes, 9 characters
    await expect(strict.add({ username: '203', password: tooShort, displayName: '', role: 'user', mobile: '' })).rejects.toThrow(
      'the password is shorter than 10 characters (password_min_length)',
    )
    expect(strict.findByUsername('203')).toBeNull()
    await expect(strict.setPassword('201', tooShort)).rejects.toThrow(DirectoryError)
    expect(await strict.authenticate('201', 'new-pw-201')).not.toBeNull()
    await strict.add({ username: '203', password: 'ü'.repeat(10), displayName: '', role: 'user', mobile: '' })
    expect(await strict.authenticate('203', 'ü'.repeat(10))).not.toBeNull()
    strict.remove('203')
  })

  test('the default minimum is 8 characters', async () => {
    await expect(directory.setPassword('201', '1234567')).rejects.toThrow('shorter than 8 characters')
    await expect(directory.setPassword('201', 'x'.repeat(1025))).rejects.toThrow('longer than 1024 bytes')
    expect(await directory.authenticate('201', 'new-pw-201')).not.toBeNull()
  })
})

describe('HTTP Digest HA1', () => {
  type Row = { realm: string; algorithm: string; ha1: string }
  const rows = (username: string): Row[] =>
    db
      .query<Row, [string]>('SELECT d.realm, d.algorithm, d.ha1 FROM digest_ha1 d JOIN users u ON u.id = d.user_id WHERE u.username = ? ORDER BY d.algorithm')
      .all(username)

  test('users add stores HA1 for the configured realm, both algorithms, never the password', async () => {
    const sip = new EmbeddedDirectory(db, new ManualClock(), 8, 'pbx.example.org')
    await sip.add({ username: '210', password: 'pw-210-digest', displayName: '', role: 'user', mobile: '' })
    expect(rows('210')).toEqual([
      { realm: 'pbx.example.org', algorithm: 'MD5', ha1: digestHa1('MD5', '210', 'pbx.example.org', 'pw-210-digest') },
      { realm: 'pbx.example.org', algorithm: 'SHA-256', ha1: digestHa1('SHA-256', '210', 'pbx.example.org', 'pw-210-digest') },
    ])
    expect(sip.digestHa1('210', 'pbx.example.org', 'SHA-256')).toBe(digestHa1('SHA-256', '210', 'pbx.example.org', 'pw-210-digest'))
    expect(sip.digestHa1('210', 'softphone', 'SHA-256')).toBeNull()
    expect(JSON.stringify(rows('210'))).not.toContain('pw-210-digest')
  })

  test('users passwd replaces it, and a new realm replaces the old realm\'s', async () => {
    await directory.add({ username: '211', password: 'pw-211-first', displayName: '', role: 'user', mobile: '' })
    expect(directory.digestHa1('211', 'softphone', 'MD5')).toBe(digestHa1('MD5', '211', 'softphone', 'pw-211-first'))
    await directory.setPassword('211', 'pw-211-second')
    expect(directory.digestHa1('211', 'softphone', 'MD5')).toBe(digestHa1('MD5', '211', 'softphone', 'pw-211-second'))
    await new EmbeddedDirectory(db, new ManualClock(), 8, 'moved').setPassword('211', 'pw-211-third')
    expect(rows('211').map((row) => row.realm)).toEqual(['moved', 'moved'])
    expect(directory.digestHa1('211', 'softphone', 'MD5')).toBeNull()
  })

  test('a refused password leaves the HA1 as it was', async () => {
    await directory.add({ username: '212', password: 'pw-212-first', displayName: '', role: 'user', mobile: '' })
    const before = rows('212')
    await expect(directory.setPassword('212', 'short')).rejects.toThrow('shorter than 8 characters')
    expect(rows('212')).toEqual(before)
  })

  test('a disabled user has no HA1 to answer with; a removed user\'s rows go with it', async () => {
    await directory.add({ username: '213', password: 'pw-213-first', displayName: '', role: 'user', mobile: '' })
    directory.setDisabled('213', true)
    expect(directory.digestHa1('213', 'softphone', 'SHA-256')).toBeNull()
    directory.setDisabled('213', false)
    expect(directory.digestHa1('213', 'softphone', 'SHA-256')).not.toBeNull()
    directory.remove('213')
    expect(db.query('SELECT COUNT(*) AS n FROM digest_ha1 WHERE user_id NOT IN (SELECT id FROM users)').get()).toEqual({ n: 0 })
  })
})

