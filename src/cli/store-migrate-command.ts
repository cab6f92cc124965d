/**
 * `softphone-backend store migrate --to redis` (README "Command line", "Several nodes"): copies
 * the live shared state out of the SQLite store into Redis, with the key layout the Redis store
 * uses: revoked token ids, legacy cut-offs, sessions (revoked ones while they are remembered) and
 * login-throttle counters. Entries Redis holds already are left as they are, except that a
 * revocation always wins, so running it twice changes nothing.
 *
 * Throttle keys (the layout of the Redis throttle, throttle/):
 *   softphone:throttle:<key>   hash {failures, last_failure, blocked_until}, expiring
 *                              FORGET_AFTER_SECONDS after last_failure
 */
import type { Database } from 'bun:sqlite'
import { unixSeconds } from '../clock'
import { importSessions } from '../sessions/redis-session-records'
import type { SessionRow } from '../sessions/session-records'
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import { FORGET_AFTER_SECONDS, type FailureCount } from '../throttle/throttle-rule'
import { importRevocations } from '../tokens/redis-revocations'
import { SESSION_REVOCATION_MARGIN } from '../tokens/revocations'
import { UsageError, type ParsedArgs } from './args'
import { connectOnce } from './redis-once'
import type { CommandContext, StoreCommand } from './store-command'

export const STORE_OPTIONS = ['to'] as const

export const STORE_HELP = `softphone-backend store migrate --to redis
  copies the live state (sessions, revocations, login-throttle counters) from the SQLite
  store into Redis at redis_url; entries already there are kept, so it can be run again.
  Run it before switching the nodes to store = "redis". Exit 75: Redis unreachable.`

/** Entries per script: each runs atomically in Redis, so a batch must stay short. */
const BATCH = 1000

export interface MigrationCounts {
  revokedIds: number
  legacyCutoffs: number
  sessions: number
  sessionsRevoked: number
  throttleKeys: number
}

/** Checks the whole command line before anything is opened: a usage error touches no file. */
export function parseStoreCommand(args: ParsedArgs): StoreCommand {
  if (args.positionals[1] !== 'migrate' || args.options.get('to') !== 'redis' || args.positionals.length > 2) throw new UsageError(STORE_HELP)
  return { access: 'read', run: migrateCommand }
}

async function migrateCommand(context: CommandContext): Promise<void> {
  // redis_url as configured; the store setting itself may still say sqlite while migrating.
  const link = await connectOnce(context.config, context.clock, 'store migrate --to redis')
  try {
    const counts = await migrateToRedis(context.db, link, unixSeconds(context.clock))
    console.log(describeCounts(counts))
  } finally {
    link.close()
  }
}

export async function migrateToRedis(db: Database, link: RedisLink, now: number): Promise<MigrationCounts> {
  const counts: MigrationCounts = { revokedIds: 0, legacyCutoffs: 0, sessions: 0, sessionsRevoked: 0, throttleKeys: 0 }
  const ids = db.query<{ jti: string; expires_at: number }, [number]>('SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > ? ORDER BY jti')
  for (const batch of batches(ids.iterate(now), BATCH)) {
    counts.revokedIds += (await importRevocations(link, batch.map((row) => [row.jti, row.expires_at] as const), [])).ids
  }
  const cutoffs = db.query<{ username: string; not_before: number }, []>('SELECT username, not_before FROM legacy_not_before ORDER BY username')
  for (const batch of batches(cutoffs.iterate(), BATCH)) {
    counts.legacyCutoffs += (await importRevocations(link, [], batch.map((row) => [row.username, row.not_before] as const))).cutoffs
  }
  // Live, and revoked ones while a token of theirs could still be presented (README "Sessions and refresh rotation").
  const sessions = db.query<SessionRow, [number]>('SELECT * FROM sessions WHERE current_exp > ? ORDER BY id')
  for (const batch of batches(sessions.iterate(now - SESSION_REVOCATION_MARGIN), BATCH)) {
    const { created, revoked } = await importSessions(link, batch, now)
    counts.sessions += created
    counts.sessionsRevoked += revoked
  }
  const failures = db.query<FailureCount & { key: string }, [number]>('SELECT * FROM login_failures WHERE last_failure > ? ORDER BY key')
  for (const batch of batches(failures.iterate(now - FORGET_AFTER_SECONDS), BATCH)) {
    counts.throttleKeys += await importThrottleCounts(link, batch, now)
  }
  return counts
}

/** ARGV: now, then key, failures, last_failure, blocked_until per counter. A key Redis has is newer: kept. */
const IMPORT_THROTTLE = new RedisScript(`
local now, written = tonumber(ARGV[1]), 0
for i = 2, #ARGV, 4 do
  local key = 'softphone:throttle:' .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'failures', ARGV[i + 1], 'last_failure', ARGV[i + 2], 'blocked_until', ARGV[i + 3])
    redis.call('EXPIRE', key, math.max(tonumber(ARGV[i + 2]) + ${FORGET_AFTER_SECONDS} - now, 1))
    written = written + 1
  end
end
return written
`)

async function importThrottleCounts(link: RedisLink, rows: Array<FailureCount & { key: string }>, now: number): Promise<number> {
  const args = rows.flatMap((row) => [row.key, row.failures, row.last_failure, row.blocked_until].map(String))
  return Number(await link.eval(IMPORT_THROTTLE, [], [String(now), ...args]))
}

function* batches<T>(rows: Iterable<T>, size: number): Generator<T[]> {
  let batch: T[] = []
  for (const row of rows) {
    batch.push(row)
    if (batch.length === size) {
      yield batch
      batch = []
    }
  }
  if (batch.length > 0) yield batch
}

function describeCounts(counts: MigrationCounts): string {
  return [
    `revoked token ids: ${counts.revokedIds} copied`,
    `legacy cut-offs: ${counts.legacyCutoffs} copied`,
    `sessions: ${counts.sessions} copied, ${counts.sessionsRevoked} revoked in redis`,
    `login-throttle counters: ${counts.throttleKeys} copied`,
  ].join('\n')
}
