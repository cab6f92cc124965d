/**
 * `backup` and `restore` through the compiled binary (README "Backup and restore"), and the start
 * that refuses a database from a newer release (README "Upgrade").
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, ServerProcess } from './server-process'

setDefaultTimeout(30_000)

const PASSWORD = 'Pw-201-secret'
let source: ServerProcess
let scratch: string
let backupFile: string
let tokens: { access_token: string; refresh_token: string }

beforeAll(async () => {
  source = new ServerProcess()
  scratch = mkdtempSync(join(tmpdir(), 'softphone-backup-'))
  await source.addUser('201', PASSWORD)
  await source.addUser('202', 'Pw-202-secret', ['--role', 'admin'])
  await source.start()
  expect((await runCli(['secret', 'rotate', '--data-dir', source.dataDir])).exitCode).toBe(0)
  await source.login('202', 'Pw-202-secret')
  tokens = await source.login('201', PASSWORD)
  backupFile = join(scratch, 'softphone.backup')
})
afterAll(async () => {
  await source.cleanup()
  rmSync(scratch, { recursive: true, force: true })
})

const sessionsOf = async (dataDir: string, user: string) => (await runCli(['sessions', 'list', '--user', user, '--data-dir', dataDir])).stdout
const usersOf = async (dataDir: string) => (await runCli(['users', 'list', '--data-dir', dataDir])).stdout
/** A fresh data dir path that doesn't exist yet. */
let dirs = 0
const freshDir = () => join(scratch, `data-${++dirs}`)

describe('backup while serving, restore into a fresh data dir', () => {
  test('backup writes one owner-only file while the server keeps answering', async () => {
    const result = await runCli(['backup', backupFile, '--data-dir', source.dataDir])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toBe(`backup of ${join(source.dataDir, 'softphone.db')} and its keys written to ${backupFile}\n`)
    expect(statSync(backupFile).mode & 0o777).toBe(0o600)
    expect(readdirSync(scratch).filter((name) => name.endsWith('.tmp'))).toEqual([])
    expect((await fetch(`${source.baseUrl}/profile`, { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(200)
  })

  test('the restored server has the same users, sessions and keys: the tokens issued before still work', async () => {
    const dataDir = freshDir()
    const restored = await runCli(['restore', backupFile, '--data-dir', dataDir])
    expect(restored.exitCode).toBe(0)
    expect(restored.stdout).toContain(`restored ${backupFile} (taken `)
    for (const name of ['softphone.db', 'secret.key', 'secret.key.ring']) {
      expect(statSync(join(dataDir, name)).mode & 0o777).toBe(0o600)
      if (name !== 'softphone.db') expect(readFileSync(join(dataDir, name), 'utf8')).toBe(readFileSync(join(source.dataDir, name), 'utf8'))
    }
    expect(await usersOf(dataDir)).toBe(await usersOf(source.dataDir))
    for (const user of ['201', '202']) expect(await sessionsOf(dataDir, user)).toBe(await sessionsOf(source.dataDir, user))

    const copy = new ServerProcess(dataDir)
    try {
      await copy.start()
      const profile = await fetch(`${copy.baseUrl}/profile`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
      expect(profile.status).toBe(200)
      const refreshed = await fetch(`${copy.baseUrl}/auth/refresh`, { method: 'POST', headers: { authorization: `Bearer ${tokens.refresh_token}` } })
      expect(refreshed.status).toBe(200)
      expect((await copy.login('202', 'Pw-202-secret')).access_token).toBeString()
    } finally {
      await copy.cleanup()
    }
  })
})

describe('restore refuses', () => {
  test('a file that is not a backup, with exit 65, creating nothing', async () => {
    const text = join(scratch, 'notes.txt')
    writeFileSync(text, 'not a backup\n')
    const plainDb = join(scratch, 'plain.db')
    copyFileSync(join(source.dataDir, 'softphone.db'), plainDb)
    for (const [file, message] of [
      [text, `${text} is not a softphone-backend backup`],
      [plainDb, `${plainDb} is not a softphone-backend backup (no softphone_backup table`],
      [join(scratch, 'missing.backup'), 'missing.backup does not exist'],
    ] as const) {
      const dataDir = freshDir()
      const result = await runCli(['restore', file, '--data-dir', dataDir])
      expect({ file, exitCode: result.exitCode }).toEqual({ file, exitCode: 65 })
      expect(result.stderr).toContain(message)
      expect(existsSync(dataDir)).toBe(false)
    }
  })

  test('a backup from a newer schema version, with exit 76', async () => {
    const newer = join(scratch, 'newer.backup')
    copyFileSync(backupFile, newer)
    const db = new Database(newer)
    db.run('PRAGMA user_version = 999')
    db.close()
    const dataDir = freshDir()
    const result = await runCli(['restore', newer, '--data-dir', dataDir])
    expect(result.exitCode).toBe(76)
    expect(result.stderr).toContain(`backup ${newer} was written by a newer softphone-backend (schema version 999`)
    expect(result.stderr).toContain('nothing was changed')
    expect(existsSync(dataDir)).toBe(false)
  })

  test('while the server has the database open, with exit 75, and the server keeps serving', async () => {
    const before = readFileSync(join(source.dataDir, 'secret.key.ring'), 'utf8')
    const result = await runCli(['restore', backupFile, '--data-dir', source.dataDir])
    expect(result.exitCode).toBe(75)
    expect(result.stderr).toContain('is in use: stop the server')
    expect(readFileSync(join(source.dataDir, 'secret.key.ring'), 'utf8')).toBe(before)
    expect((await source.login('201', PASSWORD)).access_token).toBeString()
  })
})

describe('upgrade', () => {
  test('a database from a newer release stops the start with exit 74 and is left as it was', async () => {
    const dataDir = freshDir()
    expect((await runCli(['restore', backupFile, '--data-dir', dataDir])).exitCode).toBe(0)
    const db = new Database(join(dataDir, 'softphone.db'))
    db.run('PRAGMA user_version = 999')
    db.close()
    const result = await runCli(['serve', '--port', '0', '--data-dir', dataDir])
    expect(result.exitCode).toBe(74)
    expect(result.stderr).toContain('was written by a newer softphone-backend (schema version 999')
    expect(result.stderr).toContain('never downgrades')
    const after = new Database(join(dataDir, 'softphone.db'), { readonly: true })
    expect(after.query('PRAGMA user_version').get()).toEqual({ user_version: 999 })
    after.close()
  })
})
