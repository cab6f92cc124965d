import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

let h: Harness
let access: string
let refresh: string
beforeEach(async () => {
  h = await createHarness()
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
  ;({ access_token: access, refresh_token: refresh } = await h.login())
})
afterEach(() => h.close())

const publish = (channel: string, body: unknown, init: { peer?: string; headers?: Record<string, string> } = {}) =>
  h.request(`${BASE}/pub/${channel}`, {
    method: 'POST',
    peer: init.peer,
    headers: { 'content-type': 'application/json', ...init.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
const poll = (channel: string, headers: Record<string, string> = {}) => h.request(`${BASE}/sub/${channel}?authorization=${access}`, { headers })

describe('publish', () => {
  test('from loopback stores the message with an nchan id', async () => {
    const response = await publish('users-state', { states: {} })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ success: true, channel: 'users-state', id: `${h.clock.seconds}:0`, subscribers: 0 })
  })

  for (const peer of ['127.0.0.1', '127.5.6.7', '::1', '::ffff:127.0.0.1']) {
    test(`is accepted from ${peer}`, async () => {
      expect((await publish('contacts', { a: 1 }, { peer })).status).toBe(200)
    })
  }

  test('is refused from another address, or with any proxy header, before the body is read', async () => {
    const refusals = [
      await publish('contacts', { a: 1 }, { peer: '192.0.2.9' }),
      await publish('contacts', { a: 1 }, { peer: '::ffff:192.0.2.9' }),
      await publish('contacts', { a: 1 }, { headers: { 'x-real-ip': '127.0.0.1' } }),
      await publish('contacts', { a: 1 }, { headers: { 'x-forwarded-for': '127.0.0.1' } }),
      await publish('contacts', { a: 1 }, { headers: { forwarded: 'for=127.0.0.1' } }),
      await publish('contacts', 'not json', { peer: '192.0.2.9' }),
    ]
    for (const response of refusals) {
      expect(response.status).toBe(403)
      expect((await response.json()).code).toBe('publish_forbidden')
    }
    expect(await (await poll('contacts')).status).toBe(304)
  })

  test('a channel the AMI state engine produces is refused with 409; other channels stay open', async () => {
    const withEngine = await createHarness({ producedHere: (channel) => channel === 'users-state' || channel === 'active-calls' })
    try {
      const post = (channel: string) =>
        withEngine.request(`${BASE}/pub/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"states":{}}' })
      const refused = await post('users-state')
      expect(refused.status).toBe(409)
      expect(await refused.json()).toMatchObject({ success: false, code: 'channel_produced_here' })
      expect((await post('active-calls')).status).toBe(409)
      expect((await post('contacts')).status).toBe(200)
      expect(withEngine.hub.lastSnapshot('users-state')).toBeNull()
    } finally {
      withEngine.close()
    }
  })

  test('bad input: unknown channel 404, bad name 400, not JSON 400, over 1 MiB 413', async () => {
    expect((await publish('no-such-channel', { a: 1 })).status).toBe(404)
    expect((await publish('Bad_Name', { a: 1 })).status).toBe(400)
    expect((await publish('contacts', '{"a":')).status).toBe(400)
    expect((await publish('contacts', 'a=1', { headers: { 'content-type': 'text/plain' } })).status).toBe(400)
    expect((await publish('contacts', { pad: 'x'.repeat(1024 * 1024) })).status).toBe(413)
  })

  test('users returns the last users-state snapshot in the legacy array', async () => {
    const snapshot = { states: { '201': { name: 'Alice', state: 'Idle' } } }
    await publish('users-state', snapshot)
    const response = await h.request(`${BASE}/users`, { headers: bearer(access) })
    expect((await response.json()).statuses).toEqual([snapshot])
  })
})

describe('long-poll, as nchan clients do it', () => {
  test('no cursor: the oldest buffered message at once, exactly as published, with its cursor headers', async () => {
    const body = '{"event":"x",  "spacing":"kept"}'
    await publish('contacts', body, { headers: { 'content-type': 'application/json; charset=utf-8' } })
    const response = await poll('contacts')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe(body)
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(response.headers.get('etag')).toBe('0')
    expect(Date.parse(response.headers.get('last-modified')!) / 1000).toBe(h.clock.seconds)
  })

  test('tags tell apart messages of one second; cursors walk them in order', async () => {
    for (let i = 0; i < 3; i++) await publish('contacts', { i })
    let headers: Record<string, string> = {}
    const seen: unknown[] = []
    for (let i = 0; i < 3; i++) {
      const response = await poll('contacts', headers)
      seen.push(await response.json())
      headers = { 'if-modified-since': response.headers.get('last-modified')!, 'if-none-match': response.headers.get('etag')! }
    }
    expect(seen).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }])
    expect((await poll('contacts', headers)).status).toBe(304)
  })

  test('a waiting poll gets the next message as soon as it is published', async () => {
    await publish('active-calls', { n: 1 })
    const first = await poll('active-calls')
    const cursor = { 'if-modified-since': first.headers.get('last-modified')!, 'if-none-match': first.headers.get('etag')! }
    const waiting = poll('active-calls', cursor)
    await Bun.sleep(20)
    h.clock.advance(1)
    await publish('active-calls', { n: 2 })
    const next = await waiting
    expect(await next.json()).toEqual({ n: 2 })
    expect(next.headers.get('etag')).toBe('0')
  })

  test('each channel delivers a unique test message; contacts after draining 250 older ones', async () => {
    for (let i = 0; i < 250; i++) await publish('contacts', { event: 'old', i })
    for (const channel of ['users-state', 'active-calls', 'contacts']) {
      const testId = crypto.randomUUID()
      await publish(channel, { event: `${channel}-update`, ts: h.clock.seconds, test_id: testId })
      let headers: Record<string, string> = {}
      const bodies: Array<{ test_id?: string; i?: number }> = []
      while (!bodies.some((body) => body.test_id === testId)) {
        const response = await poll(channel, headers)
        expect(response.status).toBe(200)
        bodies.push(await response.json())
        headers = { 'if-modified-since': response.headers.get('last-modified')!, 'if-none-match': response.headers.get('etag')! }
      }
      // contacts keeps 200: the 199 newest old ones, then the test message.
      if (channel === 'contacts') expect(bodies.map((body) => body.i ?? 'test')).toEqual([...Array.from({ length: 199 }, (_, k) => 51 + k), 'test'])
      else expect(bodies).toHaveLength(1)
    }
  })

  test('a bad cursor is a 400, not a guess', async () => {
    expect((await poll('contacts', { 'if-modified-since': 'yesterday' })).status).toBe(400)
    expect((await poll('contacts', { 'if-none-match': 'abc' })).status).toBe(400)
  })
})

describe('subscribe: credentials and limits', () => {
  test('the token may come as ?authorization=, ?token=, Authorization or cookie', async () => {
    await publish('users-state', { ok: true })
    const url = `${BASE}/sub/users-state`
    for (const response of [
      await h.request(`${url}?authorization=${access}`),
      await h.request(`${url}?token=${access}`),
      await h.request(url, { headers: bearer(access) }),
      await h.request(url, { headers: { cookie: `access_token=${access}` } }),
    ]) {
      expect(response.status).toBe(200)
    }
  })

  test('an expired token 401', async () => {
    h.clock.advance(3600 + 31)
    const response = await poll('users-state')
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="invalid_token"')
  })

  test('no token 401, refresh token 403, unknown channel 404, revoked token 401', async () => {
    expect((await h.request(`${BASE}/sub/users-state`)).status).toBe(401)
    expect((await h.request(`${BASE}/sub/users-state?token=${refresh}`)).status).toBe(403)
    expect((await poll('no-such-channel')).status).toBe(404)
    await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access) })
    expect((await poll('users-state')).status).toBe(401)
  })

  test('at most 10 subscriptions per user, then 429; released ones free their slot', async () => {
    const streams = await Promise.all(Array.from({ length: 10 }, () => eventStream('contacts')))
    expect(h.hub.subscriptionCount).toBe(10)
    const refused = await poll('contacts')
    expect(refused.status).toBe(429)
    expect((await refused.json()).code).toBe('too_many_subscriptions')
    await streams[0]!.cancel()
    await Bun.sleep(10)
    expect(h.hub.subscriptionCount).toBe(9)
    const again = await eventStream('contacts')
    expect(h.hub.subscriptionCount).toBe(10)
    await Promise.all([...streams.slice(1), again].map((stream) => stream.cancel()))
    await Bun.sleep(10)
    expect(h.hub.subscriptionCount).toBe(0)
  })
})

/** Opens an EventSource-style subscription in-process and returns its reader. */
async function eventStream(channel: string, headers: Record<string, string> = {}) {
  const response = await h.request(`${BASE}/sub/${channel}?token=${access}`, { headers: { accept: 'text/event-stream', ...headers } })
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
  return response.body!.getReader()
}

/** Reads from a stream until `until` matches the text so far. */
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

describe('EventSource', () => {
  test('buffered messages first, then live ones, each with its id; heartbeats in between', async () => {
    await publish('contacts', { n: 1 })
    await publish('contacts', '{"lines":\n"two"}')
    const reader = await eventStream('contacts')
    const start = await readUntil(reader, (text) => text.includes('"two"'))
    const t = h.clock.seconds
    expect(start).toContain(`id: ${t}:0\ndata: {"n":1}\n\n`)
    // A line break inside the body becomes a second data: line (the client joins them with \n).
    expect(start).toContain(`id: ${t}:1\ndata: {"lines":\ndata: "two"}\n\n`)
    await publish('contacts', { n: 3 })
    expect(await readUntil(reader, (text) => text.includes('"n":3'))).toContain(`id: ${t}:2\ndata: {"n":3}\n\n`)
    expect(await readUntil(reader, (text) => text.includes(': heartbeat'))).toContain(': heartbeat\n\n')
    await reader.cancel()
  })

  test('Last-Event-ID or ?last_event_id= resumes after that message', async () => {
    for (let n = 0; n < 3; n++) await publish('contacts', { n })
    const t = h.clock.seconds
    for (const headers of [{ 'last-event-id': `${t}:0` }]) {
      const reader = await eventStream('contacts', headers)
      const text = await readUntil(reader, (sofar) => sofar.includes('"n":2'))
      expect(text).not.toContain('"n":0')
      expect(text).toContain(`id: ${t}:1`)
      await reader.cancel()
    }
    const response = await h.request(`${BASE}/sub/contacts?token=${access}&last_event_id=${t}:1`, { headers: { accept: 'text/event-stream' } })
    const reader = response.body!.getReader()
    const text = await readUntil(reader, (sofar) => sofar.includes('"n":2'))
    expect(text).not.toContain('"n":1')
    await reader.cancel()
  })

  test('the stream ends with a final event when its token expires', async () => {
    const reader = await eventStream('users-state')
    h.clock.advance(3600 + 31)
    const text = await readUntil(reader, () => false)
    expect(text).toContain('event: close\ndata: {"reason":"token_expired"}\n\n')
    expect(h.hub.subscriptionCount).toBe(0)
  })

  test('the stream ends when its session is logged out', async () => {
    const reader = await eventStream('users-state')
    await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access) })
    expect(await readUntil(reader, () => false)).toContain('"reason":"auth_failed"')
  })

  test('a subscriber that never reads is dropped; the others keep receiving in order', async () => {
    const slow = await eventStream('contacts')
    const fast = await eventStream('contacts')
    const received: string[] = []
    const decoder = new TextDecoder()
    const reading = (async () => {
      for (;;) {
        const { value, done } = await fast.read()
        if (done) return
        received.push(decoder.decode(value))
      }
    })()
    for (let n = 0; n < 400; n++) {
      await publish('contacts', { n })
      if (n % 50 === 0) await Bun.sleep(1)
    }
    await Bun.sleep(20)
    expect(h.hub.subscriptionCount).toBe(1)
    const numbers = [...received.join('').matchAll(/"n":(\d+)/g)].map((match) => Number(match[1]))
    expect(numbers).toEqual(Array.from({ length: 400 }, (_, n) => n))
    await fast.cancel()
    await slow.cancel().catch(() => {})
    await reading
  })
})
