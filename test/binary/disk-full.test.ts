/**
 * A full disk under the binary's data dir (a small tmpfs): every write route answers 503 with
 * Retry-After and changes nothing; once space returns the same requests succeed, and after a
 * kill -9 and restart every acknowledged revocation holds. Needs root to mount the tmpfs (CI runs
 * as root); skipped elsewhere.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ServerProcess } from './server-process'

const mountPoint = mkdtempSync(join(tmpdir(), 'softphone-tmpfs-'))
const mounted = Bun.spawnSync(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mountPoint]).exitCode === 0
const server = new ServerProcess(join(mountPoint, 'data'))
const filler = join(mountPoint, 'filler')

beforeAll(async () => {
  if (!mounted) return
  for (const user of ['201', '202', '203']) await server.addUser(user, `Pw-full-${user}`)
  await server.start()
})
afterAll(async () => {
  await server.stop('SIGKILL')
  if (mounted) Bun.spawnSync(['umount', mountPoint])
  rmSync(mountPoint, { recursive: true, force: true })
})

const call = (method: string, path: string, token?: string, body?: unknown) =>
  fetch(`${server.baseUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
const profileStatus = async (token: string) => (await call('GET', '/profile', token)).status
const sidOf = (token: string): string => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid

/** Writes until the file system refuses: whatever it had left is now taken. */
function fillDisk(): void {
  for (const size of [1 << 20, 1 << 12, 1]) {
    try {
      for (;;) writeFileSync(filler, Buffer.alloc(size), { flag: 'a' })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error
    }
  }
}

async function expectUnavailable(response: Response): Promise<void> {
  expect(response.status).toBe(503)
  expect(response.headers.get('retry-after')).toBe('5')
  expect(await response.json()).toMatchObject({ success: false, code: 'store_unavailable' })
}

test.skipIf(!mounted)('on a full disk writes answer 503 and lose nothing; retried later they hold across a restart', async () => {
  const alice = await server.login('201', 'Pw-full-201')
  const bob = await server.login('202', 'Pw-full-202')
  const bobPhone = await server.login('202', 'Pw-full-202')
  const carol = await server.login('203', 'Pw-full-203')

  fillDisk()
  await expectUnavailable(await call('POST', '/auth/logout', alice.access_token))
  await expectUnavailable(await call('POST', '/auth/logout-all', bob.access_token))
  await expectUnavailable(await call('DELETE', `/sessions/${sidOf(bobPhone.access_token)}`, bobPhone.access_token))
  await expectUnavailable(await call('POST', '/auth/refresh', carol.refresh_token))
  await expectUnavailable(await call('POST', '/auth/login', undefined, { username: '201', password: 'Pw-full-201' }))
  await expectUnavailable(await call('POST', '/auth/login', undefined, { username: '201', password: 'wrong' }))
  // Nothing was revoked in memory either: a retry can still succeed.
  expect(await profileStatus(alice.access_token)).toBe(200)
  expect(await profileStatus(bobPhone.access_token)).toBe(200)

  rmSync(filler)
  expect((await call('POST', '/auth/logout', alice.access_token)).status).toBe(200)
  expect((await call('POST', '/auth/logout-all', bob.access_token)).status).toBe(200)
  const rotated = await call('POST', '/auth/refresh', carol.refresh_token)
  expect(rotated.status).toBe(200)
  const carolNext = (await rotated.json()) as { access_token: string; refresh_token: string }

  await server.stop('SIGKILL')
  await server.start()
  expect(await profileStatus(alice.access_token)).toBe(401)
  expect((await call('POST', '/auth/refresh', alice.refresh_token)).status).toBe(401)
  for (const tokens of [bob, bobPhone]) {
    expect(await profileStatus(tokens.access_token)).toBe(401)
    expect((await call('POST', '/auth/refresh', tokens.refresh_token)).status).toBe(401)
  }
  expect(await profileStatus(carolNext.access_token)).toBe(200)
  expect(server.stderr).not.toContain('internal_error')

  const db = new Database(join(server.dataDir, 'softphone.db'), { readonly: true })
  expect(db.query('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' })
  db.close()
}, 60_000)
