/**
 * RedisLink (src/store/redis/redis-link.ts) against a real redis-server (test/redis-server.ts):
 * every spelling of redis_url, commands failing at once while Redis is killed, the order of
 * select, subscribe and up hooks after a restart, script replies, and log lines that name the
 * server once per outage and never its password. Retries run on a manual timer where their count
 * matters, so no test waits for a backoff to pass.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { RedisLink, RedisScript, type RedisLinkOptions, type RetryTimer } from '../../src/store/redis/redis-link'
import { isRedisUrlError, parseRedisUrl, type RedisTarget } from '../../src/store/redis/redis-url'
import { StoreUnavailableError } from '../../src/store/outage'
import { RedisServer } from '../redis-server'
import { ManualClock } from '../helpers'

const PASSWORD = 'Link-S3cret:p@ss/w%rd'
const ENCODED = encodeURIComponent(PASSWORD)

/** Retries only when the test fires them; remembers each delay asked for. */
class ManualRetryTimer implements RetryTimer {
  readonly delays: number[] = []
  private pending: (() => void) | null = null

  after(ms: number, run: () => void): void {
    this.delays.push(ms)
    this.pending = run
  }

  cancel(): void {
    this.pending = null
  }

  get armed(): boolean {
    return this.pending !== null
  }

  fire(): void {
    const run = this.pending
    this.pending = null
    run?.()
  }
}

