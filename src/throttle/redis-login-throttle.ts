/**
 * The login-throttle counters on Redis (README "Several nodes"), so that failures spread over
 * several nodes add up: admitting an attempt and counting its failure are one script each, which
 * apply the same rule as SQLite (throttle-rule.ts) inside Redis, atomically.
 *
 * Keys:
 * - `softphone:throttle:<key>`: a hash {failures, last_failure, blocked_until} per counter, `<key>`
 *   being `account:<ip>:<username>` or `ip:<ip>`; it expires once forgotten (an hour after its last
 *   failure, or when its delay ends if that is later).
 * - `softphone:throttle-in-flight:<key>`: attempts begun and not finished, forgotten 120 s after
 *   the last began (a node that died mid-attempt).
 * - `softphone:throttle-blocked`: a sorted set of counter keys scored by blocked_until, for the
 *   delayed-keys metric; the hourly purge drops the members whose delay is over.
 *
 * Times are the node's clock in unix seconds, passed into the scripts, never Redis's own.
 */
import { unixSeconds, type Clock } from '../clock'
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import { accountKey, FORGET_AFTER_SECONDS, ipKey, type AttemptOutcome, type LoginThrottle, type ThrottleDecision, type ThrottleSettings } from './throttle-rule'

const COUNTER_PREFIX = 'softphone:throttle:'
const IN_FLIGHT_PREFIX = 'softphone:throttle-in-flight:'
const BLOCKED_SET = 'softphone:throttle-blocked'
/**
 * An attempt in flight is forgotten this long after the last one began, should its node die
 * before finishing it: longer than any password check waits for its slot.
 */
const IN_FLIGHT_SECONDS = 120

/**
 * The rule of throttle-rule.ts in Lua. Every script gets KEYS = the account counter, the address
 * counter, their in-flight counts, the blocked set; ARGV = now, the account's and the address's
 * free failures, the max delay, forget after, and its own arguments after those.
 */
const RULE = `
local now, maxDelay, forget = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
local function afterFailure(failures, lastFailure, free)
  if failures == nil or now - lastFailure >= forget then failures = 1 else failures = failures + 1 end
  local excess = failures - free
  if excess > 0 then return failures, now + math.min(2 ^ (excess - 1), maxDelay) end
  return failures, 0
end
local function stored(key)
  local count = redis.call('HMGET', key, 'failures', 'last_failure', 'blocked_until')
  return tonumber(count[1]), tonumber(count[2]), tonumber(count[3]) or 0
end
`

/** Admits the attempt (1) or refuses it ({0, seconds}) counting the attempts in flight as failures. */
const BEGIN = new RedisScript(`${RULE}
local latest = 0
for i = 1, 2 do
  local failures, lastFailure, blockedUntil = stored(KEYS[i])
  for _ = 1, tonumber(redis.call('GET', KEYS[i + 2]) or '0') do
    failures, blockedUntil = afterFailure(failures, lastFailure, tonumber(ARGV[1 + i]))
    lastFailure = now
  end
  latest = math.max(latest, blockedUntil)
end
if latest > now then return {0, latest - now} end
for i = 3, 4 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6]))
end
return {1, 0}
`)

/** Ends an attempt; ARGV[6] is its outcome: a failure bumps both counters, a success forgets the account's. */
const FINISH = new RedisScript(`${RULE}
for i = 3, 4 do
  if redis.call('DECR', KEYS[i]) <= 0 then redis.call('DEL', KEYS[i]) end
end
if ARGV[6] == 'success' then
  redis.call('ZREM', KEYS[5], KEYS[1])
  redis.call('DEL', KEYS[1])
elseif ARGV[6] == 'failure' then
  for i = 1, 2 do
    local failures, lastFailure = stored(KEYS[i])
    local blockedUntil
    failures, blockedUntil = afterFailure(failures, lastFailure, tonumber(ARGV[1 + i]))
    redis.call('HSET', KEYS[i], 'failures', failures, 'last_failure', now, 'blocked_until', blockedUntil)
    redis.call('EXPIRE', KEYS[i], math.max(forget, blockedUntil - now))
    if blockedUntil > 0 then redis.call('ZADD', KEYS[5], blockedUntil, KEYS[i]) else redis.call('ZREM', KEYS[5], KEYS[i]) end
  end
end
return 1
`)

export class RedisLoginThrottle implements LoginThrottle {
  constructor(
    private readonly link: Pick<RedisLink, 'send' | 'eval'>,
    private readonly clock: Clock,
    private readonly settings: ThrottleSettings,
  ) {}

  async check(username: string, ip: string): Promise<ThrottleDecision> {
    const now = unixSeconds(this.clock)
    const [account, address] = await Promise.all([this.blockedUntil(accountKey(username, ip)), this.blockedUntil(ipKey(ip))])
    const until = Math.max(account, address)
    return until > now ? { allowed: false, retryAfter: until - now } : { allowed: true }
  }

  async begin(username: string, ip: string): Promise<ThrottleDecision> {
    const [admitted, retryAfter] = (await this.run(BEGIN, username, ip, String(IN_FLIGHT_SECONDS))) as [number, number]
    return admitted === 1 ? { allowed: true } : { allowed: false, retryAfter }
  }

  async finish(username: string, ip: string, outcome: AttemptOutcome): Promise<void> {
    await this.run(FINISH, username, ip, outcome)
  }

  async delayedCount(): Promise<number> {
    return Number(await this.link.send('ZCOUNT', [BLOCKED_SET, `(${unixSeconds(this.clock)}`, '+inf']))
  }

  /** The counters expire by themselves; what is left is the blocked set's members whose delay is over. */
  async purgeExpired(): Promise<number> {
    return Number(await this.link.send('ZREMRANGEBYSCORE', [BLOCKED_SET, '-inf', String(unixSeconds(this.clock))]))
  }

  private run(script: RedisScript, username: string, ip: string, extra: string): Promise<unknown> {
    const { accountFreeFailures, ipFreeFailures, maxDelay } = this.settings
    const account = accountKey(username, ip)
    const address = ipKey(ip)
    const keys = [counterKey(account), counterKey(address), IN_FLIGHT_PREFIX + account, IN_FLIGHT_PREFIX + address, BLOCKED_SET]
    const args = [unixSeconds(this.clock), accountFreeFailures, ipFreeFailures, maxDelay, FORGET_AFTER_SECONDS].map(String)
    return this.link.eval(script, keys, [...args, extra])
  }

  private async blockedUntil(key: string): Promise<number> {
    return Number((await this.link.send('HGET', [counterKey(key), 'blocked_until'])) ?? 0)
  }
}

const counterKey = (key: string) => `${COUNTER_PREFIX}${key}`
