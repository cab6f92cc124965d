/** Group commit (src/store/group-commit.ts) and the session ids that make its batches cheap. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sessionId } from '../../src/sessions/sessions'
import { openStore } from '../../src/store/database'
import { GroupCommit } from '../../src/store/group-commit'
import { ManualClock } from '../helpers'

let dir: string
let db: Database
let observer: Database
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-group-'))
  db = openStore(join(dir, 'softphone.db'))
  db.run('CREATE TABLE items (name TEXT PRIMARY KEY)')
  observer = new Database(join(dir, 'softphone.db'), { readonly: true })
})
afterEach(() => {
  observer.close()
  db.close()
  rmSync(dir, { recursive: true, force: true })
})

/** Another connection's data_version moves once per commit made by this one. */
const dataVersion = () => observer.query<{ data_version: number }, []>('PRAGMA data_version').get()!.data_version
const names = () => db.query<{ name: string }, []>('SELECT name FROM items ORDER BY name').all().map((row) => row.name)
const synchronous = () => db.query<{ synchronous: number }, []>('PRAGMA synchronous').get()!.synchronous

describe('group commit', () => {
  test('writes submitted in one turn commit in one transaction, and each caller resumes only after it', async () => {
    const group = new GroupCommit(db)
    const insert = db.query('INSERT INTO items (name) VALUES (?)')
    const before = dataVersion()
    const pending = ['a', 'b', 'c'].map((name) => group.submit(() => insert.run(name)))
    expect(names()).toEqual([])
    await Promise.all(pending)
    expect(names()).toEqual(['a', 'b', 'c'])
    expect(dataVersion()).toBe(before + 1)
    await group.submit(() => insert.run('d'))
    expect(dataVersion()).toBe(before + 2)
  })

  test('a failing write rolls the whole batch back and every caller gets the error', async () => {
    const group = new GroupCommit(db)
    const insert = db.query('INSERT INTO items (name) VALUES (?)')
    insert.run('taken')
    const results = await Promise.allSettled([
      group.submit(() => insert.run('first')),
      group.submit(() => insert.run('taken')),
      group.submit(() => insert.run('last')),
    ])
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected'])
    expect(names()).toEqual(['taken'])
    await group.submit(() => insert.run('retry'))
    expect(names()).toEqual(['retry', 'taken'])
  })

  test('"written" commits without waiting for the disk, and the connection goes back to FULL, even after a failure', async () => {
    const FULL = 2
    const group = new GroupCommit(db, 'written')
    let during = -1
    await group.submit(() => {
      during = synchronous()
    })
    expect(during).toBe(1)
    expect(synchronous()).toBe(FULL)
    await group.submit(() => {
      throw new Error('no')
    }).catch(() => {})
    expect(synchronous()).toBe(FULL)
  })
})

describe('session ids', () => {
  test('22 base64url characters, starting with the clock so that ids of one moment share a prefix', () => {
    const clock = new ManualClock()
    const first = sessionId(clock)
    const second = sessionId(clock)
    expect(first).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(first).not.toBe(second)
    expect(first.slice(0, 8)).toBe(second.slice(0, 8))
    expect(Buffer.from(first, 'base64url').readUIntBE(0, 6)).toBe(clock.now())
    clock.advance(3600)
    expect(Buffer.from(sessionId(clock), 'base64url').readUIntBE(0, 6)).toBe(clock.now())
  })
})
