/** `store migrate --to redis` against a real redis-server: what is copied, what is not, and twice. */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import type { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommandError, parseArgs, UsageError } from '../../src/cli/args'
import type { CommandContext } from '../../src/cli/store-command'
import { parseStoreCommand, STORE_OPTIONS } from '../../src/cli/store-migrate-command'
import type { Config } from '../../src/config/schema'
import type { SessionRow } from '../../src/sessions/session-records'
import { openStore } from '../../src/store/database'
import { FORGET_AFTER_SECONDS } from '../../src/throttle/throttle-rule'
import { SESSION_REVOCATION_MARGIN } from '../../src/tokens/revocations'
import { ManualClock } from '../helpers'
import { startNode } from '../redis-node'
import { RedisServer } from '../redis-server'
import { newSession, REFRESH_TTL, T0 } from '../session-records-cases'

let server: RedisServer
let dir: string
let db: Database
const clock = new ManualClock()

beforeAll(async () => {
  server = await RedisServer.start()
})

afterAll(async () => {
  await server.stop()
})

beforeEach(() => {
  server.cli('FLUSHALL')
  dir = mkdtempSync(join(tmpdir(), 'migrate-'))
  db = openStore(join(dir, 'softphone.db'))
})

afterEach(() => {
  db.close()
  rmSync(dir, { recursive: true, force: true })
})

function insertSession(row: SessionRow): void {
  const names = Object.keys(row)
  db.query(`INSERT INTO sessions (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})`).run(...(Object.values(row) as Array<string | number | null>))
}

const row = (session: ReturnType<typeof newSession>, revoked: { at: number; reason: string } | null = null): SessionRow => ({
  ...session,
  last_used_at: session.created_at + 5,
  revoked_at: revoked?.at ?? null,
  revoke_reason: revoked?.reason ?? null,
})

/** Live state and state past keeping, of every kind the command copies. */
function fillStore(): void {
  db.query('INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)').run('live-id', T0 + 900)
  db.query('INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?)').run('expired-id', T0)
  db.query('INSERT INTO legacy_not_before (username, not_before) VALUES (?, ?)').run('alice', T0 - 100)
  insertSession(row(newSession('live')))
  // Its refresh token expired, but an access token minted at its last refresh may still be presented.
  insertSession(row(newSession('revoked', 'bob', T0 - REFRESH_TTL - 10), { at: T0 - REFRESH_TTL, reason: 'logout' }))
  insertSession(row(newSession('forgotten', 'carol', T0 - REFRESH_TTL - SESSION_REVOCATION_MARGIN)))
  const failure = db.query('INSERT INTO login_failures (key, failures, last_failure, blocked_until) VALUES (?, ?, ?, ?)')
  failure.run('account:10.0.0.9:alice', 6, T0 - 60, T0 + 4)
  failure.run('ip:10.0.0.8', 2, T0 - FORGET_AFTER_SECONDS, 0)
}

const context = (config: Partial<Record<string, unknown>>): CommandContext => ({ db, clock, config: config as unknown as Config, audit: () => {} })

/** Runs the command as the CLI would; returns what it printed. */
async function migrate(config: Partial<Record<string, unknown>> = { redis_url: server.url() }): Promise<string> {
  const command = parseStoreCommand(parseArgs(['store', 'migrate', '--to', 'redis'], { options: STORE_OPTIONS, switches: [] }))
  const printed: string[] = []
  const log = console.log
  console.log = (line: string) => void printed.push(line)
  try {
    await command.run(context(config))
  } finally {
    console.log = log
  }
  return printed.join('\n')
}

/** Every softphone key with its content, for comparing two states of Redis. */
function snapshot(): string {
  const keys = server.cli('--scan', '--pattern', 'softphone:*').split('\n').filter(Boolean).sort()
  return keys
    .map((key) => {
      const type = server.cli('TYPE', key)
      const content =
        type === 'hash' ? server.cli('HGETALL', key).split('\n').sort()
        : type === 'zset' ? server.cli('ZRANGE', key, '0', '-1', 'WITHSCORES')
        : server.cli('SMEMBERS', key).split('\n').sort()
      return `${key} ${type} ${content}`
    })
    .join('\n')
}

