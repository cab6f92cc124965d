import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { ProducerLock } from '../../src/presence/producer-lock'
import type { RedisLink } from '../../src/store/redis/redis-link'
import { ManualClock } from '../helpers'
import { NodeUser, openLink, until } from '../redis-nodes'
import { RedisServer } from '../redis-server'

const KEY = 'softphone:producer:pbx-1'
/** Short, so that a test sees a lock run out; renewed three times per TTL as in production. */
const TTL_MS = 600
const RENEW_MS = 200

interface Node {
  link: RedisLink
  lock: ProducerLock
  /** What onChange reported, in order. */
  changes: boolean[]
}

let server: RedisServer
let observer: RedisLink
let nodes: Node[] = []
const clock = new ManualClock()

beforeAll(async () => {
  server = await RedisServer.start()
  observer = await openLink({ url: server.url(), clock })
})
afterAll(async () => {
  observer.close()
  await server.stop()
})
beforeEach(() => {
  server.cli('FLUSHALL')
})
afterEach(async () => {
  for (const node of nodes) {
    await node.lock.close()
    node.link.close()
  }
  nodes = []
})

async function startNode(url = server.url(), ttlMs = TTL_MS): Promise<Node> {
  let lock: ProducerLock | undefined
  const changes: boolean[] = []
  const prepare = (link: RedisLink) => {
    lock = new ProducerLock({ link, name: 'pbx-1', ttlMs, renewMs: RENEW_MS, log: () => {} })
    lock.onChange((leader) => changes.push(leader))
  }
  const link = await openLink({ url, clock, prepare })
  lock!.start()
  const node = { link, lock: lock!, changes }
  nodes.push(node)
  return node
}

const leaders = () => nodes.filter((node) => node.lock.isLeader())

/** Resolves once the lock key's TTL was pushed back `count` times: renewals, seen from outside. */
async function renewals(count: number): Promise<void> {
  let seen = 0
  let last = Number(await observer.send('PTTL', [KEY]))
  while (seen < count) {
    await Bun.sleep(5)
    const ttl = Number(await observer.send('PTTL', [KEY]))
    if (ttl > last) seen++
    last = ttl
  }
}

describe('ProducerLock', () => {
  test('of three nodes exactly one produces, and it keeps the lock through renewals past its TTL', async () => {
    await Promise.all([startNode(), startNode(), startNode()])
    await until(() => leaders().length === 1, 'a leader')
    const [leader] = leaders()
    expect(await observer.send('GET', [KEY])).toBe(leader!.lock.instanceId)
    await renewals(2 * (TTL_MS / RENEW_MS))
    expect(leaders()).toEqual([leader!])
    for (const node of nodes) expect(node.changes).toEqual(node === leader ? [true] : [])
  })

  test('a leader that closes hands the lock back: another takes over without waiting for the TTL', async () => {
    const ttlMs = 60_000
    await Promise.all([startNode(undefined, ttlMs), startNode(undefined, ttlMs), startNode(undefined, ttlMs)])
    await until(() => leaders().length === 1, 'a leader')
    const [first] = leaders()
    await first!.lock.close()
    expect(first!.changes).toEqual([true, false])
    await until(() => leaders().length === 1 && leaders()[0] !== first, 'a new leader')
    expect(await observer.send('GET', [KEY])).toBe(leaders()[0]!.lock.instanceId)
  })

  test('a leader cut off from Redis steps down at once; another takes over after the TTL; back, it follows', async () => {
    const user = new NodeUser(server, 'node-c')
    const cut = await startNode(user.url())
    await until(() => cut.lock.isLeader(), 'the first node leads')
    await Promise.all([startNode(), startNode()])
    user.cutOff()
    await until(() => !cut.lock.isLeader(), 'the cut-off node steps down')
    expect(cut.changes).toEqual([true, false])
    await until(() => leaders().length === 1, 'a new leader')
    const [next] = leaders()
    user.letIn()
    await until(() => cut.link.state === 'up', 'the cut-off node back')
    await renewals(3)
    expect(leaders()).toEqual([next!])
    expect(cut.changes).toEqual([true, false])
  })

  test('a lock not started does not compete, also when its link connects', async () => {
    let lock: ProducerLock | undefined
    const link = await openLink({ url: server.url(), clock, prepare: (link) => (lock = new ProducerLock({ link, name: 'pbx-1', log: () => {} })) })
    // Commands on one connection run in order: a claim sent while connecting would have run before this.
    await link.send('PING', [])
    expect(await observer.send('EXISTS', [KEY])).toBe(0)
    expect(lock!.isLeader()).toBe(false)
    link.close()
  })

  test('a lock closed while its first claim is under way leaves the lock free', async () => {
    let lock: ProducerLock | undefined
    const link = await openLink({ url: server.url(), clock, prepare: (link) => (lock = new ProducerLock({ link, name: 'pbx-1', log: () => {} })) })
    lock!.start()
    await lock!.close()
    // The claim's commands and its hand-back run on the same connection, before these.
    await link.send('PING', [])
    await link.send('PING', [])
    expect(await observer.send('EXISTS', [KEY])).toBe(0)
    expect(lock!.isLeader()).toBe(false)
    link.close()
  })

  test('a renewal that comes too late (a stalled node) is no longer leadership', async () => {
    const node = await startNode()
    await until(() => node.lock.isLeader(), 'a leader')
    // The event loop stalls longer than the TTL: no renewal runs, and the lock may have passed on.
    const stallUntil = performance.now() + TTL_MS
    while (performance.now() < stallUntil) {}
    expect(node.lock.isLeader()).toBe(false)
  })
})
