/**
 * The state of several nodes in Redis (store = "redis", README "Several nodes"): one link, the
 * session records and revocation feed over it, the throttle counters, the presence bus and the
 * producer lock. Everything registers its reconnect hooks before start() connects.
 */
import type { Clock } from '../../clock'
import type { Channel } from '../../presence/channel'
import { ProducerLock } from '../../presence/producer-lock'
import { RedisBus } from '../../presence/redis-bus'
import { RedisSessionRecords } from '../../sessions/redis-session-records'
import { RedisLoginThrottle } from '../../throttle/redis-login-throttle'
import type { ThrottleSettings } from '../../throttle/throttle-rule'
import { RedisRevocations } from '../../tokens/redis-revocations'
import { Revocations } from '../../tokens/revocations'
import type { Leadership, StateStore, StoreHealth } from '../state-store'
import { RedisLink } from './redis-link'
import type { RedisTarget } from './redis-url'

export interface RedisStoreSettings {
  target: RedisTarget
  /** redis_stale_seconds. */
  staleSeconds: number
  throttle: ThrottleSettings
}

export class RedisStateStore implements StateStore {
  readonly kind = 'redis'
  readonly link: RedisLink
  readonly revocations: Revocations
  readonly sessions: RedisSessionRecords
  readonly throttle: RedisLoginThrottle
  private readonly feed: RedisRevocations
  private readonly locks: ProducerLock[] = []

  constructor(
    settings: RedisStoreSettings,
    private readonly clock: Clock,
    private readonly log: (line: string) => void,
  ) {
    this.link = new RedisLink({ ...settings.target, clock, log })
    this.revocations = new Revocations(clock)
    this.feed = new RedisRevocations({ link: this.link, mirror: this.revocations, clock, staleSeconds: settings.staleSeconds, log })
    this.sessions = new RedisSessionRecords(this.link, this.feed)
    this.throttle = new RedisLoginThrottle(this.link, clock, settings.throttle)
  }

  health(): StoreHealth {
    return this.link.state === 'up' ? 'ok' : 'degraded'
  }

  bus(channels: readonly Channel[]): RedisBus {
    return new RedisBus({ link: this.link, clock: this.clock, channels, log: this.log })
  }

  leadership(name: string): Leadership {
    const lock = new ProducerLock({ link: this.link, name, log: this.log })
    this.locks.push(lock)
    return lock
  }

  start(): void {
    this.link.start()
  }

  async purgeExpired(now: number): Promise<void> {
    this.revocations.purgeExpired()
    await this.feed.purgeExpired(now)
    await this.sessions.purgeExpired(now)
    await this.throttle.purgeExpired()
  }

  /** Hands back a held producer lock first, so another node takes over at once. */
  async close(): Promise<void> {
    await Promise.all(this.locks.map((lock) => lock.close()))
    this.link.close()
  }
}