/** Waits for an event of a real server or socket; fails the test with `what` after 10 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}

function target(url: string): RedisTarget {
  const parsed = parseRedisUrl(url)
  if (isRedisUrlError(parsed)) throw new Error(parsed.error)
  return parsed
}

const links: RedisLink[] = []
afterEach(() => {
  for (const link of links.splice(0)) link.close()
})

function linkTo(where: RedisTarget | Pick<RedisLinkOptions, 'url' | 'label'>, extra: Partial<RedisLinkOptions> = {}) {
  const lines: string[] = []
  const link = new RedisLink({ ...where, clock: new ManualClock(), log: (line) => lines.push(line), ...extra })
  links.push(link)
  return { link, lines }
}

async function connected(where: RedisTarget, extra: Partial<RedisLinkOptions> = {}) {
  const made = linkTo(where, extra)
  made.link.start()
  await until(() => made.link.state === 'up', `the link to ${where.label}`)
  return made
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('resolved')
}

describe('every form of redis_url reaches the server', () => {
  let plain: RedisServer
  let guarded: RedisServer
  beforeAll(async () => {
    ;[plain, guarded] = await Promise.all([RedisServer.start(), RedisServer.start({ password: PASSWORD })])
  })
  afterAll(async () => {
    await Promise.all([plain.stop(), guarded.stop()])
  })

  test('TCP: commands run once the link is up, and the connect line names the server', async () => {
    const { link, lines } = await connected(target(`redis://127.0.0.1:${plain.port}`))
    expect(await link.send('SET', ['softphone:test:tcp', 'one'])).toBe('OK')
    expect(plain.cli('GET', 'softphone:test:tcp')).toBe('one')
    expect(lines).toEqual([`redis: connected to redis://127.0.0.1:${plain.port}`])
    expect(link.downSince()).toBeNull()
  })

  test('TCP with a password: it reaches Redis, not the label or the log', async () => {
    const { link, lines } = await connected(target(`redis://:${ENCODED}@127.0.0.1:${guarded.port}`))
    expect(await link.send('SET', ['softphone:test:auth', 'yes'])).toBe('OK')
    expect(guarded.cli('GET', 'softphone:test:auth')).toBe('yes')
    expect(link.label).toBe(`redis://127.0.0.1:${guarded.port}`)
    expect(lines.join('\n')).not.toContain('S3cret')
  })

  test('a wrong password: the link stays down, one line without the password, commands refused', async () => {
    const timer = new ManualRetryTimer()
    const { link, lines } = linkTo(target(`redis://:${encodeURIComponent('Wrong-S3cret')}@127.0.0.1:${guarded.port}`), { retryTimer: timer })
    link.start()
    await until(() => timer.armed, 'the retry')
    expect(link.state).toBe('down')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toStartWith(`redis: cannot connect to redis://127.0.0.1:${guarded.port} (`)
    expect(lines[0]).not.toContain('S3cret')
    expect(await rejection(link.send('PING', []))).toBeInstanceOf(StoreUnavailableError)
  })

  test('a DB number: a key set through DB 3 is in DB 3, not in DB 0', async () => {
    const { link } = await connected(target(`redis://:${ENCODED}@127.0.0.1:${guarded.port}/3`))
    await link.send('SET', ['softphone:test:db', 'three'])
    expect(guarded.cli('-n', '3', 'GET', 'softphone:test:db')).toBe('three')
    expect(guarded.cli('-n', '0', 'EXISTS', 'softphone:test:db')).toBe('0')
  })

  test('a unix socket without a password', async () => {
    const { link, lines } = await connected(target(`redis+unix://${plain.socket}`))
    await link.send('SET', ['softphone:test:unix', 'sock'])
    expect(plain.cli('GET', 'softphone:test:unix')).toBe('sock')
    expect(lines).toEqual([`redis: connected to redis+unix://${plain.socket}`])
  })

  test('a unix socket with a password and a DB number, which Bun alone would ignore', async () => {
    const { link, lines } = await connected(target(`redis+unix://:${ENCODED}@${guarded.socket}?db=2`))
    await link.send('SET', ['softphone:test:unix-db', 'two'])
    expect(guarded.cli('-n', '2', 'GET', 'softphone:test:unix-db')).toBe('two')
    expect(guarded.cli('-n', '0', 'EXISTS', 'softphone:test:unix-db')).toBe('0')
    expect(link.label).toBe(`redis+unix://${guarded.socket}?db=2`)
    expect(lines.join('\n')).not.toContain('S3cret')
  })

  test('an ACL user with its password, over TCP and over the socket', async () => {
    expect(plain.cli('ACL', 'SETUSER', 'softphone', 'on', `>${PASSWORD}`, '~softphone:*', '&*', '+@all')).toBe('OK')
    for (const url of [`redis://softphone:${ENCODED}@127.0.0.1:${plain.port}/5`, `redis+unix://softphone:${ENCODED}@${plain.socket}?db=5`]) {
      const { link, lines } = await connected(target(url))
      expect(await link.send('INCR', ['softphone:test:acl'])).toBeGreaterThan(0)
      expect(await link.send('ACL', ['WHOAMI'])).toBe('softphone')
      expect(lines[0]).toContain('softphone@')
      expect(lines.join('\n')).not.toContain('S3cret')
    }
    expect(plain.cli('-n', '5', 'GET', 'softphone:test:acl')).toBe('2')
  })

  test('a URL Bun refuses does not throw: one line without the password, then retries', async () => {
    const timer = new ManualRetryTimer()
    // Unparsed on purpose: the constructor of Bun's client throws for it.
    const { link, lines } = linkTo({ url: `redis://:${ENCODED}@127.0.0.1:99999`, label: 'redis://127.0.0.1:99999' }, { retryTimer: timer })
    expect(() => link.start()).not.toThrow()
    await until(() => timer.armed, 'the retry')
    for (let attempt = 0; attempt < 3; attempt++) {
      timer.fire()
      await until(() => timer.armed, 'the next retry')
    }
    expect(link.state).toBe('down')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toStartWith('redis: cannot connect to redis://127.0.0.1:99999 (')
    expect(lines[0]).not.toContain('S3cret')
  })
})

describe('rediss:// (TLS)', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await RedisServer.start({ password: PASSWORD, tls: true })
  })
  afterAll(() => server.stop())

  test('with the server\'s certificate trusted: commands run over TLS, in the DB asked for', async () => {
    const where = target(`rediss://:${ENCODED}@127.0.0.1:${server.tlsPort}/4`)
    expect(where.tls).toBe(true)
    const { link, lines } = await connected(where, { tls: { ca: server.certificate } })
    await link.send('SET', ['softphone:test:tls', 'sealed'])
    expect(server.cli('-n', '4', 'GET', 'softphone:test:tls')).toBe('sealed')
    expect(lines).toEqual([`redis: connected to rediss://127.0.0.1:${server.tlsPort}/4`])
  })

  test('a certificate nobody vouches for is refused: the link stays down', async () => {
    const timer = new ManualRetryTimer()
    const { link, lines } = linkTo(target(`rediss://:${ENCODED}@127.0.0.1:${server.tlsPort}`), { retryTimer: timer })
    link.start()
    await until(() => timer.armed, 'the retry')
    expect(link.state).toBe('down')
    expect(lines).toHaveLength(1)
    expect(lines[0]).not.toContain('S3cret')
  })
})

describe('scripts', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await RedisServer.start()
  })
  afterAll(() => server.stop())

  test('an error reply from a script is an answer, not an outage', async () => {
    const { link } = await connected(target(server.url()))
    const error = await rejection(link.eval(new RedisScript("return redis.error_reply('session gone')"), [], []))
    expect(error).not.toBeInstanceOf(StoreUnavailableError)
    expect(error.message).toContain('session gone')
    expect(link.state).toBe('up')
  })

  test('start() twice opens one pair of connections', async () => {
    const { link } = linkTo(target(server.url()))
    link.start()
    link.start()
    await until(() => link.state === 'up', 'the connect')
    // The link's two connections and redis-cli's own, once those of earlier tests' closed links are gone.
    await until(() => server.cli('CLIENT', 'LIST').split('\n').length === 3, 'three clients')
  })

  test('a script Redis no longer knows (SCRIPT FLUSH) is sent again by its source', async () => {
    const { link } = await connected(target(server.url()))
    const increment = new RedisScript("return redis.call('INCR', KEYS[1])")
    expect(await link.eval(increment, ['softphone:test:counter'], [])).toBe(1)
    expect(server.cli('SCRIPT', 'FLUSH')).toBe('OK')
    expect(server.cli('SCRIPT', 'EXISTS', increment.sha)).toBe('0')
    expect(await link.eval(increment, ['softphone:test:counter'], [])).toBe(2)
    expect(server.cli('SCRIPT', 'EXISTS', increment.sha)).toBe('1')
  })
})

describe('Redis killed with kill -9 and started again', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await RedisServer.start({ password: PASSWORD })
  })
  afterAll(() => server.stop())

  test('commands fail at once with StoreUnavailableError; hooks run again before up; subscriptions deliver again; two log lines', async () => {
    const where = target(`redis://:${ENCODED}@127.0.0.1:${server.port}/1`)
    const { link, lines } = linkTo(where)
    const received: string[] = []
    link.subscribe('softphone:test:bus', (message) => received.push(message))
    const hookRuns: Array<{ state: string; subscribers: unknown; counter: unknown }> = []
    link.onUp(async () => {
      // Subscribed before the hooks run, and commands work for them while the link is not yet up.
      const subscribers = await link.send('PUBSUB', ['NUMSUB', 'softphone:test:bus'])
      hookRuns.push({ state: link.state, subscribers, counter: await link.send('INCR', ['softphone:test:hook-runs']) })
    })
    let downs = 0
    link.onDown(() => downs++)
    link.start()
    await until(() => link.state === 'up', 'the first connect')
    expect(hookRuns).toEqual([{ state: 'connecting', subscribers: ['softphone:test:bus', 1], counter: 1 }])
    server.cli('-n', '1', 'PUBLISH', 'softphone:test:bus', 'before')
    await until(() => received.length === 1, 'the first message')

    await server.kill9()
    await until(() => link.state === 'down', 'the loss')
    expect(downs).toBe(1)
    expect(link.downSince()).not.toBeNull()
    const error = await rejection(link.send('SET', ['softphone:test:while-down', 'x']))
    expect(error).toBeInstanceOf(StoreUnavailableError)
    expect(await rejection(link.eval(new RedisScript('return 1'), [], []))).toBeInstanceOf(StoreUnavailableError)

    await server.start()
    await until(() => link.state === 'up', 'the reconnect')
    // AOF everysec may lose the last second before the crash: the counter is 1 or 2, the hook ran twice.
    expect(hookRuns).toHaveLength(2)
    expect(hookRuns[1]).toMatchObject({ state: 'down', subscribers: ['softphone:test:bus', 1] })
    expect(link.downSince()).toBeNull()
    server.cli('-n', '1', 'PUBLISH', 'softphone:test:bus', 'after')
    await until(() => received.length === 2, 'the message after the restart')
    expect(received).toEqual(['before', 'after'])

    expect(lines).toHaveLength(3)
    expect(lines[0]).toBe(`redis: connected to redis://127.0.0.1:${server.port}/1`)
    expect(lines[1]).toStartWith(`redis: connection to redis://127.0.0.1:${server.port}/1 lost (`)
    expect(lines[2]).toBe(lines[0]!)
    expect(lines.join('\n')).not.toContain('S3cret')
  })

  test('a channel subscribed while up delivers at once and after a restart', async () => {
    const { link } = await connected(target(`redis://:${ENCODED}@127.0.0.1:${server.port}`))
    const received: string[] = []
    link.subscribe('softphone:test:late', (message) => received.push(message))
    await until(() => server.cli('PUBSUB', 'NUMSUB', 'softphone:test:late').endsWith('1'), 'the subscription')
    server.cli('PUBLISH', 'softphone:test:late', 'one')
    await until(() => received.length === 1, 'the message')
    await server.kill9()
    await until(() => link.state === 'down', 'the loss')
    await server.start()
    await until(() => link.state === 'up', 'the reconnect')
    server.cli('PUBLISH', 'softphone:test:late', 'two')
    await until(() => received.length === 2, 'the message after the restart')
    expect(received).toEqual(['one', 'two'])
  })

  test('a listener or a down hook that throws costs a log line, not the subscription or the reconnect', async () => {
    const { link, lines } = await connected(target(`redis://:${ENCODED}@127.0.0.1:${server.port}`))
    const received: string[] = []
    link.subscribe('softphone:test:fragile', (message) => {
      if (message === 'bad') throw new Error('unexpected message')
      received.push(message)
    })
    link.onDown(() => {
      throw new Error('down hook bug')
    })
    await until(() => server.cli('PUBSUB', 'NUMSUB', 'softphone:test:fragile').endsWith('1'), 'the subscription')
    server.cli('PUBLISH', 'softphone:test:fragile', 'bad')
    server.cli('PUBLISH', 'softphone:test:fragile', 'good')
    await until(() => received.length === 1, 'the good message')
    expect(lines).toContain('redis: a message on softphone:test:fragile was dropped: its listener failed (unexpected message)')
    await server.kill9()
    await until(() => link.state === 'down', 'the loss')
    expect(lines).toContain('redis: a down hook failed (down hook bug)')
    await server.start()
    await until(() => link.state === 'up', 'the reconnect')
  })

  test('a server that stops answering: the command fails with StoreUnavailableError after its deadline and the link goes down', async () => {
    const timer = new ManualRetryTimer()
    const { link, lines } = await connected(target(`redis://:${ENCODED}@127.0.0.1:${server.port}`), { retryTimer: timer, commandTimeoutMs: 100 })
    server.pause()
    try {
      const error = await rejection(link.send('SET', ['softphone:test:paused', 'x']))
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect(error.message).toBe('redis: no reply within 100 ms')
      expect(link.state).toBe('down')
      expect(timer.armed).toBe(true)
    } finally {
      server.resume()
    }
    timer.fire()
    await until(() => link.state === 'up', 'the reconnect')
    expect(lines.slice(1)).toEqual([
      `redis: connection to redis://127.0.0.1:${server.port} lost (redis: no reply within 100 ms); reconnecting`,
      `redis: connected to redis://127.0.0.1:${server.port}`,
    ])
  })

  test('a server that stops answering while nothing is sent: the heartbeat takes the link down, so the revocation copy goes stale', async () => {
    const timer = new ManualRetryTimer()
    const { link, lines } = await connected(target(`redis://:${ENCODED}@127.0.0.1:${server.port}`), { retryTimer: timer, commandTimeoutMs: 100, heartbeatMs: 50 })
    const received: string[] = []
    link.subscribe('softphone:test:heartbeat', (message) => received.push(message))
    server.pause()
    try {
      await until(() => link.state === 'down', 'the heartbeat to miss its reply')
      expect(link.downSince()).not.toBeNull()
      expect(lines.at(-1)).toBe(`redis: connection to redis://127.0.0.1:${server.port} lost (redis: no reply within 100 ms); reconnecting`)
    } finally {
      server.resume()
    }
    timer.fire()
    await until(() => link.state === 'up', 'the reconnect')
    server.cli('PUBLISH', 'softphone:test:heartbeat', 'after')
    await until(() => received.length === 1, 'a message on the new subscriber connection')
  })

  test('a hook that throws makes the link reconnect instead of coming up', async () => {
    const timer = new ManualRetryTimer()
    const { link } = linkTo(target(`redis://:${ENCODED}@127.0.0.1:${server.port}`), { retryTimer: timer })
    let failures = 1
    link.onUp(() => {
      if (failures-- > 0) throw new Error('reload failed')
    })
    link.start()
    await until(() => timer.armed, 'the retry')
    expect(link.state).toBe('down')
    timer.fire()
    await until(() => link.state === 'up', 'the second attempt')
  })
})

describe('retries, backoff and close', () => {
  /** Accepts connections and closes them at once, or leaves them silent: a Redis that is not there. */
  function fakeServer(behaviour: 'hang up' | 'silent') {
    const counts = { opened: 0, closed: 0 }
    const listener = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open(socket) {
          counts.opened++
          if (behaviour === 'hang up') socket.end()
        },
        close() {
          counts.closed++
        },
        data() {},
      },
    })
    return { counts, port: listener.port, stop: () => listener.stop(true) }
  }

  test('an outage logs one line however many attempts fail; backoff doubles from 100 ms up to 5 s', async () => {
    const fake = fakeServer('hang up')
    const timer = new ManualRetryTimer()
    const { link, lines } = linkTo(target(`redis://:${ENCODED}@127.0.0.1:${fake.port}`), { retryTimer: timer })
    link.start()
    for (let attempt = 0; attempt < 9; attempt++) {
      await until(() => timer.armed, `retry ${attempt}`)
      timer.fire()
    }
    await until(() => timer.armed, 'the last retry')
    fake.stop()
    expect(timer.delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000])
    expect(fake.counts.opened).toBeGreaterThanOrEqual(2)
    expect(lines).toEqual([expect.stringMatching(new RegExp(`^redis: cannot connect to redis://127\\.0\\.0\\.1:${fake.port} \\(.+\\); retrying$`))])
    expect(lines[0]).not.toContain('S3cret')
  })

  test('close() during a connect attempt closes its sockets and leaves no retry', async () => {
    const fake = fakeServer('silent')
    const timer = new ManualRetryTimer()
    const { link, lines } = linkTo(target(`redis://127.0.0.1:${fake.port}`), { retryTimer: timer })
    link.start()
    await until(() => fake.counts.opened === 2, 'both connections')
    link.close()
    await until(() => fake.counts.closed === 2, 'both connections closed')
    expect(link.state).toBe('closed')
    expect(timer.armed).toBe(false)
    expect(lines).toEqual([])
    expect(await rejection(link.send('PING', []))).toBeInstanceOf(StoreUnavailableError)
    fake.stop()
  })

  test('close() while the up hooks run: the link never comes up and nothing is retried', async () => {
    const server = await RedisServer.start()
    try {
      const timer = new ManualRetryTimer()
      const { link, lines } = linkTo(target(server.url()), { retryTimer: timer })
      let release = () => {}
      const hookStarted = Promise.withResolvers<void>()
      let firstHookDone = false
      let laterHookRan = false
      link.onUp(async () => {
        hookStarted.resolve()
        await new Promise<void>((resolve) => (release = resolve))
        firstHookDone = true
      })
      link.onUp(() => {
        laterHookRan = true
      })
      link.start()
      await hookStarted.promise
      link.close()
      release()
      await until(() => firstHookDone, 'the first hook')
      // One turn of the event loop: the link's loop would have called the next hook by then.
      await Bun.sleep(0)
      await until(() => server.cli('CLIENT', 'LIST').split('\n').length === 1, 'only redis-cli connected')
      expect(link.state).toBe('closed')
      expect(laterHookRan).toBe(false)
      expect(timer.armed).toBe(false)
      expect(lines).toEqual([])
    } finally {
      await server.stop()
    }
  })
})
