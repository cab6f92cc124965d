/**
 * `redis_url` in its three spellings (src/store/redis/redis-url.ts): the URL handed to Bun's
 * RedisClient, the DB number RedisLink selects, and a label for logs. Bad input gets a reason that
 * never repeats the password. test/unit/redis-link.test.ts connects with these URLs for real.
 */
import { describe, expect, test } from 'bun:test'
import { isRedisUrlError, parseRedisUrl, type RedisTarget } from '../../src/store/redis/redis-url'

const PASSWORD = 'S3cret-p@ss:w/rd%'
const ENCODED = encodeURIComponent(PASSWORD)

function target(text: string): RedisTarget {
  const parsed = parseRedisUrl(text)
  if (isRedisUrlError(parsed)) throw new Error(`unexpected error: ${parsed.error}`)
  return parsed
}

function errorOf(text: string): string {
  const parsed = parseRedisUrl(text)
  if (!isRedisUrlError(parsed)) throw new Error(`accepted: ${parsed.label}`)
  return parsed.error
}

describe('redis:// and rediss://', () => {
  test('host alone: the default port, DB 0, no TLS', () => {
    expect(target('redis://10.0.0.5')).toEqual({ url: 'redis://10.0.0.5:6379', label: 'redis://10.0.0.5:6379', db: 0, tls: false })
  })

  test('port and DB number: the DB stays out of the URL for Bun and is selected by the link', () => {
    expect(target('redis://redis.example:6380/3')).toEqual({ url: 'redis://redis.example:6380', label: 'redis://redis.example:6380/3', db: 3, tls: false })
  })

  test('a percent-encoded password reaches the URL, not the label', () => {
    const parsed = target(`redis://:${ENCODED}@127.0.0.1:6379/2`)
    expect(parsed.url).toBe(`redis://:${ENCODED}@127.0.0.1:6379`)
    expect(parsed.label).toBe('redis://127.0.0.1:6379/2')
  })

  test('an ACL user name is shown in the label, its password is not', () => {
    const parsed = target(`redis://alice:${ENCODED}@127.0.0.1`)
    expect(parsed.url).toBe(`redis://alice:${ENCODED}@127.0.0.1:6379`)
    expect(parsed.label).toBe('redis://alice@127.0.0.1:6379')
  })

  test('rediss:// is TLS', () => {
    expect(target(`rediss://:${ENCODED}@redis.example:6390/1`)).toEqual({
      url: `rediss://:${ENCODED}@redis.example:6390`,
      label: 'rediss://redis.example:6390/1',
      db: 1,
      tls: true,
    })
  })

  test('an IPv6 address in brackets', () => {
    expect(target('redis://[::1]:6379').url).toBe('redis://[::1]:6379')
  })

  test('a trailing slash is DB 0', () => {
    expect(target('redis://127.0.0.1:6379/').db).toBe(0)
  })
})

describe('redis+unix://', () => {
  test('a socket path alone', () => {
    expect(target('redis+unix:///run/redis/redis.sock')).toEqual({
      url: 'redis+unix:///run/redis/redis.sock',
      label: 'redis+unix:///run/redis/redis.sock',
      db: 0,
      tls: false,
    })
  })

  test('with a password and a DB number: Bun gets the password after a host, the link selects the DB', () => {
    const parsed = target(`redis+unix://:${ENCODED}@/run/redis/redis.sock?db=2`)
    expect(parsed.url).toBe(`redis+unix://:${ENCODED}@localhost/run/redis/redis.sock`)
    expect(parsed.label).toBe('redis+unix:///run/redis/redis.sock?db=2')
    expect(parsed.db).toBe(2)
  })

  test('the localhost spelling Bun uses is accepted too', () => {
    expect(target('redis+unix://:pw@localhost/run/redis/redis.sock').url).toBe('redis+unix://:pw@localhost/run/redis/redis.sock')
  })
})

describe('bad input is refused with a reason that never repeats the password', () => {
  const cases: Array<[string, RegExp]> = [
    [`http://:${ENCODED}@127.0.0.1:6379`, /must start with redis:\/\/, rediss:\/\/ or redis\+unix:\/\//],
    [`unix://:${ENCODED}@/run/redis.sock`, /must start with/],
    [`valkey://:${ENCODED}@127.0.0.1`, /must start with/],
    ['127.0.0.1:6379', /must start with/],
    ['', /must start with/],
    [`redis://:${ENCODED}@127.0.0.1:65536`, /port must be a number from 1 to 65535/],
    [`redis://:${ENCODED}@127.0.0.1:0`, /port must be a number from 1 to 65535/],
    [`redis://:${ENCODED}@127.0.0.1:63x9`, /port must be a number from 1 to 65535/],
    [`redis://:${ENCODED}@127.0.0.1:6379/abc`, /DB number must be a non-negative integer/],
    [`redis://:${ENCODED}@127.0.0.1:6379/-1`, /DB number must be a non-negative integer/],
    [`redis://:${ENCODED}@127.0.0.1:6379/1/2`, /DB number must be a non-negative integer/],
    [`redis+unix://:${ENCODED}@/run/redis.sock?db=two`, /DB number must be a non-negative integer/],
    [`redis://:${ENCODED}@`, /must name a host/],
    [`redis://:${ENCODED}@/3`, /must name a host/],
    ['redis://', /must name a host/],
    [`redis://:${ENCODED}@127.0.0.1:6379?db=3`, /must not have a query/],
    [`redis+unix://:${ENCODED}@/run/redis.sock?timeout=3`, /takes no query parameter but db/],
    [`redis+unix://:${ENCODED}@`, /must look like redis\+unix:\/\/\/path/],
    [`redis+unix://:${ENCODED}@otherhost/run/redis.sock`, /must look like redis\+unix:\/\/\/path/],
    [`redis+unix://:${ENCODED}@/run/redis dir/redis.sock`, /socket path must be/],
    [`redis+unix://:${ENCODED}@/run/redis/`, /socket path must be/],
  ]
  for (const [text, reason] of cases) {
    test(JSON.stringify(text.replace(ENCODED, '<password>')), () => {
      const error = errorOf(text)
      expect(error).toMatch(reason)
      expect(error).not.toContain(PASSWORD)
      expect(error).not.toContain(ENCODED)
      expect(error).not.toContain('S3cret')
    })
  }

  test('an unencoded password with @ and / is refused without repeating it', () => {
    const error = errorOf('redis://:pa/ss@word@127.0.0.1:6379')
    expect(error).not.toContain('pa/ss')
    expect(error).not.toContain('word')
  })
})
