/** The personalised channels sub/me/* (README "Personalised presence"): the feed, the routes on every transport, scope changes. */
import { afterEach, describe, expect, test } from 'bun:test'
import type { Config } from '../../src/config/schema'
import type { Subscription } from '../../src/presence/hub'
import type { ScopeRules } from '../../src/presence/personal/scope'
import { SNAPSHOT_KINDS, type SnapshotKind, type UsersStateSnapshot } from '../../src/presence/snapshot'
import { reloadScopeRules } from '../../src/serve'
import { BASE, createHarness, type Harness, type HarnessOptions } from '../helpers'
import { activeCalls, CALL_201_202, MOBILE_201, usersState } from '../presence-fixture'

let h: Harness
const tokens = new Map<string, string>()

async function harness(options: HarnessOptions = {}): Promise<Harness> {
  h = await createHarness(options)
  for (const username of ['201', '202', '203', '204', '900']) {
    const role = username === '900' ? 'admin' : 'user'
    await h.directory.add({ username, password: `secret-${username}`, displayName: username, role, mobile: username === '201' ? MOBILE_201 : '' })
    tokens.set(username, (await h.login(username, `secret-${username}`)).access_token)
  }
  return h
}
afterEach(() => h.close())

/** A subscriber on a user's channel that records the bodies delivered to it. */
function listen(kind: SnapshotKind, username: string): string[] {
  const bodies: string[] = []
  const subscription: Subscription = {
    username,
    transport: 'eventsource',
    token: tokens.get(username)!,
    deliver(message) {
      bodies.push(message.body)
      return true
    },
    close() {
      h.hub.unsubscribe(subscription)
    },
  }
  h.hub.subscribe(h.feed.channelFor(kind, username), subscription)
  return bodies
}

const poll = (path: string, username: string, headers: Record<string, string> = {}) => h.request(`${BASE}/sub/${path}?token=${tokens.get(username)}`, { headers })
const pollJson = async (path: string, username: string) => {
  const response = await poll(path, username)
  expect(response.status).toBe(200)
  return (await response.json()) as Record<string, unknown>
}
const statesOf = async (username: string) => ((await pollJson('me/users-state', username)) as unknown as UsersStateSnapshot).states

/** users-state with one entry changed. */
function changed(sequence: number, extension: string, change: Partial<UsersStateSnapshot['states'][string]>): UsersStateSnapshot {
  const snapshot = usersState(sequence)
  snapshot.states[extension] = { ...snapshot.states[extension]!, ...change }
  return snapshot
}

describe('the feed', () => {
  test('a new subscriber gets its last personalised snapshot at once, envelope included', async () => {
    await harness()
    h.feed.full('users-state', usersState(5))
    const body = await pollJson('me/users-state', '203')
    expect(body).toMatchObject({ schemaVersion: 2, instanceId: usersState().instanceId, sequence: 5 })
    expect(Object.keys((body as unknown as UsersStateSnapshot).states)).toEqual(['201', '202', '203', '204', '205'])
    expect(Object.keys(await statesOf('202'))).toContain('sales')
    expect(await statesOf('900')).toEqual(usersState().states)
  })

  test('only bodies that changed are published: a change a user can\'t see sends it nothing', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const [caller, bystander] = [listen('users-state', '201'), listen('users-state', '203')]
    const call204 = usersState().states['204']!.channels['PJSIP/204-00000003']!
    // 204's channel changes: neither 201 nor 203 sees 204's channels (calls "own").
    h.feed.full('users-state', changed(2, '204', { channels: { 'PJSIP/204-00000003': { ...call204, answerState: 'held' } } }))
    expect([caller.length, bystander.length]).toEqual([0, 0])
    // 203's state changes: 203 sees its own entry, 201 sees 203's state.
    h.feed.full('users-state', changed(3, '203', { state: 'Idle', channels: {} }))
    expect([caller.length, bystander.length]).toEqual([1, 1])
    expect(JSON.parse(bystander[0]!)).toMatchObject({ sequence: 3, states: { '203': { state: 'Idle', channels: {} } } })
  })

  test('a channel nobody listens to is marked stale and personalised when someone subscribes', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const channel = h.feed.channelFor('users-state', '203')
    expect(channel.published).toBe(1)
    h.feed.full('users-state', changed(2, '203', { state: 'Idle', channels: {} }))
    expect(channel.published).toBe(1)
    expect(JSON.parse(channel.last()!.body).sequence).toBe(1)
    expect(await statesOf('203')).toMatchObject({ '203': { state: 'Idle' } })
    expect(channel.published).toBe(2)
  })

  test('with legacy channels on, full snapshots reach the shared channels too', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    h.feed.full('active-calls', activeCalls(2))
    expect(h.hub.lastSnapshot('users-state')).toEqual(usersState(1))
    expect(h.hub.lastSnapshot('active-calls')).toEqual(activeCalls(2))
  })

  test('the hub counts the personal channels under me/users-state and me/active-calls', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    listen('users-state', '201')
    listen('users-state', '202')
    expect(h.hub.subscriberCounts().get('me/users-state')).toEqual({ eventsource: 2, longpoll: 0, websocket: 0 })
    expect(h.hub.subscriberCounts().get('me/active-calls')).toEqual({ eventsource: 0, longpoll: 0, websocket: 0 })
    expect(h.hub.channelTotals().get('me/users-state')).toEqual({ published: 2, dropped: 0 })
    const metrics = await (await h.request('/metrics')).text()
    expect(metrics).toContain('softphone_presence_subscribers{channel="me/users-state",transport="eventsource"} 2')
    expect(metrics).toContain('softphone_presence_messages_published_total{channel="me/users-state"} 2')
  })
})

