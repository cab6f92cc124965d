/** The MikoPBX directory (README "Running on MikoPBX") against a fixture with MikoPBX's real tables. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkConfig } from '../../src/cli/config-command'
import { ConfigError, loadConfig } from '../../src/config/load'
import { digestHa1 } from '../../src/auth/digest'
import { CachedDirectory } from '../../src/directory/cached'
import { MikoPbxDirectory } from '../../src/directory/mikopbx'
import { openAtStart, type PbxDatabaseFile } from '../../src/directory/mikopbx-file'
import { storeOutageOf } from '../../src/store/database'
import { BASE, bearer, createHarness, ManualClock, type Harness } from '../helpers'
import { buildMikoPbxFixture, FIXTURE_PEERS, PBX_CHANGES } from '../mikopbx-fixture'

const { alice, bob, carol, trunk, aliceWebRtc, orphan } = FIXTURE_PEERS

let dir: string
let path: string
let file: PbxDatabaseFile
let changes: number
let cached: CachedDirectory
let pbx: MikoPbxDirectory
let clock: ManualClock
beforeEach(() => {
  clock = new ManualClock()
  dir = mkdtempSync(join(tmpdir(), 'softphone-mikopbx-'))
  path = join(dir, 'mikopbx.db')
  buildMikoPbxFixture(path)
  changes = 0
  file = openAtStart(
    path,
    () => {
      changes++
      cached?.invalidate()
    },
    clock,
  )
  pbx = new MikoPbxDirectory(file)
  cached = new CachedDirectory(pbx)
})
afterEach(() => {
  file.close()
  rmSync(dir, { recursive: true, force: true })
})

/** What the PBX's web interface does, on a connection of its own. */
function pbxWrite(sql: string, ...params: string[]): void {
  const writer = new Database(path)
  writer.query(sql).run(...params)
  writer.close()
}

/** Refused by the directory, each for its own reason; all must look the same to the client. */
const refused: Array<[string, string, string]> = [
  ['an unknown extension', '299', alice.secret],
  ['a wrong secret', alice.extension, bob.secret],
  ['a secret differing in case', alice.extension, alice.secret.toUpperCase()],
  ['a disabled peer with its secret', carol.extension, carol.secret],
  ['a provider trunk with its secret', trunk.extension, trunk.secret],
  ['a -WS (WebRTC) peer with its secret', aliceWebRtc.extension, aliceWebRtc.secret],
  ['SQL in the extension', "201' OR '1'='1", alice.secret],
  ['a LIKE wildcard as the extension', '20_', alice.secret],
  ['a percent sign as the extension', '%', alice.secret],
  ['a NUL byte in the secret', alice.extension, `${alice.secret}\0`],
  ['a 1 KiB secret', alice.extension, alice.secret.padEnd(1024, 'x')],
  ['a leading zero', '0201', alice.secret],
  ['a leading space', ' 201', alice.secret],
  ['a trailing space', '201 ', alice.secret],
  ['fullwidth digits', '２０１', alice.secret],
  ['Arabic-Indic digits', '٢٠١', alice.secret],
]

describe('logins', () => {
  test('a peer logs in with its extension and SIP secret, mapped from m_Extensions and m_Users', async () => {
    expect(await pbx.authenticate(alice.extension, alice.secret)).toEqual({
      id: alice.userId,
      username: '201',
      displayName: 'Alice Smith',
      role: 'user',
      mobile: alice.mobile,
      disabled: false,
    })
    expect(await pbx.authenticate(bob.extension, bob.secret)).toMatchObject({ id: bob.userId, displayName: 'Bob Jones', mobile: '' })
  })

  test('a peer without an m_Extensions row gets the legacy id 1 and no display name', async () => {
    expect(await pbx.authenticate(orphan.extension, orphan.secret)).toMatchObject({ id: 1, username: '205', displayName: '', mobile: '' })
  })

  test.each(refused)('%s is refused', async (_name, username, password) => {
    expect(await pbx.authenticate(username, password)).toBeNull()
  })

  test('disabled peers are found, as disabled, so their tokens stop working', () => {
    expect(pbx.findByUsername(carol.extension)).toMatchObject({ disabled: true })
    expect(pbx.findByUsername(trunk.extension)).toBeNull()
    expect(pbx.findByUsername(aliceWebRtc.extension)).toBeNull()
    expect(pbx.findById(alice.userId)).toMatchObject({ username: '201' })
    // m_Users 5 has only an EXTERNAL number: no SIP extension, so no login name.
    expect(pbx.findById(5)).toBeNull()
  })
})

