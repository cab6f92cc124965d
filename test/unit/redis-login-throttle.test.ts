import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { StoreUnavailableError } from '../../src/store/outage'
import type { RedisLink } from '../../src/store/redis/redis-link'
import { RedisLoginThrottle } from '../../src/throttle/redis-login-throttle'
import { accountKey, afterFailure, FORGET_AFTER_SECONDS, ipKey, type FailureCount, type ThrottleSettings } from '../../src/throttle/throttle-rule'
import { ManualClock } from '../helpers'
import { openLink, until } from '../redis-nodes'
import { RedisServer } from '../redis-server'

const SETTINGS: ThrottleSettings = { accountFreeFailures: 3, ipFreeFailures: 6, maxDelay: 60 }
const IP = '198.51.100.7'

let server: RedisServer
let clock: ManualClock
let links: RedisLink[]
let throttles: RedisLoginThrottle[]

beforeAll(async () => {
  server = await RedisServer.start()
})
afterAll(async () => {
  await server.stop()
})
beforeEach(async () => {
  for (const link of links ?? []) link.close()
  server.cli('FLUSHALL')
  clock = new ManualClock()
  links = await Promise.all([0, 1, 2].map(() => openLink({ url: server.url(), clock })))
  throttles = links.map((link) => new RedisLoginThrottle(link, clock, SETTINGS))
})

/** The counter as stored in Redis. */
function stored(key: string): FailureCount {
  const [failures, last_failure, blocked_until] = server.cli('HMGET', `softphone:throttle:${key}`, 'failures', 'last_failure', 'blocked_until').split('\n').map(Number)
  return { failures: failures!, last_failure: last_failure!, blocked_until: blocked_until! }
}

describe('RedisLoginThrottle', () => {
  test('a sequence of failures gives the counts and delays of the rule, over time', async () => {
    const [throttle] = throttles
    let account: FailureCount | null = null
    let address: FailureCount | null = null
    // Steps in seconds between failures: a burst, waits inside delays, a gap past the forget window, a cap.
    const steps = [0, 0, 0, 0, 1, 2, 4, 0, FORGET_AFTER_SECONDS, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    for (const step of steps) {
      clock.advance(step)
      await throttle!.recordFailure('201', IP)
      account = afterFailure(account, SETTINGS.accountFreeFailures, SETTINGS.maxDelay, clock.seconds)
      address = afterFailure(address, SETTINGS.ipFreeFailures, SETTINGS.maxDelay, clock.seconds)
      expect(stored(accountKey('201', IP))).toEqual(account)
      expect(stored(ipKey(IP))).toEqual(address)
      const until = Math.max(account.blocked_until, address.blocked_until)
      const decision = await throttles[1]!.check('201', IP)
      expect(decision).toEqual(until > clock.seconds ? { allowed: false, retryAfter: until - clock.seconds } : { allowed: true })
    }
    expect(account!.blocked_until - clock.seconds).toBe(SETTINGS.maxDelay)
  })

  test('the counters expire an hour after the last failure, or when a longer delay ends', async () => {
    const long = new RedisLoginThrottle(links[0]!, clock, { ...SETTINGS, accountFreeFailures: 0, maxDelay: 86_400 })
    await long.recordFailure('201', IP)
    expect(Number(server.cli('TTL', `softphone:throttle:${ipKey(IP)}`))).toBe(FORGET_AFTER_SECONDS)
    for (let i = 0; i < 20; i++) await long.recordFailure('201', IP)
    expect(Number(server.cli('TTL', `softphone:throttle:${accountKey('201', IP)}`))).toBe(86_400)
  })

  test('60 concurrent failures spread over three nodes count exactly 60', async () => {
    await Promise.all(Array.from({ length: 60 }, (_, i) => throttles[i % 3]!.recordFailure('201', IP)))
    expect(stored(accountKey('201', IP)).failures).toBe(60)
    expect(stored(ipKey(IP)).failures).toBe(60)
    expect(stored(ipKey(IP)).blocked_until).toBe(clock.seconds + SETTINGS.maxDelay)
    for (const throttle of throttles) expect(await throttle.check('202', IP)).toEqual({ allowed: false, retryAfter: SETTINGS.maxDelay })
  })

  test('a success forgets only the account key; the address keeps its failures', async () => {
    for (let i = 0; i < 7; i++) await throttles[i % 3]!.recordFailure('201', IP)
    expect(await throttles[0]!.delayedCount()).toBe(2)
    await throttles[1]!.recordSuccess('201', IP)
    expect(server.cli('EXISTS', `softphone:throttle:${accountKey('201', IP)}`)).toBe('0')
    expect(stored(ipKey(IP)).failures).toBe(7)
    expect(await throttles[2]!.delayedCount()).toBe(1)
    expect(await throttles[2]!.check('201', IP)).toEqual({ allowed: false, retryAfter: 1 })
    expect(await throttles[2]!.check('201', '198.51.100.8')).toEqual({ allowed: true })
  })

  test('delayedCount counts keys delayed now; purge drops the members whose delay is over', async () => {
    for (let i = 0; i < 4; i++) await throttles[0]!.recordFailure('201', IP)
    for (let i = 0; i < 4; i++) await throttles[1]!.recordFailure('202', '198.51.100.8')
    expect(await throttles[0]!.delayedCount()).toBe(2)
    expect(await throttles[0]!.purgeExpired()).toBe(0)
    clock.advance(1)
    expect(await throttles[2]!.delayedCount()).toBe(0)
    expect(await throttles[2]!.purgeExpired()).toBe(2)
    expect(server.cli('ZCARD', 'softphone:throttle-blocked')).toBe('0')
  })

  test('Redis down: every call rejects with StoreUnavailableError; back up, the counts are intact', async () => {
    for (let i = 0; i < 4; i++) await throttles[0]!.recordFailure('201', IP)
    await server.kill9()
    const throttle = throttles[0]!
    for (const call of [() => throttle.check('201', IP), () => throttle.recordFailure('201', IP), () => throttle.recordSuccess('201', IP), () => throttle.delayedCount(), () => throttle.purgeExpired()]) {
      await expect(call()).rejects.toBeInstanceOf(StoreUnavailableError)
    }
    await server.start()
    await until(() => links.every((link) => link.state === 'up'), 'reconnect')
    expect(stored(accountKey('201', IP)).failures).toBe(4)
    expect(await throttle.check('201', IP)).toEqual({ allowed: false, retryAfter: 1 })
  })
})
