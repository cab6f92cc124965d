/**
 * The login-throttle counters on Redis (README "Several nodes"), so that failures spread over
 * several nodes add up: every failure bumps both counters in one script, which applies the same
 * rule as SQLite (`afterFailure` in throttle-rule.ts) inside Redis, atomically.
 *
 * Keys:
 * - `softphone:throttle:<key>`: a hash {failures, last_failure, blocked_until} per counter, `<key>`
 *   being `account:<ip>:<username>` or `ip:<ip>`; it expires once forgotten (an hour after its last
 *   failure, or when its delay ends if that is later).
 * - `softphone:throttle-blocked`: a sorted set of counter keys scored by blocked_until, for the
 *   delayed-keys metric; the hourly purge drops the members whose delay is over.
 *
 * Times are the node's clock in unix seconds, passed into the scripts, never Redis's own.
 */
import { unixSeconds, type Clock } from '../clock'
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import { accountKey, FORGET_AFTER_SECONDS, ipKey, type LoginThrottle, type ThrottleDecision, type ThrottleSettings } from './throttle-rule'

const COUNTER_PREFIX = 'softphone:throttle:'
const BLOCKED_SET = 'softphone:throttle-blocked'

/**
 * `afterFailure` for KEYS[1] (ARGV[2] free failures) and KEYS[2] (ARGV[3]); ARGV[1] = now,
 * ARGV[4] = max delay, ARGV[5] = forget after. KEYS[3] is the blocked set.
 */
const RECORD_FAILURE = new RedisScript(`
local now, maxDelay, forget = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
local function bump(key, free)
  local count = redis.call('HMGET', key, 'failures', 'last_failure')
  local failures = 1
  if count[1] and now - tonumber(count[2]) < forget then failures = tonumber(count[1]) + 1 end
  local excess = failures - free
  local blockedUntil = 0
  if excess > 0 then blockedUntil = now + math.min(2 ^ (excess - 1), maxDelay) end
  redis.call('HSET', key, 'failures', failures, 'last_failure', now, 'blocked_until', blockedUntil)
  redis.call('EXPIRE', key, math.max(forget, blockedUntil - now))
  if blockedUntil > 0 then redis.call('ZADD', KEYS[3], blockedUntil, key) else redis.call('ZREM', KEYS[3], key) end
end
bump(KEYS[1], tonumber(ARGV[2]))
bump(KEYS[2], tonumber(ARGV[3]))
return 1
`)

/** Forgets the counter KEYS[1] and its place in the blocked set KEYS[2]. */
const FORGET = new RedisScript(`
redis.call('ZREM', KEYS[2], KEYS[1])
return redis.call('DEL', KEYS[1])
`)

export class RedisLoginThrottle implements LoginThrottle {
  constructor(
    private readonly link: RedisLink,
    private readonly clock: Clock,
    private readonly settings: ThrottleSettings,
  ) {}

  async check(username: string, ip: string): Promise<ThrottleDecision> {
    const now = unixSeconds(this.clock)
    const [account, address] = await Promise.all([this.blockedUntil(accountKey(username, ip)), this.blockedUntil(ipKey(ip))])
    const until = Math.max(account, address)
    return until > now ? { allowed: false, retryAfter: until - now } : { allowed: true }
  }

  async recordFailure(username: string, ip: string): Promise<void> {
    const { accountFreeFailures, ipFreeFailures, maxDelay } = this.settings
    const keys = [counterKey(accountKey(username, ip)), counterKey(ipKey(ip)), BLOCKED_SET]
    const args = [unixSeconds(this.clock), accountFreeFailures, ipFreeFailures, maxDelay, FORGET_AFTER_SECONDS].map(String)
    await this.link.eval(RECORD_FAILURE, keys, args)
  }

  async recordSuccess(username: string, ip: string): Promise<void> {
    await this.link.eval(FORGET, [counterKey(accountKey(username, ip)), BLOCKED_SET], [])
  }

  async delayedCount(): Promise<number> {
    return Number(await this.link.send('ZCOUNT', [BLOCKED_SET, `(${unixSeconds(this.clock)}`, '+inf']))
  }

  /** The counters expire by themselves; what is left is the blocked set's members whose delay is over. */
  async purgeExpired(): Promise<number> {
    return Number(await this.link.send('ZREMRANGEBYSCORE', [BLOCKED_SET, '-inf', String(unixSeconds(this.clock))]))
  }

  private async blockedUntil(key: string): Promise<number> {
    return Number((await this.link.send('HGET', [counterKey(key), 'blocked_until'])) ?? 0)
  }
}

const counterKey = (key: string) => `${COUNTER_PREFIX}${key}`
