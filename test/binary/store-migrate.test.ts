/**
 * `store migrate --to redis` through the compiled binary (README "Command line"): usage, the
 * refusal without redis_url, and, once the configuration knows redis_url, a copy into a real
 * redis-server, a second run that copies nothing, and exit 75 with Redis gone.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisServer } from '../redis-server'
import { runCli } from './server-process'

// argon2id in `users add` on a busy machine.
setDefaultTimeout(30_000)

const FAR_FUTURE = 4_000_000_000
let dataDir: string

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'softphone-migrate-'))
  const added = await runCli(['users', 'add', '201', '--password-stdin', '--data-dir', dataDir], { stdin: 'Migrate-201-secret\n' })
  expect(added.exitCode).toBe(0)
  const db = new Database(join(dataDir, 'softphone.db'))
  db.query('INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)').run('revoked-by-logout', FAR_FUTURE)
  db.close()
})

afterAll(() => {
  rmSync(dataDir, { recursive: true, force: true })
})

const migrate = (...extra: string[]) => runCli(['store', 'migrate', '--to', 'redis', '--data-dir', dataDir, ...extra])

describe('store migrate --to redis', () => {
  test('anything but `migrate --to redis` is a usage error (64)', async () => {
    for (const args of [['store'], ['store', 'migrate'], ['store', 'migrate', '--to', 'sqlite']]) {
      expect((await runCli([...args, '--data-dir', dataDir])).exitCode).toBe(64)
    }
  })

  test('without redis_url it refuses (exit 1) and says what is missing', async () => {
    const result = await migrate()
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toContain('needs redis_url')
  })

  test('copies into Redis, copies nothing the second time, exits 75 with Redis gone', async () => {
    const redis = await RedisServer.start({ password: 'redis-secret' })
    try {
      const first = await migrate('--redis-url', redis.url())
      expect(first.exitCode).toBe(0)
      expect(first.stdout).toContain('revoked token ids: 1 copied')
      expect(redis.cli('ZSCORE', 'softphone:revoked-ids', 'revoked-by-logout')).toBe(String(FAR_FUTURE))
      const second = await migrate('--redis-url', redis.url())
      expect(second.exitCode).toBe(0)
      expect(second.stdout).toContain('revoked token ids: 0 copied')
      await redis.kill9()
      const gone = await migrate('--redis-url', redis.url())
      expect(gone.exitCode).toBe(75)
      expect(gone.stderr).toContain('unreachable')
      expect(gone.stderr).not.toContain('redis-secret')
    } finally {
      await redis.stop()
    }
  })
})
