/**
 * Commands run by hand against the shared state (README "Command line", "Several nodes"): one
 * connection attempt, so an unreachable Redis is said at once (exit 75), with the server named
 * without its password.
 */
import type { Database } from 'bun:sqlite'
import type { Clock } from '../clock'
import type { Config } from '../config/schema'
import { StoreUnavailableError } from '../store/outage'
import { RedisLink } from '../store/redis/redis-link'
import { isRedisUrlError, parseRedisUrl } from '../store/redis/redis-url'
import { RedisSessionRecords } from '../sessions/redis-session-records'
import type { SessionRecords } from '../sessions/session-records'
import { sqliteSessionRecords } from '../sessions/sqlite-session-records'
import { RedisRevocations } from '../tokens/redis-revocations'
import { Revocations } from '../tokens/revocations'
import { CommandError } from './args'

export async function connectOnce(config: Config, clock: Clock, purpose: string): Promise<RedisLink> {
  if (!config.redis_url) throw new CommandError(`${purpose} needs redis_url (config file, SOFTPHONE_REDIS_URL or --redis-url)`)
  const target = parseRedisUrl(config.redis_url)
  if (isRedisUrlError(target)) throw new CommandError(`redis_url ${target.error}`)
  const link = new RedisLink({ ...target, clock, log: () => {} })
  link.start()
  while (link.state === 'connecting') await Bun.sleep(10)
  if (link.state === 'up') return link
  link.close()
  throw new StoreUnavailableError(`redis at ${target.label} is unreachable; nothing was changed`)
}

export interface OpenedSessionRecords {
  records: SessionRecords
  close(): void
}

/**
 * The session records of the configured store (README "Several nodes"): the SQLite file's, or
 * Redis's, where a revocation is announced to every running node at once.
 */
export async function openSessionRecords(config: Config, clock: Clock, db: Database): Promise<OpenedSessionRecords> {
  if (config.store === 'sqlite') return { records: sqliteSessionRecords(db, clock), close: () => {} }
  const link = await connectOnce(config, clock, 'sessions with store = "redis"')
  const feed = new RedisRevocations({ link, mirror: new Revocations(clock), clock, staleSeconds: config.redis_stale_seconds, log: () => {} })
  return { records: new RedisSessionRecords(link, feed), close: () => link.close() }
}
