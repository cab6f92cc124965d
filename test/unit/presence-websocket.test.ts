/** The WebSocket transport over a real loopback socket, with the harness's movable clock. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

let h: Harness
let access: string
let refresh: string
beforeEach(async () => {
  h = await createHarness({ listen: true })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
  ;({ access_token: access, refresh_token: refresh } = await h.login())
})
afterEach(() => h.close())

interface Opened {
  socket: WebSocket
  frames: string[]
  closed: Promise<{ code: number; reason: string }>
}

function connect(query: string, protocols?: string[]): Promise<Opened> {
  const socket = new WebSocket(`${h.url.replace('http', 'ws')}${BASE}/sub/contacts${query}`, protocols)
  const frames: string[] = []
  socket.addEventListener('message', (event) => frames.push(String(event.data)))
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.addEventListener('close', (event) => resolve({ code: event.code, reason: event.reason })),
  )
  return new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve({ socket, frames, closed }))
    socket.addEventListener('error', () => reject(new Error('connection failed')))
  })
}

/** Over the real socket: publishing needs a loopback peer, which in-process requests don't have here. */
async function publish(body: unknown): Promise<void> {
  const response = await fetch(`${h.url}${BASE}/pub/contacts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  expect(response.status).toBe(200)
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await Bun.sleep(5)
  expect(condition()).toBe(true)
}

describe('WebSocket refusals are close codes', () => {
  test('4001 without a token', async () => {
    expect(await (await connect('')).closed).toMatchObject({ code: 4001 })
  })
  test('4002 with a bad token or a refresh token', async () => {
    expect(await (await connect('?authorization=garbage')).closed).toMatchObject({ code: 4002 })
    expect(await (await connect(`?authorization=${refresh}`)).closed).toMatchObject({ code: 4002 })
  })
  test('4003 with an expired token', async () => {
    h.clock.advance(3600 + 31)
    expect(await (await connect(`?token=${access}`)).closed).toMatchObject({ code: 4003 })
  })
})

describe('WebSocket delivery', () => {
  test('buffered then live messages, one text frame each, the bare body', async () => {
    await publish({ n: 1 })
    const { frames, socket } = await connect(`?authorization=${access}`)
    await until(() => frames.length === 1)
    await publish({ n: 2 })
    await until(() => frames.length === 2)
    expect(frames).toEqual(['{"n":1}', '{"n":2}'])
    socket.close()
  })

  test('with ws+meta.nchan: the subprotocol is accepted and frames carry id and content-type', async () => {
    await publish({ n: 1 })
    const { frames, socket } = await connect(`?authorization=${access}`, ['ws+meta.nchan'])
    expect(socket.protocol).toBe('ws+meta.nchan')
    await until(() => frames.length === 1)
    expect(frames[0]).toBe(`id: ${h.clock.seconds}:0\ncontent-type: application/json\n\n{"n":1}`)
    socket.close()
  })

  test('?last_event_id= resumes after that message', async () => {
    for (let n = 0; n < 3; n++) await publish({ n })
    const { frames, socket } = await connect(`?authorization=${access}&last_event_id=${h.clock.seconds}:1`)
    await until(() => frames.length === 1)
    expect(frames).toEqual(['{"n":2}'])
    socket.close()
  })

  test('disconnects release the subscription', async () => {
    const { socket, closed } = await connect(`?authorization=${access}`)
    await until(() => h.hub.subscriptionCount === 1)
    socket.close()
    await closed
    await until(() => h.hub.subscriptionCount === 0)
  })
})

describe('WebSocket token lifetime', () => {
  test('the socket closes with 4003 when its token expires', async () => {
    const { closed } = await connect(`?authorization=${access}`)
    h.clock.advance(3600 + 31)
    expect(await closed).toMatchObject({ code: 4003 })
    expect(h.hub.subscriptionCount).toBe(0)
  })

  test('an in-band renewal keeps it open past the old token\'s expiry', async () => {
    const { socket, frames, closed } = await connect(`?authorization=${access}`)
    h.clock.advance(3000)
    const { access_token: renewed } = await h.login()
    socket.send(JSON.stringify({ op: 'token', token: renewed }))
    await Bun.sleep(30)
    h.clock.advance(3600 + 31 - 3000)
    await Bun.sleep(60)
    await publish({ still: 'open' })
    await until(() => frames.includes('{"still":"open"}'))
    h.clock.advance(3000)
    expect(await closed).toMatchObject({ code: 4003 })
  })

  test('a renewal with a bad token closes 4002; a message that is not a renewal closes 4004', async () => {
    const first = await connect(`?authorization=${access}`)
    first.socket.send(JSON.stringify({ op: 'token', token: 'garbage' }))
    expect(await first.closed).toMatchObject({ code: 4002 })
    const second = await connect(`?authorization=${access}`)
    second.socket.send('hello')
    expect(await second.closed).toMatchObject({ code: 4004 })
    await until(() => h.hub.subscriptionCount === 0)
  })

  test('logout closes the socket of that session', async () => {
    const { closed } = await connect(`?authorization=${access}`)
    await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access) })
    expect(await closed).toMatchObject({ code: 4002 })
  })
})