describe('active-calls on sub/me', () => {
  test('each user gets its own calls', async () => {
    await harness()
    h.feed.full('active-calls', activeCalls(2))
    expect(((await pollJson('me/active-calls', '202')) as { calls: unknown[] }).calls).toEqual([CALL_201_202])
    expect(((await pollJson('me/active-calls', '201')) as { calls: unknown[] }).calls).toHaveLength(2)
    expect(((await pollJson('me/active-calls', '900')) as { calls: unknown[] }).calls).toHaveLength(4)
  })
})

describe('pub/ as the source (presence_source = "pub")', () => {
  const publish = (channel: string, body: unknown) =>
    h.request(`${BASE}/pub/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  test('a full snapshot posted to pub/ reaches the shared channel as is and the personal ones', async () => {
    await harness()
    expect((await publish('users-state', usersState(4))).status).toBe(200)
    expect(h.hub.lastSnapshot('users-state')).toEqual(usersState(4))
    expect(await statesOf('203')).toMatchObject({ '201': { name: 'Alice', state: 'Up', channels: {} } })
  })

  test('a body without the envelope is stamped by the feed; one that fails the schema leaves the personal channels as they were', async () => {
    await harness()
    const { states } = usersState()
    expect((await publish('users-state', { states })).status).toBe(200)
    const stamped = await pollJson('me/users-state', '203')
    expect(stamped).toMatchObject({ schemaVersion: 2, sequence: 1 })
    expect(stamped.instanceId).not.toBe(usersState().instanceId)
    expect((await publish('users-state', { states: { '201': { name: 'Alice', state: 'Dancing' } } })).status).toBe(200)
    expect(await pollJson('me/users-state', '203')).toEqual(stamped)
  })

  test('with another source, pub/ refuses both channels with 409', async () => {
    await harness({ producedHere: (channel) => (SNAPSHOT_KINDS as readonly string[]).includes(channel) })
    for (const kind of SNAPSHOT_KINDS) expect((await publish(kind, { states: {} })).status).toBe(409)
    expect(h.feed.channelFor('users-state', '201').last()).toBeUndefined()
  })
})

describe('GET users: the caller\'s personalised users-state', () => {
  const usersOf = async (username: string) => {
    const response = await h.request(`${BASE}/users`, { headers: { authorization: `Bearer ${tokens.get(username)}` } })
    expect(response.status).toBe(200)
    return ((await response.json()) as { statuses: unknown[] }).statuses
  }

  test('a user gets what sub/me/users-state shows it, an admin everything, with the shared channels on or off', async () => {
    for (const legacyChannels of ['on', 'off'] as const) {
      if (legacyChannels === 'off') h.close()
      await harness({ legacyChannels })
      h.feed.full('users-state', usersState(3))
      expect(await usersOf('203')).toEqual([await pollJson('me/users-state', '203')])
      expect(((await usersOf('203'))[0] as UsersStateSnapshot).states['204']).toEqual({ name: 'Dave', state: 'Up', channels: {} })
      expect(await usersOf('900')).toEqual([usersState(3)])
    }
  })

  test('before any snapshot: [null]; a free-form pub/ body the feed can\'t read: that body while the shared channel is on', async () => {
    await harness()
    expect(await usersOf('203')).toEqual([null])
    const freeForm = { anything: 'an nchan-era producer sent' }
    await h.request(`${BASE}/pub/users-state`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(freeForm) })
    expect(await usersOf('203')).toEqual([freeForm])
  })
})

describe('legacy channels off', () => {
  test('sub/users-state and sub/active-calls answer 404 channel_off; the shared channels only carry snapshots between nodes; me works', async () => {
    await harness({ legacyChannels: 'off' })
    h.feed.full('users-state', usersState(1))
    for (const kind of SNAPSHOT_KINDS) {
      const response = await poll(kind, '900')
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ code: 'channel_off', message: expect.stringContaining('sub/me/') })
    }
    // The transport to every node's feed (README "Several nodes"), never read by a subscriber.
    expect(h.hub.lastSnapshot('users-state')).toMatchObject({ schemaVersion: 2 })
    expect(await statesOf('203')).toHaveProperty('203')
    expect((await poll('contacts', '201', {})).status).toBe(304)
  })

  test('the refusal is localized', async () => {
    await harness({ legacyChannels: 'off' })
    const response = await poll('users-state', '201', { 'accept-language': 'de' })
    expect(((await response.json()) as { message: string }).message).toStartWith('Dieser gemeinsame Kanal ist abgeschaltet')
  })
})

describe('the routes', () => {
  test('other sub/me/* names answer 404; without a token 401', async () => {
    await harness()
    expect((await poll('me/contacts', '201')).status).toBe(404)
    expect((await poll('me/nope', '201')).status).toBe(404)
    expect((await h.request(`${BASE}/sub/me/users-state`)).status).toBe(401)
  })

  test('the OpenAPI document lists both, for access tokens', async () => {
    await harness()
    const document = (await (await h.request(`${BASE}/openapi.json`)).json()) as { paths: Record<string, { get?: Record<string, unknown> }> }
    for (const kind of SNAPSHOT_KINDS) expect(document.paths[`/sub/me/${kind}`]?.get).toMatchObject({ 'x-access': 'token', security: [{ bearer: [] }] })
  })

  test('long-poll: the cursor of the last body answers 304 until a new one for this user', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const first = await poll('me/users-state', '203')
    const cursor = { 'if-modified-since': first.headers.get('last-modified')!, 'if-none-match': first.headers.get('etag')! }
    expect((await poll('me/users-state', '203', cursor)).status).toBe(304)
    const waiting = poll('me/users-state', '203', cursor)
    await Bun.sleep(20)
    h.feed.full('users-state', changed(2, '203', { state: 'Idle', channels: {} }))
    const next = await waiting
    expect(next.status).toBe(200)
    expect(await next.json()).toMatchObject({ sequence: 2 })
  })

  test('EventSource: the last body at once with its id, then the next one', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const response = await poll('me/users-state', '203', { accept: 'text/event-stream' })
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    const reader = response.body!.getReader()
    expect(await readUntil(reader, (text) => text.includes('"sequence":1'))).toContain(`id: ${h.clock.seconds}:0\ndata: {"schemaVersion":2`)
    h.feed.full('users-state', changed(2, '203', { state: 'Idle', channels: {} }))
    expect(await readUntil(reader, (text) => text.includes('"sequence":2'))).toContain(`id: ${h.clock.seconds}:1\n`)
    await reader.cancel()
  })

  test('the per-user cap counts sub/me subscriptions with the others', async () => {
    await harness()
    const readers = []
    for (let i = 0; i < 10; i++) readers.push((await poll(i % 2 ? 'me/users-state' : 'contacts', '201', { accept: 'text/event-stream' })).body!.getReader())
    expect((await poll('me/active-calls', '201', { accept: 'text/event-stream' })).status).toBe(429)
    await Promise.all(readers.map((reader) => reader.cancel()))
  })
})

describe('WebSocket', () => {
  function connect(path: string, username: string) {
    const socket = new WebSocket(`${h.url.replace('http', 'ws')}${BASE}/sub/${path}?token=${tokens.get(username)}`)
    const frames: string[] = []
    socket.addEventListener('message', (event) => frames.push(String(event.data)))
    const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.addEventListener('close', (event) => resolve({ code: event.code, reason: event.reason })))
    return { socket, frames, closed }
  }

  test('the last personalised body as the first frame, then changes', async () => {
    await harness({ listen: true })
    h.feed.full('active-calls', activeCalls(2))
    const { socket, frames } = connect('me/active-calls', '202')
    await until(() => frames.length === 1)
    expect(JSON.parse(frames[0]!)).toMatchObject({ sequence: 2, calls: [CALL_201_202] })
    h.feed.full('active-calls', { ...activeCalls(3), calls: [] })
    await until(() => frames.length === 2)
    expect(JSON.parse(frames[1]!)).toMatchObject({ sequence: 3, calls: [] })
    socket.close()
  })

  test('a shared channel that is off closes with the protocol-error code', async () => {
    await harness({ listen: true, legacyChannels: 'off' })
    expect(await connect('users-state', '201').closed).toMatchObject({ code: 4004, reason: expect.stringContaining('sub/me/') })
  })
})

describe('a subscriber whose user loses scope gets a new snapshot or is closed at the next sweep', () => {
  test('a role change: the next sweep republishes (a new admin sees the queue)', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const bodies = listen('users-state', '203')
    h.hub.sweep()
    expect(bodies).toHaveLength(0)
    h.directory.change('203', { role: 'admin' })
    h.hub.sweep()
    expect(bodies).toHaveLength(1)
    expect(JSON.parse(bodies[0]!).states).toHaveProperty('sales')
  })

  test('a group change by SIGHUP republishes at once; a bad configuration keeps the old rules, said in one line', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const bodies = listen('users-state', '203')
    const config = (rules: Partial<Config>) => () => ({ presence_scope_states: 'all', presence_scope_calls: 'own', presence_groups: [], ...rules }) as Config
    expect(reloadScopeRules(h.feed, config({ presence_groups: ['203 204'] }))).toBe('presence: scope rules reloaded (states "all", calls "own", 1 group(s))')
    expect(bodies).toHaveLength(1)
    expect(JSON.parse(bodies[0]!).states['204'].channels).toHaveProperty('PJSIP/204-00000003')
    const line = reloadScopeRules(h.feed, () => {
      throw new Error('config error: presence_groups must be a list of groups (from /etc/softphone-backend/config.toml)')
    })
    expect(line).toBe('presence: configuration not reloaded, scope rules kept: config error: presence_groups must be a list of groups (from /etc/softphone-backend/config.toml)')
    h.hub.sweep()
    expect(bodies).toHaveLength(1)
  })

  test('a disabled or removed user\'s stream is closed by the sweep', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const open = async (username: string) => {
      const reader = (await poll('me/users-state', username, { accept: 'text/event-stream' })).body!.getReader()
      await readUntil(reader, (text) => text.includes('"sequence":1'))
      return reader
    }
    const [disabled, removed] = [await open('203'), await open('204')]
    h.directory.setDisabled('203', true)
    h.directory.remove('204')
    h.hub.sweep()
    for (const reader of [disabled, removed]) expect(await readUntil(reader, (text) => text.includes('event: close'))).toContain('data: {"reason":"auth_failed"}')
    expect(h.hub.subscriberCounts().get('me/users-state')!.eventsource).toBe(0)
  })

  test('rules with no change to a user\'s scope publish nothing to it', async () => {
    await harness()
    h.feed.full('users-state', usersState(1))
    const bodies = listen('users-state', '201')
    const same: ScopeRules = { states: 'all', calls: 'own', groups: [['203', '204']] }
    h.feed.replaceRules(same)
    expect(bodies).toHaveLength(0)
  })
})

type Reader = { read(): Promise<{ value?: Uint8Array; done: boolean }> }
async function readUntil(reader: Reader, until: (text: string) => boolean): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  while (!until(text)) {
    const { value, done } = await reader.read()
    if (done) break
    text += decoder.decode(value)
  }
  return text
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await Bun.sleep(5)
  expect(condition()).toBe(true)
}
