/**
 * Routing doesn't depend on the Host header: over a real socket, every Host value (short, empty,
 * absent with HTTP/1.0, bracketed IPv6, long) × route × method gets the same answer.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { connect } from 'node:net'
import { BASE, createHarness, type Harness } from '../helpers'

let h: Harness
let access: string
beforeAll(async () => {
  h = await createHarness({ listen: true })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
  ;({ access_token: access } = await h.login())
  const published = await fetch(`${h.url}${BASE}/pub/contacts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' })
  expect(published.status).toBe(200)
})
afterAll(() => h.close())

interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/** Sends one request as written (no client fills in a Host) and reads the status, headers and body. */
function raw(requestLine: string, headerLines: string[]): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(h.url).port), '127.0.0.1')
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk) => {
      text += chunk
      const end = text.indexOf('\r\n\r\n')
      if (end === -1) return
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
      const headers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
      const status = Number(statusLine!.split(' ')[1])
      const length = Number(headers['content-length'] ?? 0)
      // A 101 has no body; anything else is read to its length.
      if (status !== 101 && text.length < end + 4 + length) return
      socket.destroy()
      resolve({ status, headers, body: text.slice(end + 4, end + 4 + length) })
    })
    socket.on('error', reject)
    socket.write(`${requestLine}\r\n${[...headerLines, 'Connection: close'].map((line) => `${line}\r\n`).join('')}\r\n`)
  })
}

const HOSTS: Array<[string, string[]]> = [
  ['Host: pbx', ['Host: pbx']],
  ['Host: a', ['Host: a']],
  ['an empty Host', ['Host: ']],
  ['Host: [::1]', ['Host: [::1]']],
  ['Host: 127.0.0.1:<port>', []],
  ['a long Host', ['Host: softphone.pbx.example.org:8443']],
]

describe.each(HOSTS)('with %s', (_name, hostLines) => {
  const send = (method: string, path: string, extra: string[] = []) =>
    raw(`${method} ${BASE}${path} HTTP/1.1`, [...(hostLines.length ? hostLines : [`Host: 127.0.0.1:${new URL(h.url).port}`]), ...extra])

  test('known routes answer', async () => {
    expect((await send('GET', '/health')).status).toBe(200)
    expect((await send('GET', '/profile', [`Authorization: Bearer ${access}`])).status).toBe(200)
  })

  test.each([
    ['DELETE', '/health', 'GET'],
    ['POST', '/profile', 'GET'],
    ['GET', '/auth/login', 'POST'],
    ['PUT', '/sub/contacts', 'GET'],
    ['GET', '/pub/contacts', 'POST'],
    ['POST', '/sessions/AAAAAAAAAAAAAAAAAAAAAA', 'DELETE'],
  ])('%s %s is 405 with Allow: %s', async (method, path, allow) => {
    const response = await send(method, path)
    expect(response.status).toBe(405)
    expect(response.headers['allow']).toBe(allow)
    expect(JSON.parse(response.body)).toMatchObject({ success: false, code: 'method_not_allowed' })
  })

  test('an unknown path is 404', async () => {
    const response = await send('GET', '/nowhere')
    expect(response.status).toBe(404)
    expect(JSON.parse(response.body)).toMatchObject({ code: 'not_found' })
  })

  test('sub/<channel> works on every transport', async () => {
    const missing = await send('GET', '/sub/contacts')
    expect(missing.status).toBe(401)
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="softphone"')
    const poll = await send('GET', `/sub/contacts?authorization=${access}`)
    expect(poll.status).toBe(200)
    expect(poll.body).toBe('{"n":1}')
    const stream = await send('GET', `/sub/contacts?authorization=${access}`, ['Accept: text/event-stream'])
    expect(stream.status).toBe(200)
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    const socket = await send('GET', `/sub/contacts?authorization=${access}`, [
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Version: 13',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Protocol: ws+meta.nchan',
    ])
    expect(socket.status).toBe(101)
    expect(socket.headers['sec-websocket-protocol']).toBe('ws+meta.nchan')
    expect((await send('GET', `/sub/nowhere?authorization=${access}`)).status).toBe(404)
  })
})

describe('HTTP/1.0 without Host', () => {
  const send = (method: string, path: string, extra: string[] = []) => raw(`${method} ${BASE}${path} HTTP/1.0`, extra)

  test('routes, 405 and 404 are as with a Host', async () => {
    expect((await send('GET', '/health')).status).toBe(200)
    const wrongMethod = await send('DELETE', '/health')
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers['allow']).toBe('GET')
    expect((await send('GET', '/nowhere')).status).toBe(404)
  })

  test('sub/<channel> long-poll and EventSource', async () => {
    expect((await send('GET', '/sub/contacts')).status).toBe(401)
    expect((await send('GET', `/sub/contacts?token=${access}`)).body).toBe('{"n":1}')
    expect((await send('GET', `/sub/contacts?token=${access}`, ['Accept: text/event-stream'])).status).toBe(200)
  })
})