describe('HTTP Digest', () => {
  test('HA1 is computed from the SIP secret for our realm and either algorithm', () => {
    expect(pbx.digestHa1(alice.extension, 'softphone', 'MD5')).toBe(digestHa1('MD5', alice.extension, 'softphone', alice.secret))
    expect(pbx.digestHa1(alice.extension, 'other', 'SHA-256')).toBe(digestHa1('SHA-256', alice.extension, 'other', alice.secret))
  })

  test('names that cannot log in have no HA1', () => {
    for (const name of ['299', carol.extension, trunk.extension, aliceWebRtc.extension]) expect(pbx.digestHa1(name, 'softphone', 'SHA-256')).toBeNull()
  })
})

describe('the PBX owns the file', () => {
  test('nothing is written: bytes and mtime unchanged, no journal or WAL beside it', async () => {
    const before = { bytes: readFileSync(path), mtime: statSync(path).mtimeMs, files: readdirSync(dir) }
    for (let i = 0; i < 20; i++) {
      await cached.authenticate(alice.extension, alice.secret)
      await cached.authenticate('299', 'x')
      cached.findByUsername(bob.extension)
      cached.invalidate()
      file.check()
    }
    expect(readFileSync(path).equals(before.bytes)).toBe(true)
    expect(statSync(path).mtimeMs).toBe(before.mtime)
    expect(readdirSync(dir)).toEqual(before.files)
  })

  test('a database in WAL mode is read as well, and sees commits', async () => {
    const walPath = join(dir, 'wal.db')
    buildMikoPbxFixture(walPath, { journalMode: 'WAL' })
    let walChanges = 0
    const walFile = openAtStart(walPath, () => walChanges++)
    try {
      const wal = new MikoPbxDirectory(walFile)
      expect(await wal.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
      const writer = new Database(walPath)
      writer.query(PBX_CHANGES.disable).run(alice.extension)
      writer.close()
      walFile.check()
      expect(walChanges).toBe(1)
      expect(await wal.authenticate(alice.extension, alice.secret)).toBeNull()
    } finally {
      walFile.close()
    }
  })

  test('a missing file is a config error naming the key', () => {
    expect(() => openAtStart(join(dir, 'absent.db'), () => {})).toThrow(/^config error: mikopbx_db .*absent\.db does not exist/)
  })

  test('a file that is not MikoPBX\'s is a config error', () => {
    const other = join(dir, 'other.db')
    new Database(other, { create: true }).run('CREATE TABLE t (x)')
    expect(() => openAtStart(other, () => {})).toThrow(/^config error: mikopbx_db .*other\.db is unusable: .*no m_Sip, m_Extensions table/)
  })
})

describe('changes made on the PBX', () => {
  test('a changed secret, a disabled and a deleted peer, and a new one reach the next check', async () => {
    expect(cached.findByUsername(bob.extension)?.disabled).toBe(false)
    pbxWrite(PBX_CHANGES.setSecret, alice.extension, 'Alice-new-secret')
    pbxWrite(PBX_CHANGES.disable, bob.extension)
    pbxWrite(PBX_CHANGES.remove, orphan.extension)
    pbxWrite(PBX_CHANGES.addPeer, '206', 'Peer-206-secret')
    file.check()
    expect(changes).toBeGreaterThan(0)
    expect(await cached.authenticate(alice.extension, alice.secret)).toBeNull()
    expect(await cached.authenticate(alice.extension, 'Alice-new-secret')).toMatchObject({ username: '201' })
    expect(cached.findByUsername(bob.extension)?.disabled).toBe(true)
    expect(cached.findByUsername(orphan.extension)).toBeNull()
    expect(await cached.authenticate('206', 'Peer-206-secret')).toMatchObject({ username: '206', id: 1 })
  })

  test('a file replaced by a rename is reopened', async () => {
    const next = join(dir, 'mikopbx.db.new')
    buildMikoPbxFixture(next)
    const writer = new Database(next)
    writer.query(PBX_CHANGES.setSecret).run(alice.extension, 'After-upgrade')
    writer.close()
    renameSync(next, path)
    file.check()
    expect(await cached.authenticate(alice.extension, alice.secret)).toBeNull()
    expect(await cached.authenticate(alice.extension, 'After-upgrade')).toMatchObject({ username: '201' })
  })

  test('a replaced file is noticed by a login 100 ms later even without a check from the watch', async () => {
    const next = join(dir, 'mikopbx.db.new')
    buildMikoPbxFixture(next)
    const writer = new Database(next)
    writer.query(PBX_CHANGES.disable).run(alice.extension)
    writer.close()
    expect(cached.findByUsername(alice.extension)?.disabled).toBe(false)
    renameSync(next, path)
    clock.advance(0.1)
    expect(await cached.authenticate(alice.extension, alice.secret)).toBeNull()
    expect(cached.findByUsername(alice.extension)?.disabled).toBe(true)
  })

  test('a missing file: logins are an outage, known users keep their last state; restored, it is read again', async () => {
    expect(cached.findByUsername(alice.extension)?.disabled).toBe(false)
    const aside = join(dir, 'aside.db')
    renameSync(path, aside)
    file.check()
    const error = await cached.authenticate(alice.extension, alice.secret).catch((caught: unknown) => caught)
    expect(storeOutageOf(error)).toBe('unavailable')
    expect(cached.findByUsername(alice.extension)?.disabled).toBe(false)
    expect(() => cached.findByUsername(bob.extension)).toThrow()
    renameSync(aside, path)
    file.check()
    expect(await cached.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
    expect(cached.findByUsername(bob.extension)?.displayName).toBe('Bob Jones')
  })

  test('a file replaced by something that is no database: an outage, not a crash, until a real one is back', async () => {
    const garbage = join(dir, 'garbage')
    writeFileSync(garbage, 'not a database, just text that an interrupted copy left behind'.repeat(100))
    renameSync(path, join(dir, 'good.db'))
    renameSync(garbage, path)
    file.check()
    const error = await cached.authenticate(alice.extension, alice.secret).catch((caught: unknown) => caught)
    expect(storeOutageOf(error)).toBe('unavailable')
    renameSync(join(dir, 'good.db'), path)
    expect(await cached.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
  })

  test('locked by a writer: a busy outage within the short busy timeout; known users keep their last state', async () => {
    expect(cached.findByUsername(alice.extension)?.disabled).toBe(false)
    const writer = new Database(path)
    writer.run('BEGIN EXCLUSIVE')
    writer.query(PBX_CHANGES.disable).run(alice.extension)
    cached.invalidate()
    try {
      const error = await cached.authenticate(alice.extension, alice.secret).catch((caught: unknown) => caught)
      expect(storeOutageOf(error)).toBe('busy')
      expect(cached.findByUsername(alice.extension)?.disabled).toBe(false)
      file.check()
    } finally {
      writer.run('COMMIT')
      writer.close()
    }
    file.check()
    expect(cached.findByUsername(alice.extension)?.disabled).toBe(false)
    clock.advance(1)
    file.check()
    expect(cached.findByUsername(alice.extension)?.disabled).toBe(true)
  })

  test('a login peer is remembered until the file changes, then looked up again', async () => {
    expect(await pbx.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
    pbxWrite(PBX_CHANGES.setSecret, alice.extension, 'Alice-new-secret')
    // Not read again until the watch reports the commit (within a second, store/change-watch.ts).
    expect(await pbx.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
    file.check()
    expect(await pbx.authenticate(alice.extension, alice.secret)).toBeNull()
    expect(await pbx.authenticate(alice.extension, 'Alice-new-secret')).toMatchObject({ username: '201' })
  })

  test('a remembered login peer fails as a read would: the file missing, or its lock met by a check', async () => {
    expect(await pbx.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
    renameSync(path, join(dir, 'aside.db'))
    // The path is looked at once per 100 ms; the watch would have reported the rename meanwhile.
    clock.advance(0.099)
    expect(await pbx.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
    clock.advance(0.001)
    expect(storeOutageOf(await pbx.authenticate(alice.extension, alice.secret).catch((caught: unknown) => caught))).toBe('unavailable')
    renameSync(join(dir, 'aside.db'), path)
    clock.advance(0.1)
    expect(await pbx.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })

    const writer = new Database(path)
    writer.run('BEGIN EXCLUSIVE')
    writer.query(PBX_CHANGES.setSecret).run(bob.extension, 'x')
    try {
      file.check()
      expect(storeOutageOf(await pbx.authenticate(alice.extension, alice.secret).catch((caught: unknown) => caught))).toBe('busy')
    } finally {
      writer.run('ROLLBACK')
      writer.close()
    }
    clock.advance(1)
    expect(await pbx.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
  })

  test('after meeting the lock, reads fail at once for a second without touching the file, so the server waits once', async () => {
    const writer = new Database(path)
    writer.run('BEGIN EXCLUSIVE')
    writer.query(PBX_CHANGES.setSecret).run(bob.extension, 'x')
    let first: unknown
    try {
      first = await pbx.authenticate(alice.extension, alice.secret).catch((caught: unknown) => caught)
    } finally {
      writer.run('ROLLBACK')
      writer.close()
    }
    expect(storeOutageOf(first)).toBe('busy')
    // The lock is gone, but the clock has not moved: still refused, so the file was not read.
    const second = await pbx.authenticate(alice.extension, alice.secret).catch((caught: unknown) => caught)
    expect(storeOutageOf(second)).toBe('busy')
    clock.advance(1)
    expect(await pbx.authenticate(alice.extension, alice.secret)).toMatchObject({ username: '201' })
  })
})

describe('over HTTP', () => {
  let harness: Harness
  beforeEach(async () => {
    harness = await createHarness({ userDirectory: cached })
  })
  afterEach(() => harness.close())

  const login = (username: string, password: string, ip = '198.51.100.1') =>
    harness.json(`${BASE}/auth/login`, { username, password }, { headers: { 'x-real-ip': ip } })

  test('login and profile show the PBX extension and its caller id', async () => {
    const { access_token } = await harness.login(alice.extension, alice.secret)
    const response = await harness.request(`${BASE}/profile`, { headers: bearer(access_token) })
    expect(await response.json()).toEqual({ success: true, user: { id: alice.userId, username: '201', role: 'user', display_name: 'Alice Smith' } })
  })

  test('a storm of wrong secrets from one address gets exactly its free failures checked: no slot, nothing interleaves', async () => {
    // The harness allows 5 free failures per account and address (test/helpers.ts); the 6th starts
    // the delay. MikoPBX logins take no password-check slot, yet no attempt slips past the count.
    const results = await Promise.all(Array.from({ length: 120 }, (_, i) => login(alice.extension, `wrong-${i}`)))
    const statuses = results.map((response) => response.status)
    expect(statuses.filter((status) => status === 401).length).toBe(6)
    expect(statuses.filter((status) => status === 429).length).toBe(114)
    expect((await login(alice.extension, alice.secret)).status).toBe(429)
    expect((await login(bob.extension, bob.secret, '198.51.100.2')).status).toBe(200)
  })

  test('every refused login above gets a byte-identical 401 over HTTP', async () => {
    const bodies = new Set<string>()
    for (const [index, [, username, password]] of refused.entries()) {
      const response = await login(username, password, `198.51.100.${index + 10}`)
      expect(response.status).toBe(401)
      bodies.add(await response.text())
    }
    expect(bodies.size).toBe(1)
  })

  test('the PBX writer holding the lock: login 503 with Retry-After, existing tokens still served', async () => {
    const { access_token } = await harness.login(alice.extension, alice.secret)
    const writer = new Database(path)
    writer.run('BEGIN EXCLUSIVE')
    writer.query(PBX_CHANGES.setSecret).run(bob.extension, 'x')
    cached.invalidate()
    try {
      const response = await login(bob.extension, bob.secret)
      expect(response.status).toBe(503)
      expect(response.headers.get('retry-after')).toBe('1')
      expect(await response.json()).toMatchObject({ code: 'store_busy' })
      expect((await harness.request(`${BASE}/profile`, { headers: bearer(access_token) })).status).toBe(200)
    } finally {
      writer.run('ROLLBACK')
      writer.close()
    }
    clock.advance(1)
    expect((await login(bob.extension, bob.secret)).status).toBe(200)
  })

  test('a token stops working once its peer is disabled on the PBX', async () => {
    const { access_token } = await harness.login(bob.extension, bob.secret)
    pbxWrite(PBX_CHANGES.disable, bob.extension)
    file.check()
    expect((await harness.request(`${BASE}/profile`, { headers: bearer(access_token) })).status).toBe(401)
  })
})

describe('config check', () => {
  const configFor = (flags: Record<string, string>) =>
    loadConfig({ flags: { data_dir: dir, ...flags }, env: { CONFIGURATION_DIRECTORY: dir } })

  test('names the directory and the file it reads, checked as serve checks it', () => {
    expect(checkConfig(configFor({}))).toContain(`\ndirectory: embedded ${dir}/softphone.db\n`)
    expect(checkConfig(configFor({ directory: 'mikopbx', mikopbx_db: path }))).toContain(`\ndirectory: mikopbx ${path} (read-only) ok\n`)
    expect(() => checkConfig(configFor({ directory: 'mikopbx', mikopbx_db: join(dir, 'absent.db') }))).toThrow(ConfigError)
  })
})
