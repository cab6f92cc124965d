import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { Channel, type Message, type Subscriber } from '../../src/presence/channel'
import { RedisBus, type BusLink } from '../../src/presence/redis-bus'
import { StoreUnavailableError } from '../../src/store/outage'
import type { RedisLink } from '../../src/store/redis/redis-link'
import { ManualClock } from '../helpers'
import { NodeUser, openLink, until } from '../redis-nodes'
import { RedisServer } from '../redis-server'

/** One node: its link, its own shared channels, what their subscribers got. */
interface Node {
  link: RedisLink
  bus: RedisBus
  channels: Record<'contacts' | 'users-state', Channel>
  received: Record<'contacts' | 'users-state', Message[]>
}

let server: RedisServer
let clock: ManualClock
let nodes: Node[]

/** The link's backoff may wait a few seconds before it tries again. */
const RECONNECT_TIMEOUT_MS = 15_000
/** Node C logs in as its own user, so that a test can cut it off alone. */
let nodeC: NodeUser

beforeAll(async () => {
  server = await RedisServer.start()
})
afterAll(async () => {
  for (const node of nodes ?? []) node.link.close()
  await server.stop()
})
beforeEach(async () => {
  for (const node of nodes ?? []) node.link.close()
  server.cli('FLUSHALL')
  nodeC = new NodeUser(server, 'node-c')
  clock = new ManualClock()
  nodes = await Promise.all([server.url(), server.url(), nodeC.url()].map((url) => startNode(url)))
})

async function restartRedis(): Promise<void> {
  await server.start()
  nodeC.add()
  await until(() => nodes.every((node) => node.link.state === 'up'), 'reconnect')
}

function recorder(into: Message[]): Subscriber {
  return { deliver: (message) => (into.push(message), true) }
}

/** Hooks a test may add on a node: after each (re)connect, before the bus reloads; on each pub/sub message. */
interface NodeHooks {
  beforeReload?: () => Promise<void>
  onPubSub?: () => void
}

async function startNode(url: string, hooks: NodeHooks = {}): Promise<Node> {
  const channels = { contacts: new Channel('contacts', 200), 'users-state': new Channel('users-state', 1) }
  const received = { contacts: [] as Message[], 'users-state': [] as Message[] }
  channels.contacts.subscribers.add(recorder(received.contacts))
  channels['users-state'].subscribers.add(recorder(received['users-state']))
  let bus: RedisBus | undefined
  const prepare = (link: RedisLink) => {
    if (hooks.beforeReload) link.onUp(hooks.beforeReload)
    bus = new RedisBus({ link: spied(link, hooks), clock, channels: Object.values(channels), log: () => {} })
  }
  const link = await openLink({ url, clock, prepare })
  return { link, bus: bus!, channels, received }
}

function spied(link: RedisLink, { onPubSub }: NodeHooks): BusLink {
  return {
    subscribe: (channel, listener) => link.subscribe(channel, (message) => (listener(message), onPubSub?.())),
    onUp: (hook) => link.onUp(hook),
    onDown: (hook) => link.onDown(hook),
    send: (command, args) => link.send(command, args),
    eval: (script, keys, args) => link.eval(script, keys, args),
  }
}


const ids = (messages: Message[]) => messages.map((message) => message.idText)

