/**
 * `secret rotate` against the running compiled binary (README "Key rotation"): new logins carry the
 * new kid once the server re-read the ring, earlier tokens keep working, and `--revoke-all` ends
 * every session and every earlier key. Retirement after refresh_ttl needs a moved clock, so it is
 * tested in test/unit/key-ring.test.ts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { chmodSync, cpSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, ServerProcess } from './server-process'

setDefaultTimeout(30_000)

const PASSWORD = 'Pw-201-secret'
/** The server re-reads the ring on inotify and once a second; the rest is slack for a busy machine. */
const PICKUP_DEADLINE_MS = 3000
let server: ServerProcess

beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('201', PASSWORD)
  await server.addUser('202', 'Pw-202-secret')
  await server.start()
})
afterAll(() => server.cleanup())

const onServer = (...args: string[]) => [...args, '--data-dir', server.dataDir]
const kidOf = (token: string): string | undefined => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).kid
const profileStatus = async (token: string) =>
  (await fetch(`${server.baseUrl}/profile`, { headers: { authorization: `Bearer ${token}` } })).status
const refresh = (token: string) => fetch(`${server.baseUrl}/auth/refresh`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })

/** Logs in until the access token carries `kid`; returns the tokens, or throws after the deadline. */
async function loginWithKid(kid: string): Promise<{ access_token: string; refresh_token: string }> {
  const deadline = Date.now() + PICKUP_DEADLINE_MS
  for (;;) {
    const tokens = await server.login('201', PASSWORD)
    if (kidOf(tokens.access_token) === kid) return tokens
    if (Date.now() > deadline) throw new Error(`no login carried kid ${kid}`)
    await Bun.sleep(50)
  }
}

async function rotate(...extra: string[]): Promise<string> {
  const result = await runCli(onServer('secret', 'rotate', ...extra))
  expect(result.exitCode).toBe(0)
  return /new signing key ([A-Za-z0-9_-]{16}) /.exec(result.stdout)![1]!
}

describe('secret rotate while the server runs', () => {
  let before: { access_token: string; refresh_token: string }
  let kid: string

  test('new logins carry the new kid; tokens from before keep working', async () => {
    before = await server.login('201', PASSWORD)
    expect(kidOf(before.access_token)).toBeUndefined()
    kid = await rotate()
    const after = await loginWithKid(kid)
    expect(kidOf(after.refresh_token)).toBe(kid)
    expect(await profileStatus(after.access_token)).toBe(200)
    expect(await profileStatus(before.access_token)).toBe(200)
    const refreshed = await refresh(before.refresh_token)
    expect(refreshed.status).toBe(200)
    expect(kidOf((await refreshed.json()).access_token)).toBe(kid)
    expect(server.stdout).toContain(`signing with ${kid}`)
  })

  test('the ring is owner-only, next to the key; the key never reaches a log or the output', async () => {
    const ringPath = join(server.dataDir, 'secret.key.ring')
    expect(statSync(ringPath).mode & 0o777).toBe(0o600)
    const secrets = JSON.parse(readFileSync(ringPath, 'utf8')).keys.map((key: { secret: string }) => key.secret)
    const log = readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')
    expect(log).toContain(`"event":"KEY_ROTATED","reason":"new kid ${kid}; previous keys retire at `)
    for (const secret of [...secrets, readFileSync(join(server.dataDir, 'secret.key'), 'utf8').trim()]) {
      expect(`${log}${server.stdout}${server.stderr}`).not.toContain(secret)
    }
  })

  test('a second rotation: tokens of the first ring key and of the legacy key both still work', async () => {
    const first = await loginWithKid(kid)
    const second = await rotate()
    await loginWithKid(second)
    expect(await profileStatus(first.access_token)).toBe(200)
    expect(await profileStatus(before.access_token)).toBe(200)
  })

  test('--revoke-all ends every session and refuses every token signed before it', async () => {
    const old201 = await server.login('201', PASSWORD)
    const old202 = await server.login('202', 'Pw-202-secret')
    const result = await runCli(onServer('secret', 'rotate', '--revoke-all'))
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(/ended \d+ sessions\n$/)
    const newest = /new signing key ([A-Za-z0-9_-]{16}) /.exec(result.stdout)![1]!
    const fresh = await loginWithKid(newest)
    for (const token of [old201.access_token, old202.access_token, before.access_token]) expect(await profileStatus(token)).toBe(401)
    expect((await refresh(old202.refresh_token)).status).toBe(401)
    expect(await profileStatus(fresh.access_token)).toBe(200)
    const sessions = await runCli(onServer('sessions', 'list', '--user', '202'))
    expect(sessions.stdout).toBe('')
  })

  test('config check names the signing kid; a ring others can read stops config check and serve with 78', async () => {
    const ringPath = join(server.dataDir, 'secret.key.ring')
    const signing = JSON.parse(readFileSync(ringPath, 'utf8')).keys.at(-1).kid
    expect((await runCli(onServer('config', 'check'))).stdout).toContain(`key ring: ${ringPath} ok, signing with ${signing}\n`)
    const copy = new ServerProcess()
    try {
      cpSync(server.dataDir, copy.dataDir, { recursive: true })
      chmodSync(join(copy.dataDir, 'secret.key.ring'), 0o644)
      for (const command of ['config check', 'serve --port 0']) {
        const result = await runCli([...command.split(' '), '--data-dir', copy.dataDir])
        expect({ command, exitCode: result.exitCode }).toEqual({ command, exitCode: 78 })
        expect(result.stderr).toContain(`run: chmod 600 ${join(copy.dataDir, 'secret.key.ring')}`)
      }
    } finally {
      await copy.cleanup()
    }
  })

  test('usage errors change nothing', async () => {
    const ring = readFileSync(join(server.dataDir, 'secret.key.ring'), 'utf8')
    for (const args of [['secret'], ['secret', 'rotate', 'now'], ['secret', 'spin']]) {
      const result = await runCli(onServer(...args))
      expect(result.exitCode).toBe(64)
      expect(result.stderr).toContain('secret rotate [--revoke-all]')
    }
    expect(readFileSync(join(server.dataDir, 'secret.key.ring'), 'utf8')).toBe(ring)
  })
})