describe('store migrate --to redis', () => {
  test('copies live revocations, sessions and throttle counters, and nothing past keeping', async () => {
    fillStore()
    expect(await migrate()).toBe(
      ['revoked token ids: 1 copied', 'legacy cut-offs: 1 copied', 'sessions: 2 copied, 0 revoked in redis', 'login-throttle counters: 1 copied'].join('\n'),
    )
    const node = await startNode(clock, server.url())
    try {
      expect(node.mirror.isTokenIdRevoked('live-id')).toBe(true)
      expect(node.mirror.isTokenIdRevoked('expired-id')).toBe(false)
      expect(node.mirror.isLegacyTokenRevoked('alice', T0 - 100)).toBe(true)
      expect(node.mirror.isSessionRevoked('revoked')).toBe(true)
      expect(await node.records.get('live')).toEqual(row(newSession('live')))
      expect(await node.records.get('revoked')).toMatchObject({ revoked_at: T0 - REFRESH_TTL, revoke_reason: 'logout' })
      expect(await node.records.get('forgotten')).toBeNull()
      expect(await node.records.countActive(T0)).toBe(1)
      expect((await node.records.activeForUser('alice', T0)).map((session) => session.id)).toEqual(['live'])
    } finally {
      node.link.close()
    }
    expect(server.cli('HGETALL', 'softphone:throttle:account:10.0.0.9:alice').split('\n')).toEqual(['failures', '6', 'last_failure', String(T0 - 60), 'blocked_until', String(T0 + 4)])
    // Forgotten an hour after the last failure, counted on the command's clock.
    const ttl = Number(server.cli('TTL', 'softphone:throttle:account:10.0.0.9:alice'))
    expect(ttl).toBeGreaterThan(FORGET_AFTER_SECONDS - 60 - 5)
    expect(ttl).toBeLessThanOrEqual(FORGET_AFTER_SECONDS - 60)
    expect(server.cli('EXISTS', 'softphone:throttle:ip:10.0.0.8')).toBe('0')
  })

  test('a second run changes nothing and copies nothing', async () => {
    fillStore()
    await migrate()
    const before = snapshot()
    expect(await migrate()).toBe(
      ['revoked token ids: 0 copied', 'legacy cut-offs: 0 copied', 'sessions: 0 copied, 0 revoked in redis', 'login-throttle counters: 0 copied'].join('\n'),
    )
    expect(snapshot()).toBe(before)
  })

  test('a session Redis has keeps its state, but a revocation made in SQLite since wins', async () => {
    fillStore()
    await migrate()
    db.query("UPDATE sessions SET revoked_at = ?, revoke_reason = 'admin', last_used_at = ? WHERE id = 'live'").run(T0 + 1, T0 + 1)
    expect(await migrate()).toContain('sessions: 0 copied, 1 revoked in redis')
    const node = await startNode(clock, server.url())
    try {
      expect(await node.records.get('live')).toMatchObject({ revoked_at: T0 + 1, revoke_reason: 'admin', last_used_at: T0 + 5 })
      expect(node.mirror.isSessionRevoked('live')).toBe(true)
      expect(await node.records.countActive(T0)).toBe(0)
    } finally {
      node.link.close()
    }
  })

  test('refuses without redis_url, and copies nothing', async () => {
    fillStore()
    await expect(migrate({})).rejects.toThrow(new CommandError('store migrate --to redis needs redis_url (config file, SOFTPHONE_REDIS_URL or --redis-url)'))
    expect(snapshot()).toBe('')
  })

  test('Redis unreachable: StoreUnavailableError (exit 75), without the password in the message', async () => {
    const closedPort = server.port === 1 ? 2 : 1
    const failure = migrate({ redis_url: `redis://:hunter2secret@127.0.0.1:${closedPort}` })
    await expect(failure).rejects.toMatchObject({ name: 'StoreUnavailableError' })
    const message = await failure.catch((error: Error) => error.message)
    expect(message).toContain('unreachable')
    expect(message).not.toContain('hunter2secret')
  })

  test('usage: migrate --to redis only', () => {
    for (const argv of [['store'], ['store', 'migrate'], ['store', 'migrate', '--to', 'sqlite'], ['store', 'copy', '--to', 'redis']]) {
      expect(() => parseStoreCommand(parseArgs(argv, { options: STORE_OPTIONS, switches: [] }))).toThrow(UsageError)
    }
    expect(parseStoreCommand(parseArgs(['store', 'migrate', '--to', 'redis'], { options: STORE_OPTIONS, switches: [] })).access).toBe('read')
  })
})
