/**
 * Subscription lifetime through the compiled binary (real clock, real sockets): the per-user cap,
 * WebSocket refusals and renewal, a logout closing open streams, and a reader that stops reading.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { followStream, ServerProcess } from './server-process'

const PASSWORD = 'Pw-lifetime'
let server: ServerProcess
let token: string

beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('201', PASSWORD)
  await server.start(['--max-subscriptions-per-user', '3'])
  token = (await server.login('201', PASSWORD)).access_token
})
afterAll(() => server.cleanup())

const sseUrl = (channel: string, accessToken = token) => `${server.baseUrl}/sub/${channel}?authorization=${accessToken}`
const wsUrl = (query: string) => `${server.baseUrl.replace('http', 'ws')}/sub/contacts${query}`
const publish = (channel: string, body: unknown) =>
  fetch(`${server.baseUrl}/pub/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

function socket(url: string): { ws: WebSocket; opened: Promise<void>; closed: Promise<number>; frames: string[] } {
  const ws = new WebSocket(url)
  const frames: string[] = []
  ws.addEventListener('message', (event) => frames.push(String(event.data)))
  return {
    ws,
    frames,
    opened: new Promise((resolve) => ws.addEventListener('open', () => resolve())),
    closed: new Promise((resolve) => ws.addEventListener('close', (event) => resolve(event.code))),
  }
}

test('the per-user cap: the fourth subscription gets 429, a socket beyond it 1008', async () => {
  const streams = await Promise.all([1, 2, 3].map(() => fetch(sseUrl('contacts'), { headers: { accept: 'text/event-stream' } })))
  expect(streams.map((response) => response.status)).toEqual([200, 200, 200])
  const refused = await fetch(sseUrl('contacts'))
  expect(refused.status).toBe(429)
  expect((await refused.json()).code).toBe('too_many_subscriptions')
  expect(await socket(wsUrl(`?authorization=${token}`)).closed).toBe(1008)
  await Promise.all(streams.map((response) => response.body!.cancel()))
})

test('WebSocket close codes: 4001 without a token, 4002 with a bad one', async () => {
  expect(await socket(wsUrl('')).closed).toBe(4001)
  expect(await socket(wsUrl('?authorization=not.a.token')).closed).toBe(4002)
})

test('WebSocket renewal in-band keeps the socket; a message that is no renewal closes it with 4004', async () => {
  const client = socket(wsUrl(`?authorization=${token}`))
  await client.opened
  const renewed = (await server.login('201', PASSWORD)).access_token
  client.ws.send(JSON.stringify({ op: 'token', token: renewed }))
  await Bun.sleep(100)
  await publish('contacts', { after: 'renewal' })
  for (let i = 0; i < 100 && !client.frames.includes('{"after":"renewal"}'); i++) await Bun.sleep(10)
  expect(client.frames).toContain('{"after":"renewal"}')
  client.ws.send('{"op":"subscribe"}')
  expect(await client.closed).toBe(4004)
})

test('a logout closes the session\'s open streams within seconds', async () => {
  const session = await server.login('201', PASSWORD)
  const sse = await fetch(sseUrl('users-state', session.access_token), { headers: { accept: 'text/event-stream' } })
  const client = socket(wsUrl(`?authorization=${session.access_token}`))
  await client.opened
  const started = Date.now()
  await fetch(`${server.baseUrl}/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${session.access_token}` } })
  expect(await new Response(sse.body).text()).toContain('event: close\ndata: {"reason":"auth_failed"}')
  expect(await client.closed).toBe(4002)
  expect(Date.now() - started).toBeLessThan(5000)
})

test('a reader that never reads is dropped, while another receives every message in order', async () => {
  // A raw connection that sends its request and then never reads: the kernel buffers fill, then ours.
  const stalled = await Bun.connect({
    hostname: '127.0.0.1',
    port: server.port,
    socket: { data() {}, open() {} },
  })
  stalled.write(`GET ${new URL(sseUrl('contacts')).pathname}${new URL(sseUrl('contacts')).search} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n`)
  stalled.pause()
  const follower = followStream(await fetch(sseUrl('contacts'), { headers: { accept: 'text/event-stream' } }))
  const big = 'x'.repeat(64 * 1024)
  let subscribers = 2
  for (let n = 0; n < 600 && subscribers === 2; n++) subscribers = (await (await publish('contacts', { n, big })).json()).subscribers
  // The count in each answer is taken before delivery: one more publish shows the drop.
  const last = await (await publish('contacts', { n: 'last' })).json()
  expect(last.subscribers).toBe(1)
  for (let i = 0; i < 300 && !follower.text().includes('"n":"last"'); i++) await Bun.sleep(10)
  const numbers = [...follower.text().matchAll(/"n":(\d+)/g)].map((match) => Number(match[1]))
  expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, n) => n))
  expect(follower.text()).toContain('"n":"last"')
  stalled.end()
  await follower.stop()
}, 60_000)