describe('RedisBus', () => {
  test('a publish on A is accepted once on A, B and C, with the id the publish resolved with', async () => {
    const [a] = nodes
    const message = await a!.bus.publish(a!.channels.contacts, '{"n":1}', 'application/json')
    expect(message.idText).toBe(`${clock.seconds}:0`)
    await until(() => nodes.every((node) => node.received.contacts.length === 1), 'delivery everywhere')
    for (const node of nodes) {
      expect(node.received.contacts).toEqual([message])
      expect(node.channels.contacts.published).toBe(1)
      expect(node.received['users-state']).toEqual([])
    }
  })

  test('200 publishes interleaved from three nodes arrive in the same order, with the same ids, everywhere', async () => {
    const published = await Promise.all(
      Array.from({ length: 200 }, (_, i) => {
        if (i === 100) clock.advance(1)
        const node = nodes[i % 3]!
        return node.bus.publish(node.channels.contacts, `m${i}`, 'text/plain')
      }),
    )
    await until(() => nodes.every((node) => node.received.contacts.length === 200), 'all 200 everywhere')
    const order = ids(nodes[0]!.received.contacts)
    expect(new Set(order).size).toBe(200)
    expect([...order].sort(byId)).toEqual(order)
    for (const node of nodes) expect(ids(node.received.contacts)).toEqual(order)
    expect(new Set(ids(published))).toEqual(new Set(order))
    // Each message kept the body it was published with.
    const bodyOf = new Map(published.map((message) => [message.idText, message.body]))
    for (const message of nodes[1]!.received.contacts) expect(message.body).toBe(bodyOf.get(message.idText)!)
  })

  test('a clock that stepped back continues the ids after the buffer\'s last', async () => {
    const [a, b] = nodes
    const first = await a!.bus.publish(a!.channels.contacts, 'first', 'text/plain')
    clock.advance(-30)
    const second = await b!.bus.publish(b!.channels.contacts, 'second', 'text/plain')
    expect(second.id).toEqual({ time: first.id.time, tag: 1 })
  })

  test('the buffer in Redis keeps the channel\'s capacity', async () => {
    const [a] = nodes
    for (let i = 0; i < 205; i++) await a!.bus.publish(a!.channels.contacts, `m${i}`, 'text/plain')
    for (let i = 0; i < 3; i++) await a!.bus.publish(a!.channels['users-state'], `s${i}`, 'application/json')
    expect(server.cli('LLEN', 'softphone:channel:contacts')).toBe('200')
    expect(JSON.parse(server.cli('LINDEX', 'softphone:channel:contacts', '0')).body).toBe('m5')
    expect(server.cli('LLEN', 'softphone:channel:users-state')).toBe('1')
    expect(JSON.parse(server.cli('LINDEX', 'softphone:channel:users-state', '0'))).toEqual({ time: clock.seconds, tag: 2, channel: 'users-state', contentType: 'application/json', body: 's2' })
  })

  test('a node cut off while others publish catches up after it reconnects, in order, then goes on', async () => {
    const [a, b, c] = nodes
    await a!.bus.publish(a!.channels.contacts, 'before', 'text/plain')
    await until(() => c!.received.contacts.length === 1, 'first message on C')
    nodeC.cutOff()
    await until(() => c!.link.state === 'down', 'C down')
    for (let i = 0; i < 5; i++) await nodes[i % 2]!.bus.publish(nodes[i % 2]!.channels.contacts, `missed${i}`, 'text/plain')
    await until(() => b!.received.contacts.length === 6, 'B got all')
    expect(c!.received.contacts).toHaveLength(1)
    nodeC.letIn()
    await until(() => c!.link.state === 'up', 'C up again')
    expect(ids(c!.received.contacts)).toEqual(ids(b!.received.contacts))
    const after = await c!.bus.publish(c!.channels.contacts, 'after', 'text/plain')
    await until(() => nodes.every((node) => node.received.contacts.length === 7), 'the next one everywhere')
    for (const node of nodes) expect(node.received.contacts.at(-1)).toEqual(after)
  })

  test('a message that arrives by pub/sub while a reconnected node reloads waits for the reload', async () => {
    const [a, b] = nodes
    let armed = false
    let arrivals = 0
    // After C reconnects and subscribes, before its reload: A publishes, and it reaches C by pub/sub first.
    const beforeReload = async () => {
      if (!armed) return
      armed = false
      const seen = arrivals
      await a!.bus.publish(a!.channels.contacts, 'during', 'text/plain')
      await until(() => arrivals > seen, 'the message on C by pub/sub')
    }
    const c = await startNode(nodeC.url(), { beforeReload, onPubSub: () => arrivals++ })
    nodes.push(c)
    nodeC.cutOff()
    await until(() => c.link.state === 'down', 'C down')
    for (let i = 0; i < 3; i++) await b!.bus.publish(b!.channels.contacts, `missed${i}`, 'text/plain')
    armed = true
    nodeC.letIn()
    await until(() => c.link.state === 'up', 'C up again')
    expect(c.received.contacts.map((message) => message.body)).toEqual(['missed0', 'missed1', 'missed2', 'during'])
    expect(ids(c.received.contacts)).toEqual(ids(b!.received.contacts))
  }, RECONNECT_TIMEOUT_MS)

  test('the buffer survives a Redis crash and restart (AOF): a new node loads it, ids go on', async () => {
    const [a] = nodes
    const published: Message[] = []
    for (let i = 0; i < 3; i++) published.push(await a!.bus.publish(a!.channels.contacts, `m${i}`, 'text/plain'))
    await server.kill9()
    await restartRedis()
    const late = await startNode(server.url())
    nodes.push(late)
    expect(late.received.contacts).toEqual(published)
    const next = await late.bus.publish(late.channels.contacts, 'next', 'text/plain')
    expect(next.id).toEqual({ time: clock.seconds, tag: 3 })
    await until(() => nodes.every((node) => node.received.contacts.length === 4), 'the next one everywhere')
  }, RECONNECT_TIMEOUT_MS)

  test('messages Redis lost (the last second of its AOF) come back from a node that reconnects; ids go on after them', async () => {
    const [a, b, c] = nodes
    const published: Message[] = []
    for (let i = 0; i < 4; i++) published.push(await a!.bus.publish(a!.channels.contacts, `m${i}`, 'text/plain'))
    await until(() => c!.received.contacts.length === 4, 'all four on C')
    nodeC.cutOff()
    await until(() => c!.link.state === 'down', 'C down')
    // What a crash inside the AOF's fsync window looks like: the last two messages are gone.
    server.cli('RPOP', 'softphone:channel:contacts', '2')
    nodeC.letIn()
    await until(() => c!.link.state === 'up', 'C up again')
    expect(server.cli('LRANGE', 'softphone:channel:contacts', '0', '-1').split('\n').map((text) => JSON.parse(text).body)).toEqual(['m0', 'm1', 'm2', 'm3'])
    const next = await b!.bus.publish(b!.channels.contacts, 'next', 'text/plain')
    expect(next.id).toEqual({ time: clock.seconds, tag: 4 })
    await until(() => nodes.every((node) => node.received.contacts.length === 5), 'the next one everywhere')
    for (const node of nodes) expect(node.received.contacts).toEqual([...published, next])
  }, RECONNECT_TIMEOUT_MS)

  test('Redis down: publish rejects with StoreUnavailableError and nothing is published', async () => {
    const [a] = nodes
    await server.kill9()
    await expect(a!.bus.publish(a!.channels.contacts, 'lost', 'text/plain')).rejects.toBeInstanceOf(StoreUnavailableError)
    await restartRedis()
    expect(server.cli('EXISTS', 'softphone:channel:contacts')).toBe('0')
    for (const node of nodes) expect(node.received.contacts).toEqual([])
  }, RECONNECT_TIMEOUT_MS)
})

function byId(a: string, b: string): number {
  const [at, ag] = a.split(':').map(Number)
  const [bt, bg] = b.split(':').map(Number)
  return at! - bt! || ag! - bg!
}
