import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore, openStoreReadOnly, StoreError } from '../../src/store/database'
import { MIGRATIONS } from '../../src/store/migrations'
import { SqliteRevocations } from '../../src/tokens/sqlite-revocations'
import { randomId } from '../../src/tokens/tokens'
import { ManualClock } from '../helpers'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-store-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

describe('openStore', () => {
  test('creates an owner-only file in WAL mode with FULL sync, foreign keys and the latest schema', () => {
    const path = join(dir, 'softphone.db')
    const db = openStore(path)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(db.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' })
    expect(db.query('PRAGMA synchronous').get()).toEqual({ synchronous: 2 })
    expect(db.query('PRAGMA foreign_keys').get()).toEqual({ foreign_keys: 1 })
    expect(db.query('PRAGMA busy_timeout').get()).toEqual({ timeout: 5000 })
    expect(db.query('PRAGMA user_version').get()).toEqual({ user_version: MIGRATIONS.length })
    db.close()
  })

  test('processes opening a new file at once apply each migration once', async () => {
    const path = join(dir, 'softphone.db')
    const opener = `import { openStore } from ${JSON.stringify(join(import.meta.dir, '../../src/store/database'))}; openStore(${JSON.stringify(path)}).close()`
    const children = Array.from({ length: 6 }, () => Bun.spawn([process.execPath, '-e', opener], { stderr: 'pipe' }))
    const results = await Promise.all(children.map(async (child) => ({ code: await child.exited, stderr: await new Response(child.stderr).text() })))
    expect(results).toEqual(Array(6).fill({ code: 0, stderr: '' }))
    const db = openStore(path)
    expect(db.query('PRAGMA user_version').get()).toEqual({ user_version: MIGRATIONS.length })
    db.close()
  }, 30_000)

  test('reopening keeps data and does not re-run migrations', () => {
    const path = join(dir, 'softphone.db')
    const first = openStore(path)
    first.run("INSERT INTO revoked_tokens VALUES ('a', 1)")
    first.close()
    const second = openStore(path)
    expect(second.query('SELECT jti FROM revoked_tokens').all()).toEqual([{ jti: 'a' }])
    second.close()
  })

  test('a corrupt file stops with a clear error and is left untouched', () => {
    const path = join(dir, 'softphone.db')
    const garbage = 'this is not a database '.repeat(300)
    writeFileSync(path, garbage, { mode: 0o600 })
    expect(() => openStore(path)).toThrow(StoreError)
    expect(() => openStore(path)).toThrow(/unusable .*restore it from a backup/)
    expect(readFileSync(path, 'utf8')).toBe(garbage)
  })

  test('a schema from a newer build is refused, not downgraded', () => {
    const path = join(dir, 'softphone.db')
    const db = new Database(path)
    db.run(`PRAGMA user_version = ${MIGRATIONS.length + 5}`)
    db.close()
    const newer = `database ${path} was written by a newer softphone-backend (schema version ${MIGRATIONS.length + 5}, this build knows up to ${MIGRATIONS.length})`
    expect(() => openStore(path)).toThrow(newer)
    expect(() => openStore(path)).toThrow('never downgrades; it was left untouched')
    expect(() => openStoreReadOnly(path)).toThrow(newer)
    const after = new Database(path, { readonly: true })
    expect(after.query('PRAGMA user_version').get()).toEqual({ user_version: MIGRATIONS.length + 5 })
    expect(after.query("SELECT count(*) AS n FROM sqlite_master").get()).toEqual({ n: 0 })
    after.close()
  })

  test('an unopenable path stops with a clear error', () => {
    expect(() => openStore(join(dir, 'missing-dir', 'softphone.db'))).toThrow(StoreError)
  })
})

describe('Revocations', () => {
  test('survive a restart and expire with their tokens', () => {
    const clock = new ManualClock()
    const path = join(dir, 'softphone.db')
    const db = openStore(path)
    const revocations = new SqliteRevocations(db, clock)
    revocations.writeTokenIdRevocation('live', clock.seconds + 600)
    revocations.writeTokenIdRevocation('dead', clock.seconds + 10)
    revocations.writeLegacyCutoff('201', clock.seconds)
    db.close()

    const reopened = openStore(path)
    const loaded = new SqliteRevocations(reopened, clock)
    expect(loaded.isTokenIdRevoked('live')).toBe(true)
    expect(loaded.isTokenIdRevoked('dead')).toBe(true)
    expect(loaded.isTokenIdRevoked('other')).toBe(false)
    expect(loaded.isLegacyTokenRevoked('201', clock.seconds)).toBe(true)
    expect(loaded.isLegacyTokenRevoked('201', clock.seconds + 1)).toBe(false)
    expect(loaded.isLegacyTokenRevoked('202', clock.seconds)).toBe(false)

    clock.advance(11)
    expect(loaded.purgeExpired()).toBe(1)
    expect(loaded.isTokenIdRevoked('dead')).toBe(false)
    expect(loaded.isTokenIdRevoked('live')).toBe(true)
    expect(reopened.query('SELECT jti FROM revoked_tokens').all()).toEqual([{ jti: 'live' }])
    reopened.close()
  })

  test('purge removes many expired rows in batches', () => {
    const clock = new ManualClock()
    const db = openStore(join(dir, 'softphone.db'))
    const revocations = new SqliteRevocations(db, clock)
    db.transaction(() => {
      for (let i = 0; i < 1234; i++) revocations.writeTokenIdRevocation(`jti-${i}`, clock.seconds + 1)
    })()
    clock.advance(2)
    expect(revocations.purgeExpired()).toBe(1234)
    expect(db.query('SELECT count(*) AS n FROM revoked_tokens').get()).toEqual({ n: 0 })
    db.close()
  })

  test('after a restart with 50 000 revoked ids every one is refused, no other id is, and purge drops the expired from memory', async () => {
    const clock = new ManualClock()
    const path = join(dir, 'softphone.db')
    const db = openStore(path)
    const revocations = new SqliteRevocations(db, clock)
    const shortLived = [...Array.from({ length: 25_000 }, randomId), 'jti-short']
    const longLived = [...Array.from({ length: 25_000 }, randomId), 'jti-long']
    db.transaction(() => {
      for (const id of shortLived) revocations.writeTokenIdRevocation(id, clock.seconds + 60)
      for (const id of longLived) revocations.writeTokenIdRevocation(id, clock.seconds + 600)
    })()
    db.close()

    const reopened = openStore(path)
    const loaded = new SqliteRevocations(reopened, clock)
    expect(await loaded.idsLoaded).toMatchObject({ ids: 50_002 })
    const accepted = (ids: string[]) => ids.filter((id) => !loaded.isTokenIdRevoked(id))
    // Only memory is left to refuse them.
    reopened.run("DELETE FROM revoked_tokens WHERE jti LIKE 'A%'")
    expect(accepted([...shortLived, ...longLived])).toEqual([])
    const others = [...Array.from({ length: 10_000 }, randomId), 'jti-other', '']
    expect(accepted(others)).toEqual(others)

    clock.advance(60)
    loaded.purgeExpired()
    expect(accepted(shortLived)).toEqual(shortLived)
    expect(accepted(longLived)).toEqual([])
    reopened.close()
  })

  test('while ids load in steps every stored id is refused, from SQLite until it is in memory', async () => {
    const clock = new ManualClock()
    const db = openStore(join(dir, 'softphone.db'))
    const stored = Array.from({ length: 1_000 }, randomId)
    const insert = db.query<unknown, [string, number]>('INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)')
    db.transaction(() => stored.forEach((id, i) => insert.run(id, clock.seconds + (i % 2 ? 600 : 60))))()
    const steps: Array<() => void> = []
    const revocations = new SqliteRevocations(db, clock, { chunkRows: 100, schedule: (step) => steps.push(step) })
    const accepted = (ids: string[]) => ids.filter((id) => !revocations.isTokenIdRevoked(id))

    expect(accepted(stored)).toEqual([])
    steps.shift()!()
    const during = randomId()
    revocations.writeTokenIdRevocation(during, clock.seconds + 600)
    revocations.noteTokenIdRevoked(during, clock.seconds + 600)
    clock.advance(60)
    expect(revocations.purgeExpired()).toBe(500)
    const live = stored.filter((_, i) => i % 2)
    while (steps.length > 0) {
      expect(accepted([...live, during])).toEqual([])
      expect(accepted([randomId(), 'jti-other'])).toHaveLength(2)
      steps.shift()!()
    }
    await revocations.idsLoaded
    // Memory is purged once the load is done.
    expect(revocations.purgeExpired()).toBe(0)
    db.run('DELETE FROM revoked_tokens')
    expect(accepted([...live, during])).toEqual([])
    const expired = stored.filter((_, i) => i % 2 === 0)
    expect(accepted(expired)).toEqual(expired)
    db.close()
  })
})
