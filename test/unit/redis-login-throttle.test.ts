import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { StoreUnavailableError } from '../../src/store/outage'
import type { RedisLink } from '../../src/store/redis/redis-link'
import { RedisLoginThrottle } from '../../src/throttle/redis-login-throttle'
import { accountKey, afterFailure, FORGET_AFTER_SECONDS, ipKey, type FailureCount, type ThrottleDecision, type ThrottleSettings } from '../../src/throttle/throttle-rule'
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

/** One attempt that must be admitted, then fails. */
async function failure(throttle: RedisLoginThrottle, username = '201', ip = IP): Promise<void> {
  expect(await throttle.begin(username, ip)).toEqual({ allowed: true })
  await throttle.finish(username, ip, 'failure')
}

describe('RedisLoginThrottle', () => {
  test('a sequence of attempts gives the admissions, counts and delays of the rule, over time', async () => {
    let account: FailureCount | null = null
    let address: FailureCount | null = null
    // Steps in seconds between attempts: a burst, waits inside delays, a gap past the forget window, a cap.
    const steps = [0, 0, 0, 0, 0, 1, 2, 1, 4, 0, FORGET_AFTER_SECONDS, 0, 0, 0, 0, 0, 0, 0, 0, 70, 0]
    for (const [index, step] of steps.entries()) {
      clock.advance(step)
      const until = Math.max(account?.blocked_until ?? 0, address?.blocked_until ?? 0)
      const expected: ThrottleDecision = until > clock.seconds ? { allowed: false, retryAfter: until - clock.seconds } : { allowed: true }
      const node = throttles[index % 3]!
      expect(await node.check('201', IP)).toEqual(expected)
      expect(await node.begin('201', IP)).toEqual(expected)
      if (!expected.allowed) continue
      await node.finish('201', IP, 'failure')
      account = afterFailure(account, SETTINGS.accountFreeFailures, SETTINGS.maxDelay, clock.seconds)
      address = afterFailure(address, SETTINGS.ipFreeFailures, SETTINGS.maxDelay, clock.seconds)
      expect(stored(accountKey('201', IP))).toEqual(account)
      expect(stored(ipKey(IP))).toEqual(address)
    }
    expect(account!.failures).toBeGreaterThan(SETTINGS.accountFreeFailures)
  })

  test('the counters expire an hour after the last failure, or when a longer delay ends', async () => {
    const long = new RedisLoginThrottle(links[0]!, clock, { ...SETTINGS, accountFreeFailures: 0, maxDelay: 86_400 })
    await failure(long)
    expect(Number(server.cli('TTL', `softphone:throttle:${ipKey(IP)}`))).toBe(FORGET_AFTER_SECONDS)
    // Seventeen failures within the hour, as if spaced by their delays: the next one's exceeds an hour.
    server.cli('HSET', `softphone:throttle:${accountKey('201', IP)}`, 'failures', '17', 'last_failure', String(clock.seconds), 'blocked_until', '0')
    await failure(long)
    expect(Number(server.cli('TTL', `softphone:throttle:${accountKey('201', IP)}`))).toBe(86_400)
  })

  test('60 parallel guesses spread over three nodes: only the free failures and the one that starts the delay are admitted', async () => {
    const admitted = await Promise.all(Array.from({ length: 60 }, (_, i) => throttles[i % 3]!.begin('201', IP)))
    expect(admitted.filter((decision) => decision.allowed)).toHaveLength(SETTINGS.accountFreeFailures + 1)
    await Promise.all(admitted.map((decision, i) => (decision.allowed ? throttles[i % 3]!.finish('201', IP, 'failure') : null)))
    expect(stored(accountKey('201', IP)).failures).toBe(SETTINGS.accountFreeFailures + 1)
    expect(server.cli('EXISTS', `softphone:throttle-in-flight:${accountKey('201', IP)}`)).toBe('0')
    for (const throttle of throttles) expect(await throttle.check('201', IP)).toEqual({ allowed: false, retryAfter: 1 })
  })

  test('attempts in flight that succeed cost nothing; one whose node died is forgotten after its TTL', async () => {
    const admitted = await Promise.all(throttles.map((throttle) => throttle.begin('201', IP)))
    expect(admitted.every((decision) => decision.allowed)).toBe(true)
    await Promise.all(throttles.map((throttle) => throttle.finish('201', IP, 'success')))
    expect(server.cli('EXISTS', `softphone:throttle:${ipKey(IP)}`)).toBe('0')
    for (let i = 0; i <= SETTINGS.accountFreeFailures; i++) expect((await throttles[0]!.begin('202', IP)).allowed).toBe(true)
    expect((await throttles[1]!.begin('202', IP)).allowed).toBe(false)
    expect(Number(server.cli('TTL', `softphone:throttle-in-flight:${accountKey('202', IP)}`))).toBe(120)
    server.cli('DEL', `softphone:throttle-in-flight:${accountKey('202', IP)}`, `softphone:throttle-in-flight:${ipKey(IP)}`)
    expect((await throttles[1]!.begin('202', IP)).allowed).toBe(true)
  })

  test('a success forgets only the account key; the address keeps its failures', async () => {
    for (let i = 0; i < 2; i++) await failure(throttles[i % 3]!, '201')
    for (let i = 0; i < 5; i++) await failure(throttles[i % 3]!, `30${i}`)
    expect(await throttles[0]!.delayedCount()).toBe(1)
    expect(await throttles[1]!.begin('201', IP)).toEqual({ allowed: false, retryAfter: 1 })
    clock.advance(1)
    expect(await throttles[1]!.begin('201', IP)).toEqual({ allowed: true })
    await throttles[1]!.finish('201', IP, 'success')
    expect(server.cli('EXISTS', `softphone:throttle:${accountKey('201', IP)}`)).toBe('0')
    expect(stored(ipKey(IP)).failures).toBe(7)
    expect(await throttles[2]!.check('201', '198.51.100.8')).toEqual({ allowed: true })
  })

  test('delayedCount counts keys delayed now; purge drops the members whose delay is over', async () => {
    for (let i = 0; i < 4; i++) await failure(throttles[0]!, '201')
    for (let i = 0; i < 4; i++) await failure(throttles[1]!, '202', '198.51.100.8')
    expect(await throttles[0]!.delayedCount()).toBe(2)
    expect(await throttles[0]!.purgeExpired()).toBe(0)
    clock.advance(1)
    expect(await throttles[2]!.delayedCount()).toBe(0)
    expect(await throttles[2]!.purgeExpired()).toBe(2)
    expect(server.cli('ZCARD', 'softphone:throttle-blocked')).toBe('0')
  })

  test('Redis down: every call rejects with StoreUnavailableError; back up, the counts are intact', async () => {
    for (let i = 0; i < 4; i++) await failure(throttles[0]!)
    await server.kill9()
    const throttle = throttles[0]!
    for (const call of [() => throttle.check('201', IP), () => throttle.begin('201', IP), () => throttle.finish('201', IP, 'failure'), () => throttle.delayedCount(), () => throttle.purgeExpired()]) {
      await expect(call()).rejects.toBeInstanceOf(StoreUnavailableError)
    }
    await server.start()
    await until(() => links.every((link) => link.state === 'up'), 'reconnect')
    expect(stored(accountKey('201', IP)).failures).toBe(4)
    expect(await throttle.check('201', IP)).toEqual({ allowed: false, retryAfter: 1 })
  })
})
