import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CachedDirectory } from '../../src/directory/cached'
import { EmbeddedDirectory } from '../../src/directory/embedded'
import { watchDatabaseChanges, type ChangeWatch } from '../../src/store/change-watch'
import { openStore } from '../../src/store/database'
import { ManualClock } from '../helpers'

let dir: string
let path: string
let db: Database
let other: Database
let watcher: ChangeWatch | undefined
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-cache-'))
  path = join(dir, 'softphone.db')
  db = openStore(path)
  await new EmbeddedDirectory(db, new ManualClock()).add({ username: '201', password: 'pw-201-ab', displayName: 'A', role: 'user', mobile: '' })
  // A second connection stands in for the `users` CLI running in another process.
  other = openStore(path)
})
afterEach(() => {
  watcher?.close()
  other.close()
  db.close()
  rmSync(dir, { recursive: true, force: true })
})

async function eventually(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(5)
  }
}

describe('CachedDirectory with a change watch', () => {
  test('serves repeated lookups from memory until another connection commits', async () => {
    const embedded = new EmbeddedDirectory(db, new ManualClock())
    let queries = 0
    const findByUsername = embedded.findByUsername.bind(embedded)
    embedded.findByUsername = (name) => {
      queries++
      return findByUsername(name)
    }
    const cached = new CachedDirectory(embedded)
    let changes = 0
    watcher = watchDatabaseChanges(db, path, () => {
      changes++
      cached.invalidate()
    })
    for (let i = 0; i < 5; i++) expect(cached.findByUsername('201')?.disabled).toBe(false)
    expect(cached.findByUsername('nobody')).toBeNull()
    expect(cached.findByUsername('nobody')).toBeNull()
    expect(queries).toBe(2)

    other.run("UPDATE users SET disabled = 1 WHERE username = '201'")
    await eventually(() => changes === 1)
    expect(cached.findByUsername('201')?.disabled).toBe(true)
    expect(queries).toBe(3)
  })

  test('check() notices a commit at once, without waiting for the file watch or the timer', () => {
    let changes = 0
    watcher = watchDatabaseChanges(db, path, () => changes++)
    watcher.check()
    expect(changes).toBe(0)
    other.run("DELETE FROM users WHERE username = '201'")
    watcher.check()
    expect(changes).toBe(1)
  })

  test('writes on its own connection are not reported (they never go stale)', () => {
    let changes = 0
    watcher = watchDatabaseChanges(db, path, () => changes++)
    db.run("UPDATE users SET display_name = 'B'")
    watcher.check()
    expect(changes).toBe(0)
  })
})

describe('CachedDirectory when the store fails', () => {
  const user = { id: 7, username: '201', displayName: 'A', role: 'user' as const, mobile: '', disabled: false }
  const failing = (error: unknown) => ({
    fail: false,
    authenticate: async () => user,
    findById: () => null,
    findByUsername(): typeof user | null {
      if (this.fail) throw error
      return user
    },
  })

  test('a stale entry is served while the refresh meets an outage, and refreshed after', () => {
    const inner = failing(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }))
    const cached = new CachedDirectory(inner)
    expect(cached.findByUsername('201')).toEqual(user)
    cached.invalidate()
    inner.fail = true
    expect(cached.findByUsername('201')).toEqual(user)
    expect(() => cached.findByUsername('202')).toThrow('database is locked')
  })

  test('a user who just logged in is remembered for an outage right after', async () => {
    const inner = failing(Object.assign(new Error('gone'), { code: 'SQLITE_CANTOPEN' }))
    const cached = new CachedDirectory(inner)
    await cached.authenticate('201', 'pw')
    cached.invalidate()
    inner.fail = true
    expect(cached.findByUsername('201')).toEqual(user)
  })

  test('anything but an outage still fails the lookup', () => {
    const inner = failing(new TypeError('bug'))
    const cached = new CachedDirectory(inner)
    cached.findByUsername('201')
    cached.invalidate()
    inner.fail = true
    expect(() => cached.findByUsername('201')).toThrow('bug')
  })
})
