/**
 * Sessions and revocations on a real redis-server, with up to three nodes (three RedisLinks, each
 * with its own in-memory mirror). Nothing waits for time: mirrors and links are polled until they
 * show what the test expects, and the stale window runs on a ManualClock.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { RotationMode } from '../../src/sessions/session-records'
import { RedisLink } from '../../src/store/redis/redis-link'
import { RedisRevocations } from '../../src/tokens/redis-revocations'
import { SESSION_REVOCATION_MARGIN } from '../../src/tokens/revocations'
import { ManualClock } from '../helpers'
import { CuttableRelay, mirrorOn, STALE_SECONDS, startNode as startNodeAt, until, type Node } from '../redis-node'
import { RedisServer } from '../redis-server'
import { newSession, REFRESH_TTL, refreshOf, sessionRecordsCases, T0 } from '../session-records-cases'

const NODE_TEST_MS = 20_000

let server: RedisServer

beforeAll(async () => {
  server = await RedisServer.start()
})

afterAll(async () => {
  await server.stop()
})

const startNode = (clock: ManualClock, url = server.url()) => startNodeAt(clock, url)

async function startNodes(count: number, clock = new ManualClock()): Promise<Node[]> {
  server.cli('FLUSHALL')
  return Promise.all(Array.from({ length: count }, () => startNode(clock)))
}

const closeAll = (nodes: Node[]) => nodes.forEach((node) => node.link.close())

sessionRecordsCases('RedisSessionRecords (contract)', async () => {
  const [node] = await startNodes(1)
  return { records: node!.records, mirror: node!.mirror, close: () => node!.link.close() }
})

describe('RedisSessionRecords across three nodes', () => {
  const storm = async (mode: RotationMode) => {
    const nodes = await startNodes(3)
    try {
      await nodes[0]!.records.create(newSession('s'))
      const decisions = await Promise.all(
        Array.from({ length: 20 }, (_, i) => nodes[i % 3]!.records.refresh(refreshOf('s', 0, mode, T0 + 1))),
      )
      const count = (kind: string) => decisions.filter((decision) => decision.kind === kind).length
      return { nodes, count }
    } catch (error) {
      closeAll(nodes)
      throw error
    }
  }

  test('20 parallel refreshes of one token over three nodes, compatible: one rotated, 19 repeated', async () => {
    const { nodes, count } = await storm('compatible')
    expect(count('rotated')).toBe(1)
    expect(count('repeated')).toBe(19)
    closeAll(nodes)
  }, NODE_TEST_MS)

  test('strict: one rotated, the first late one is reuse and revokes, the other 18 find it revoked; every mirror learns it', async () => {
    const { nodes, count } = await storm('strict')
    expect(count('rotated')).toBe(1)
    expect(count('reuse')).toBe(1)
    expect(count('revoked')).toBe(18)
    await until(() => nodes.every((node) => node.mirror.isSessionRevoked('s')), 'the reuse revocation on every node')
    closeAll(nodes)
  }, NODE_TEST_MS)

  test('off: all 20 kept, the token never changes', async () => {
    const { nodes, count } = await storm('off')
    expect(count('kept')).toBe(20)
    expect((await nodes[1]!.records.get('s'))!.current_hash).toBe(newSession('s').current_hash)
    closeAll(nodes)
  }, NODE_TEST_MS)

  test('a logout on node A reaches the mirrors of B and C through the announcement', async () => {
    const [a, b, c] = await startNodes(3)
    await a!.records.create(newSession('s'))
    await a!.records.logout({ tokenId: { jti: 'access-1', expiresAt: T0 + 900 }, sid: 's', now: T0 + 5 })
    // The revoking node has it as soon as the call returns.
    expect(a!.mirror.isTokenIdRevoked('access-1')).toBe(true)
    expect(a!.mirror.isSessionRevoked('s')).toBe(true)
    for (const node of [b!, c!]) {
      await until(() => node.mirror.isTokenIdRevoked('access-1') && node.mirror.isSessionRevoked('s'), 'the logout on another node')
    }
    await a!.records.endAll('bob', 'logout-all', T0 + 6)
    await until(() => c!.mirror.isLegacyTokenRevoked('bob', T0 + 6), 'the legacy cut-off on node C')
    closeAll([a!, b!, c!])
  }, NODE_TEST_MS)

  test('a node whose link was down while another revoked has it after reconnecting, before it reports up', async () => {
    const clock = new ManualClock()
    const [a] = await startNodes(1, clock)
    const relay = new CuttableRelay(server.port)
    const b = await startNode(clock, relay.url())
    try {
      await a!.records.create(newSession('s'))
      relay.cutAll()
      await until(() => b.link.state !== 'up', 'node B to notice the outage')
      await a!.records.logout({ tokenId: { jti: 'access-2', expiresAt: T0 + 900 }, sid: 's', now: T0 + 5 })
      await a!.records.endAll('carol', 'logout-all', T0 + 5)
      expect(b.mirror.isSessionRevoked('s')).toBe(false)
      relay.restore()
      await until(() => b.link.state === 'up', 'node B to reconnect', 10_000)
      expect(b.mirror.isTokenIdRevoked('access-2')).toBe(true)
      expect(b.mirror.isSessionRevoked('s')).toBe(true)
      expect(b.mirror.isLegacyTokenRevoked('carol', T0 + 5)).toBe(true)
    } finally {
      relay.stop()
      closeAll([a!, b])
    }
  }, NODE_TEST_MS)

  test('while the link is down the mirror is usable for redis_stale_seconds, then fails closed; up again, usable again', async () => {
    const clock = new ManualClock()
    server.cli('FLUSHALL')
    const relay = new CuttableRelay(server.port)
    const node = await startNode(clock, relay.url())
    try {
      expect(node.mirror.usable()).toBe(true)
      relay.cutAll()
      await until(() => node.link.downSince() !== null, 'the link to go down')
      clock.advance(STALE_SECONDS - 1)
      expect(node.mirror.usable()).toBe(true)
      clock.advance(1)
      expect(node.mirror.usable()).toBe(false)
      relay.restore()
      await until(() => node.link.state === 'up', 'the link to come back', 10_000)
      expect(node.mirror.usable()).toBe(true)
    } finally {
      relay.stop()
      node.link.close()
    }
  }, NODE_TEST_MS)

  test('a node is not usable before its first load, and loads revocations made before it started, room reserved first', async () => {
    const clock = new ManualClock()
    const [a] = await startNodes(1, clock)
    await a!.records.logout({ tokenId: { jti: 'access-3', expiresAt: T0 + 900 }, now: T0 })
    await a!.records.logout({ tokenId: { jti: 'expired', expiresAt: clock.seconds - 1 }, now: T0 })
    const link = new RedisLink({ url: server.url(), clock, log: () => {}, label: 'test' })
    const reserved: Array<[number, number]> = []
    const mirror = Object.assign(mirrorOn(clock), { reserveTokenIds: (count: number) => void reserved.push([count, mirror.revokedIdCount]) })
    new RedisRevocations({ link, mirror, clock, staleSeconds: STALE_SECONDS, log: () => {} })
    expect(mirror.usable()).toBe(false)
    link.start()
    await until(() => link.state === 'up', 'the link to come up')
    expect(mirror.usable()).toBe(true)
    expect(mirror.isTokenIdRevoked('access-3')).toBe(true)
    expect(mirror.isTokenIdRevoked('expired')).toBe(false)
    // Room for every stored id was asked for before the first was noted.
    expect(reserved).toEqual([[2, 0]])
    closeAll([a!])
    link.close()
  }, NODE_TEST_MS)

  test('a session hash and its user set expire SESSION_REVOCATION_MARGIN after current_exp, moved on rotation', async () => {
    const [a] = await startNodes(1)
    const ttl = (key: string) => Number(server.cli('TTL', key))
    await a!.records.create(newSession('s'))
    expect(ttl('softphone:session:s')).toBeWithin(REFRESH_TTL + SESSION_REVOCATION_MARGIN - 5, REFRESH_TTL + SESSION_REVOCATION_MARGIN + 1)
    expect(ttl('softphone:user-sessions:alice')).toBeWithin(REFRESH_TTL + SESSION_REVOCATION_MARGIN - 5, REFRESH_TTL + SESSION_REVOCATION_MARGIN + 1)
    // Computed from the request's now, not Redis's clock.
    const longer = 3 * REFRESH_TTL + SESSION_REVOCATION_MARGIN - 100
    expect(await a!.records.refresh({ ...refreshOf('s', 0, 'strict', T0 + 100), nextExp: T0 + 3 * REFRESH_TTL })).toEqual({ kind: 'rotated' })
    expect(ttl('softphone:session:s')).toBeWithin(longer - 5, longer + 1)
    expect(ttl('softphone:user-sessions:alice')).toBeWithin(longer - 5, longer + 1)
    expect(server.cli('ZSCORE', 'softphone:sessions-by-exp', 's')).toBe(String(T0 + 3 * REFRESH_TTL))
    a!.link.close()
  })

  test('after Redis restarts (kill -9), a node reconnects, reloads, and its scripts run again though Redis forgot them', async () => {
    const [a] = await startNodes(1)
    await a!.records.create(newSession('before'))
    await server.kill9()
    await until(() => a!.link.state !== 'up', 'the node to notice the crash')
    await server.start()
    await until(() => a!.link.state === 'up', 'the node to reconnect', 10_000)
    expect(a!.logs.filter((line) => line.startsWith('redis: revocations reloaded'))).toHaveLength(2)
    await a!.records.create(newSession('after'))
    expect(await a!.records.refresh(refreshOf('after', 0, 'strict', T0 + 1))).toEqual({ kind: 'rotated' })
    a!.link.close()
  }, NODE_TEST_MS)

  test('purgeExpired drops revoked token ids past their expiry from Redis', async () => {
    const [a] = await startNodes(1)
    await a!.records.logout({ tokenId: { jti: 'short', expiresAt: T0 + 10 }, now: T0 })
    await a!.records.logout({ tokenId: { jti: 'long', expiresAt: T0 + 1000 }, now: T0 })
    expect(await a!.revocations.purgeExpired(T0 + 10)).toBe(1)
    expect(server.cli('ZRANGE', 'softphone:revoked-ids', '0', '-1')).toBe('long')
    a!.link.close()
  })

  test('while Redis is unreachable every call fails at once with StoreUnavailableError', async () => {
    const clock = new ManualClock()
    server.cli('FLUSHALL')
    const relay = new CuttableRelay(server.port)
    const node = await startNode(clock, relay.url())
    try {
      relay.cutAll()
      await until(() => node.link.state !== 'up', 'the link to go down')
      await expect(node.records.create(newSession('s'))).rejects.toMatchObject({ name: 'StoreUnavailableError' })
      await expect(node.records.refresh(refreshOf('s', 0, 'strict', T0))).rejects.toMatchObject({ name: 'StoreUnavailableError' })
      await expect(node.records.logout({ sid: 's', now: T0 })).rejects.toMatchObject({ name: 'StoreUnavailableError' })
    } finally {
      relay.stop()
      node.link.close()
    }
  }, NODE_TEST_MS)
})
