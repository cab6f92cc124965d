import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { ProducerLock } from '../../src/presence/producer-lock'
import { SnapshotFanout, type FanoutLink } from '../../src/presence/snapshot-fanout'
import { SnapshotStamper, type SnapshotKind, type SnapshotOf, type SnapshotSink } from '../../src/presence/snapshot'
import { StoreUnavailableError } from '../../src/store/outage'
import type { RedisLink } from '../../src/store/redis/redis-link'
import { ManualClock } from '../helpers'
import { NodeUser, openLink, until } from '../redis-nodes'
import { RedisServer } from '../redis-server'

interface Fed {
  kind: SnapshotKind
  snapshot: SnapshotOf<SnapshotKind>
}

/** One node: its AMI engine's sink (`engine`), the fan-out, and what its own feed received. */
interface Node {
  link: RedisLink
  lock: ProducerLock
  fanout: SnapshotFanout
  engine: SnapshotSink
  stamper: SnapshotStamper
  fed: Fed[]
}

let server: RedisServer
let nodes: Node[] = []
const clock = new ManualClock()

beforeAll(async () => {
  server = await RedisServer.start()
})
afterAll(async () => {
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

/** Hooks a test may add on a node's link as the fan-out sees it. */
interface LinkSpy {
  /** After a reply to a command, before the fan-out gets it. */
  afterReply?: (command: string) => Promise<void>
  onPubSub?: () => void
}

function spied(link: RedisLink, { afterReply, onPubSub }: LinkSpy): FanoutLink {
  return {
    get state() {
      return link.state
    },
    subscribe: (channel, listener) => link.subscribe(channel, (message) => (listener(message), onPubSub?.())),
    onUp: (hook) => link.onUp(hook),
    onDown: (hook) => link.onDown(hook),
    send: async (command, args) => {
      const reply = await link.send(command, args)
      await afterReply?.(command)
      return reply
    },
    eval: (script, keys, args) => link.eval(script, keys, args),
  }
}

async function startNode(url = server.url(), spy: LinkSpy = {}): Promise<Node> {
  const fed: Fed[] = []
  const local: SnapshotSink = { full: (kind, snapshot) => void fed.push({ kind, snapshot }) }
  let parts: Pick<Node, 'lock' | 'fanout'> | undefined
  const prepare = (link: RedisLink) => {
    // The lock's hooks first: it can be taken back while the fan-out's reload still runs, before the link is up.
    const lock = new ProducerLock({ link, name: 'pbx-1', ttlMs: 60_000, renewMs: 100, log: () => {} })
    parts = { lock, fanout: new SnapshotFanout({ link: spied(link, spy), local, log: () => {} }) }
  }
  const link = await openLink({ url, clock, prepare })
  const { fanout, lock } = parts!
  lock.start()
  const node = { link, lock, fanout, engine: fanout.producer(lock), stamper: new SnapshotStamper(clock), fed }
  nodes.push(node)
  return node
}

function usersState(node: Node, state: 'Idle' | 'Ringing'): SnapshotOf<'users-state'> {
  return node.stamper.stamp<'users-state'>({ states: { '201': { name: 'Alice', state, channels: {} } } })
}

function activeCalls(node: Node): SnapshotOf<'active-calls'> {
  return node.stamper.stamp<'active-calls'>({ calls: [] })
}

async function threeNodesAndLeader(): Promise<{ leader: Node; followers: Node[] }> {
  await Promise.all([startNode(), startNode(), startNode()])
  await until(() => nodes.filter((node) => node.lock.isLeader()).length === 1, 'a leader')
  const leader = nodes.find((node) => node.lock.isLeader())!
  return { leader, followers: nodes.filter((node) => node !== leader) }
}

describe('SnapshotFanout', () => {
  test('only the leader\'s engine publishes; every node, the leader too, feeds each of its snapshots once', async () => {
    const { leader, followers } = await threeNodesAndLeader()
    const first = usersState(leader, 'Idle')
    leader.engine.full('users-state', first)
    for (const follower of followers) follower.engine.full('users-state', usersState(follower, 'Ringing'))
    const second = usersState(leader, 'Ringing')
    leader.engine.full('users-state', second)
    await until(() => nodes.every((node) => node.fed.length === 2), 'both on every node')
    for (const node of nodes) expect(node.fed).toEqual([{ kind: 'users-state', snapshot: first }, { kind: 'users-state', snapshot: second }])
  })

  test('a new leader publishes its latest snapshot of each kind at once', async () => {
    const { leader, followers } = await threeNodesAndLeader()
    leader.engine.full('users-state', usersState(leader, 'Idle'))
    const latest = new Map(followers.map((node) => [node, { states: usersState(node, 'Ringing'), calls: activeCalls(node) }]))
    for (const [node, { states, calls }] of latest) {
      node.engine.full('users-state', usersState(node, 'Idle'))
      node.engine.full('users-state', states)
      node.engine.full('active-calls', calls)
    }
    await leader.lock.close()
    await until(() => followers.some((node) => node.lock.isLeader()), 'a new leader')
    const next = followers.find((node) => node.lock.isLeader())!
    const expected: Fed[] = [
      { kind: 'users-state', snapshot: latest.get(next)!.states },
      { kind: 'active-calls', snapshot: latest.get(next)!.calls },
    ]
    await until(() => nodes.every((node) => node.fed.length === 3), 'the new leader\'s snapshots everywhere')
    for (const node of nodes) expect(node.fed.slice(1)).toEqual(expected)
  })

  test('a leader back from a Redis outage publishes what its engine produced meanwhile, once the link is up', async () => {
    const { leader } = await threeNodesAndLeader()
    leader.engine.full('users-state', usersState(leader, 'Idle'))
    await until(() => nodes.every((node) => node.fed.length === 1), 'the first everywhere')
    await server.kill9()
    await until(() => !leader.lock.isLeader(), 'the leader steps down')
    const meanwhile = usersState(leader, 'Ringing')
    leader.engine.full('users-state', meanwhile)
    // The lock survives in the AOF: the same node renews it while its link still runs the reconnect hooks.
    await server.start()
    await until(() => nodes.every((node) => node.fed.length === 2), 'the one from the outage everywhere', 15_000)
    for (const node of nodes) expect(node.fed[1]).toEqual({ kind: 'users-state', snapshot: meanwhile })
    expect(nodes.filter((node) => node.lock.isLeader())).toEqual([leader])
  }, 20_000)

  test('a snapshot that arrives by pub/sub while a reconnected node reloads is fed after the reloaded one', async () => {
    const { leader } = await threeNodesAndLeader()
    leader.engine.full('users-state', usersState(leader, 'Idle'))
    const missed = usersState(leader, 'Ringing')
    const during = usersState(leader, 'Idle')
    let armed = false
    let arrivals = 0
    // D's reload has read the stored snapshot; before D gets the reply, a newer one reaches it by pub/sub.
    const afterReply = async (command: string) => {
      if (!armed || command !== 'GET') return
      armed = false
      const seen = arrivals
      leader.engine.full('users-state', during)
      await until(() => arrivals > seen, 'the newer snapshot on D by pub/sub')
    }
    const user = new NodeUser(server, 'node-d')
    const d = await startNode(user.url(), { afterReply, onPubSub: () => arrivals++ })
    user.cutOff()
    await until(() => d.link.state === 'down', 'D down')
    leader.engine.full('users-state', missed)
    await until(() => leader.fed.length === 2, 'the missed one on the leader')
    armed = true
    user.letIn()
    await until(() => d.link.state === 'up', 'D up again')
    await until(() => d.fed.length === 3, 'both on D')
    expect(d.fed.slice(1)).toEqual([
      { kind: 'users-state', snapshot: missed },
      { kind: 'users-state', snapshot: during },
    ])
  }, 20_000)

  test('a node that starts later loads the last snapshot of each kind', async () => {
    const { leader } = await threeNodesAndLeader()
    const states = usersState(leader, 'Ringing')
    const calls = activeCalls(leader)
    leader.engine.full('users-state', usersState(leader, 'Idle'))
    leader.engine.full('users-state', states)
    leader.engine.full('active-calls', calls)
    await until(() => nodes.every((node) => node.fed.length === 3), 'all three everywhere')
    const late = await startNode()
    expect(late.fed).toEqual([
      { kind: 'users-state', snapshot: states },
      { kind: 'active-calls', snapshot: calls },
    ])
  })

  test('full (the ingest route\'s sink) publishes from any node; Redis down, it throws a store outage; a reload feeds nothing twice', async () => {
    const { followers } = await threeNodesAndLeader()
    const [follower] = followers
    const ingested = usersState(follower!, 'Idle')
    follower!.fanout.full('users-state', ingested)
    await until(() => nodes.every((node) => node.fed.length === 1), 'the ingested snapshot everywhere')
    await server.kill9()
    await until(() => follower!.link.state !== 'up', 'link down')
    expect(() => follower!.fanout.full('users-state', usersState(follower!, 'Ringing'))).toThrow(StoreUnavailableError)
    await server.start()
    await until(() => nodes.every((node) => node.link.state === 'up'), 'reconnect', 15_000)
    for (const node of nodes) expect(node.fed).toEqual([{ kind: 'users-state', snapshot: ingested }])
  }, 20_000)
})
