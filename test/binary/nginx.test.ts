/**
 * The shipped nginx snippets under a real nginx, in front of the compiled binary.
 * The snippets are used as shipped; only the backend port, Asterisk's address, the recordings path
 * and the access log path are rewritten in temp copies, because those name places on a real PBX.
 * A WebSocket server stands in for Asterisk behind /pbxcore/softphone/ws.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { createCdrFixture } from '../cdr-fixture'
import { AsteriskStandIn } from './nginx-asterisk-stand-in'
import { freePort, NginxProcess } from './nginx-process'
import { BASE, BINARY, ServerProcess } from './server-process'

const RECORDINGS_URI = '/pbxcore/softphone/recordings'
const SIP_WS_URI = '/pbxcore/softphone/ws'
/** 201's inner call in the CDR fixture, where MikoPBX would put it (README "Recordings: check-media-access"). */
const RECORDING = '2026/11/23/09/L-inner.201.202.mp3'
/** The call of 202 and 203 (test/cdr-fixture.ts), not 201's. */
const OTHERS_RECORDING = '2026/11/23/10/L-other.202.203.mp3'
const OTHERS_BYTES = crypto.getRandomValues(new Uint8Array(4096))
/** The path tricks aim at this one, with the same bytes as RECORDING. */
const DECOY = 'call-201.mp3'
const RECORDING_BYTES = crypto.getRandomValues(new Uint8Array(4096))
/** Next to the recordings directory, outside it: no URI may serve it. */
const OUTSIDE = 'secret.mp3'
const OUTSIDE_TEXT = 'not a recording: outside the aliased directory'
const USER = '201'
const PASSWORD = 'nginx-test-secret'
const OTHER_USER = '203'

let server: ServerProcess
let nginx: NginxProcess | null = null
let asterisk: AsteriskStandIn | null = null
let nginxUrl = ''
let accessLog = ''
let tokens: { access_token: string; refresh_token: string }
/** Every token this file obtains, so the log check covers them all. */
const issued: string[] = []

beforeAll(async () => {
  nginx = new NginxProcess()
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run bun run build.ts --host first`)
  accessLog = nginx.accessLog
  for (const [relative, bytes] of [[RECORDING, RECORDING_BYTES], [OTHERS_RECORDING, OTHERS_BYTES], [DECOY, RECORDING_BYTES]] as const) {
    mkdirSync(dirname(join(nginx.recordings, relative)), { recursive: true, mode: 0o755 })
    writeFileSync(join(nginx.recordings, relative), bytes, { mode: 0o644 })
  }
  const cdrPath = join(nginx.prefix, 'cdr.db')
  createCdrFixture(cdrPath)
  mkdirSync(join(nginx.recordings, 'sub'), { mode: 0o755 })
  writeFileSync(join(nginx.prefix, OUTSIDE), OUTSIDE_TEXT, { mode: 0o644 })

  server = new ServerProcess()
  await server.addUser(USER, PASSWORD)
  await server.addUser(OTHER_USER, PASSWORD)
  await server.start(['--cdr-db', cdrPath])
  asterisk = new AsteriskStandIn()
  await nginx.start({
    backendPort: server.port,
    asteriskPort: asterisk.port,
    // Like a PBX's own rules: a regex location that would serve recordings if it won.
    serverConfig: `        location ~* \\.(mp3|wav)$ { root ${nginx.recordings}; }`,
  })
  nginxUrl = nginx.url
  tokens = await login()
}, 30_000)

afterAll(async () => {
  await nginx?.cleanup()
  asterisk?.stop()
  await server?.cleanup()
})

async function login(password = PASSWORD, headers: Record<string, string> = {}, username = USER): Promise<{ access_token: string; refresh_token: string }> {
  const response = await fetch(`${nginxUrl}${BASE}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ username, password }),
  })
  expect(response.status).toBe(200)
  const body = (await response.json()) as { access_token: string; refresh_token: string }
  issued.push(body.access_token, body.refresh_token)
  return body
}

const recording = (query = '', headers: Record<string, string> = {}) =>
  fetch(`${nginxUrl}${RECORDINGS_URI}/${RECORDING}${query}`, { headers })

async function expectRecording(response: Response): Promise<void> {
  expect(response.status).toBe(200)
  expect(new Uint8Array(await response.arrayBuffer())).toEqual(RECORDING_BYTES)
}

test('login through nginx returns tokens', async () => {
  const response = await fetch(`${nginxUrl}${BASE}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: USER, password: PASSWORD }),
  })
  expect(response.status).toBe(200)
  const body = (await response.json()) as Record<string, unknown>
  expect(body).toMatchObject({ success: true, token_type: 'Bearer' })
  expect(typeof body.access_token).toBe('string')
  expect(typeof body.refresh_token).toBe('string')
  issued.push(body.access_token as string, body.refresh_token as string)
})

test('recording with ?authorization=<access> is served', async () => {
  await expectRecording(await recording(`?authorization=${tokens.access_token}`))
})

test('recording with an Authorization: Bearer header is served', async () => {
  await expectRecording(await recording('', { authorization: `Bearer ${tokens.access_token}` }))
})

test('recording with an access_token cookie is served', async () => {
  await expectRecording(await recording('', { cookie: `access_token=${tokens.access_token}` }))
})

test("a recording is served to the parties of its call and refused (403) to another user", async () => {
  const other = await login(PASSWORD, {}, OTHER_USER)
  const othersRecording = (token: string) => fetch(`${nginxUrl}${RECORDINGS_URI}/${OTHERS_RECORDING}?authorization=${token}`)
  const response = await othersRecording(other.access_token)
  expect(response.status).toBe(200)
  expect(new Uint8Array(await response.arrayBuffer())).toEqual(OTHERS_BYTES)
  const refused = await othersRecording(tokens.access_token)
  expect(refused.status).toBe(403)
  expect(new Uint8Array(await refused.arrayBuffer())).not.toEqual(OTHERS_BYTES)
  expect((await recording(`?authorization=${other.access_token}`)).status).toBe(403)
  expect(server.stdout).toContain('recordings: a user opens only its own calls')
})

test('recording without a token is 401 with a Bearer challenge', async () => {
  const response = await recording()
  expect(response.status).toBe(401)
  expect(response.headers.get('www-authenticate') ?? '').toStartWith('Bearer realm="softphone"')
})

test('recording with a garbage token is 401', async () => {
  expect((await recording('?authorization=not.a.token')).status).toBe(401)
})

test('recording with a refresh token is 403', async () => {
  expect((await recording(`?authorization=${tokens.refresh_token}`)).status).toBe(403)
})

test('after logout through nginx the access token no longer opens recordings', async () => {
  const own = await login()
  await expectRecording(await recording(`?authorization=${own.access_token}`))
  const logout = await fetch(`${nginxUrl}${BASE}/auth/logout`, {
    method: 'POST',
    headers: { authorization: `Bearer ${own.access_token}` },
  })
  expect(logout.status).toBe(200)
  expect((await recording(`?authorization=${own.access_token}`)).status).toBe(401)
})

/**
 * The request target exactly as written (fetch would resolve the dot segments first), from its own
 * loopback address so that its security-log line is not coalesced with another's.
 */
function rawGet(target: string, from: string): Promise<{ status: number; response: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect({ host: '127.0.0.1', port: nginx!.port, localAddress: from }, () =>
      socket.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    )
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('end', () => {
      const response = Buffer.concat(chunks)
      resolve({ status: Number(response.subarray(9, 12).toString()), response })
    })
    socket.on('error', reject)
  })
}

function mediaDenialsFrom(ip: string): string[] {
  const securityLog = join(server.dataDir, 'log', 'security.log')
  return readFileSync(securityLog, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { event: string; ip?: string; reason?: string })
    .filter((event) => event.event === 'MEDIA_ACCESS_DENIED' && event.ip === ip)
    .map((event) => event.reason ?? '')
}

describe('path tricks never serve a file with a valid token', () => {
  // nginx resolves dot segments and %2f itself before choosing a location: the tricks that leave
  // the recordings location never reach the backend (the PBX-like regex location finds nothing),
  // and those that stay in it reach check-media-access with the raw URI, which refuses them.
  const tricks = [
    ['sub/../call-201.mp3', 403, 'path has a dot segment'],
    ['sub/%2e%2e/call-201.mp3', 403, 'path has a dot segment'],
    ['sub/.%2E/call-201.mp3', 403, 'path has a dot segment'],
    ['%2e/call-201.mp3', 403, 'path has a dot segment'],
    ['sub%2f..%2fcall-201.mp3', 403, 'path has an encoded slash'],
    ['..%5csecret.mp3', 403, 'path has an encoded slash'],
    ['sub\\..\\call-201.mp3', 403, 'path has a backslash'],
    ['/call-201.mp3', 403, 'path has a double slash'],
    ['sub//../call-201.mp3', 403, 'path has a double slash'],
    ['../secret.mp3', 404, null],
    ['%2e%2e/secret.mp3', 404, null],
    ['.%2E/secret.mp3', 404, null],
    ['..%2fsecret.mp3', 404, null],
    ['..%2f..%2f..%2fsecret.mp3', 404, null],
    ['call-201.mp3%00', 400, null],
  ] as const
  tricks.forEach(([path, status, reason], index) => {
    test(`${path} → ${status}${reason ? `, ${reason}` : ', not from the backend'}`, async () => {
      const from = `127.0.0.${index + 10}`
      const { status: got, response } = await rawGet(`${RECORDINGS_URI}/${path}?authorization=${tokens.access_token}`, from)
      expect(got).toBe(status)
      expect(response.includes(OUTSIDE_TEXT)).toBe(false)
      expect(response.includes(Buffer.from(RECORDING_BYTES))).toBe(false)
      expect(mediaDenialsFrom(from)).toEqual(reason ? [reason] : [])
    })
  })

  test('the same raw request without a trick is served', async () => {
    const { status, response } = await rawGet(`${RECORDINGS_URI}/${RECORDING}?authorization=${tokens.access_token}`, '127.0.0.9')
    expect(status).toBe(200)
    expect(response.includes(Buffer.from(RECORDING_BYTES))).toBe(true)
  })
})

test('publishing through nginx is refused', async () => {
  const response = await fetch(`${nginxUrl}${BASE}/pub/users-state`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ states: {} }),
  })
  expect(response.status).toBe(403)
})

test('ingesting a snapshot through nginx is refused by nginx itself, before the backend reads a byte', async () => {
  const response = await fetch(`${nginxUrl}${BASE}/internal/monitor-snapshot/users-state`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ schemaVersion: 2, kind: 'full' }),
  })
  expect(response.status).toBe(403)
  // The backend would have answered its JSON envelope.
  expect(response.headers.get('content-type')).not.toContain('application/json')
})

test('a subscription through nginx works for a client that calls the PBX by a short name', async () => {
  // Elysia 1.4 misreads paths behind a Host of three characters or fewer; the snippet sends its own.
  const published = await fetch(`${server.baseUrl}/pub/contacts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ via: 'nginx' }),
  })
  expect(published.status).toBe(200)
  const response = await fetch(`${nginxUrl}${BASE}/sub/contacts?authorization=${tokens.access_token}`, { headers: { host: 'pbx' } })
  expect(response.status).toBe(200)
  expect(await response.json()).toEqual({ via: 'nginx' })
})

/**
 * A WebSocket opening handshake (RFC 6455 §4.1) offering the SIP subprotocol, sent raw so that a
 * refusal's status can be read; resolves with the response head.
 */
function rawUpgrade(target: string, port = nginx!.port): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    let received = ''
    const socket = connect({ host: '127.0.0.1', port }, () =>
      socket.write(
        `GET ${target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n\r\n',
      ),
    )
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      received += chunk
      const end = received.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.destroy()
      resolve({ status: Number(received.slice(9, 12)), head: received.slice(0, end) })
    })
    socket.on('error', reject)
  })
}

function openSipSocket(query: string): Promise<WebSocket> {
  const socket = new WebSocket(`ws://127.0.0.1:${nginx!.port}${SIP_WS_URI}${query}`, ['sip'])
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve(socket)
    socket.onerror = () => reject(new Error(`${SIP_WS_URI} was not upgraded`))
  })
}

const nextMessage = (socket: WebSocket) =>
  new Promise<string>((resolve) => socket.addEventListener('message', (event) => resolve(String(event.data)), { once: true }))

async function closeSocket(socket: WebSocket): Promise<void> {
  const closed = new Promise((resolve) => socket.addEventListener('close', resolve, { once: true }))
  socket.close()
  await closed
}

describe('SIP over WebSocket to Asterisk', () => {
  for (const parameter of ['authorization', 'token']) {
    test(`?${parameter}=<access> is upgraded, frames echo through, and Asterisk sees no token`, async () => {
      const own = await login()
      const before = asterisk!.requests.length
      const socket = await openSipSocket(`?${parameter}=${own.access_token}`)
      expect(socket.protocol).toBe('sip')
      const register = 'REGISTER sip:pbx SIP/2.0\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n\r\n'
      const echoed = nextMessage(socket)
      socket.send(register)
      expect(await echoed).toBe(register)
      await closeSocket(socket)

      expect(asterisk!.requests.length).toBe(before + 1)
      const seen = asterisk!.requests.at(-1)!
      expect(seen.target).toBe('/asterisk/ws')
      expect(seen.headers.upgrade).toBe('websocket')
      expect(seen.headers['x-real-ip']).toBe('127.0.0.1')
      expect(seen.headers.authorization).toBeUndefined()
      const everything = JSON.stringify(seen)
      expect(everything.includes(own.access_token)).toBe(false)
      expect(everything.includes(own.access_token.split('.')[2]!)).toBe(false)
    })
  }

  const headerCredentials = [
    ['an Authorization header', () => ({ authorization: `Bearer ${tokens.access_token}` })],
    ['an access_token cookie', () => ({ cookie: `access_token=${tokens.access_token}` })],
  ] as const
  for (const [what, credential] of headerCredentials) {
    test(`${what} is checked, the token alone (a client's X-Original-URI is dropped), and kept from Asterisk`, async () => {
      const before = asterisk!.requests.length
      // Bun's WebSocket client takes headers; a browser's cannot, which is why apps use the query.
      // A passed-on X-Original-URI outside the recordings would be refused with 403.
      const socket = new WebSocket(`ws://127.0.0.1:${nginx!.port}${SIP_WS_URI}`, {
        headers: { ...credential(), 'x-original-uri': '/elsewhere' },
      })
      await new Promise((resolve, reject) => {
        socket.onopen = resolve
        socket.onerror = () => reject(new Error(`${SIP_WS_URI} was not upgraded`))
      })
      await closeSocket(socket)
      expect(asterisk!.requests.length).toBe(before + 1)
      const seen = asterisk!.requests.at(-1)!
      expect(seen.headers.authorization).toBeUndefined()
      expect(seen.headers.cookie).toBeUndefined()
      expect(JSON.stringify(seen).includes(tokens.access_token)).toBe(false)
    })
  }

  const refusals = [
    ['no token', () => '', 401],
    ['a garbage token', () => '?authorization=not.a.token', 401],
    ['a refresh token', () => `?authorization=${tokens.refresh_token}`, 403],
    ['two tokens', () => `?authorization=${tokens.access_token}&token=${tokens.access_token}`, 401],
  ] as const
  for (const [what, query, status] of refusals) {
    test(`${what} → ${status}, and nothing reaches Asterisk`, async () => {
      const before = asterisk!.requests.length
      const { status: got, head } = await rawUpgrade(`${SIP_WS_URI}${query()}`)
      expect(got).toBe(status)
      expect(head.toLowerCase()).not.toContain('upgrade: websocket')
      // nginx passes the backend's challenge on with a 401 only.
      if (status === 401) expect(head.toLowerCase()).toContain('www-authenticate: bearer realm="softphone"')
      expect(asterisk!.requests.length).toBe(before)
    })
  }

  test('a logged-out access token → 401, and nothing reaches Asterisk', async () => {
    const own = await login()
    const logout = await fetch(`${nginxUrl}${BASE}/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${own.access_token}` } })
    expect(logout.status).toBe(200)
    const before = asterisk!.requests.length
    expect((await rawUpgrade(`${SIP_WS_URI}?authorization=${own.access_token}`)).status).toBe(401)
    expect(asterisk!.requests.length).toBe(before)
  })
})

describe('with the backend down, nginx fails closed', () => {
  let orphan: NginxProcess

  beforeAll(async () => {
    orphan = new NginxProcess()
    mkdirSync(dirname(join(orphan.recordings, RECORDING)), { recursive: true, mode: 0o755 })
    writeFileSync(join(orphan.recordings, RECORDING), RECORDING_BYTES, { mode: 0o644 })
    // Nothing listens on the backend port: every auth_request subrequest fails to connect.
    await orphan.start({ backendPort: freePort(), asteriskPort: asterisk!.port })
  })

  afterAll(() => orphan.cleanup())

  test('a recording is not served (500)', async () => {
    const response = await fetch(`${orphan.url}${RECORDINGS_URI}/${RECORDING}?authorization=${tokens.access_token}`)
    expect(response.status).toBe(500)
    expect(Buffer.from(await response.arrayBuffer()).includes(Buffer.from(RECORDING_BYTES))).toBe(false)
  })

  test('the SIP WebSocket is not upgraded (500) and nothing reaches Asterisk', async () => {
    const before = asterisk!.requests.length
    const { status } = await rawUpgrade(`${SIP_WS_URI}?authorization=${tokens.access_token}`, orphan.port)
    expect(status).toBe(500)
    expect(asterisk!.requests.length).toBe(before)
  })
})

test('the access log masks tokens', async () => {
  // Both parameter names, repeated, so every masking branch has a line to prove it.
  await recording(`?token=${tokens.access_token}`)
  await recording(`?x=1&authorization=${tokens.access_token}&token=${tokens.refresh_token}`)
  let log = ''
  // nginx writes the line after sending the response.
  // An upgraded connection's line is written when it closes.
  const lines = ['?x=1&authorization=***', `${SIP_WS_URI}?authorization=*** HTTP/1.1`, `${SIP_WS_URI}?token=*** HTTP/1.1`]
  for (let i = 0; i < 40 && !lines.every((line) => log.includes(line)); i++) {
    await Bun.sleep(25)
    log = readFileSync(accessLog, 'utf8')
  }
  expect(log).toContain('authorization=***')
  expect(log).toContain('token=***')
  for (const line of lines) expect(log).toContain(line)
  expect(issued.length).toBeGreaterThan(0)
  for (const token of issued) {
    expect(log.includes(token)).toBe(false)
    // The signature alone is the secret part; it must not appear either.
    expect(log.includes(token.split('.')[2]!)).toBe(false)
  }
})

test('a client-sent X-Forwarded-For or X-Real-IP does not become the client IP', async () => {
  const spoofed = { 'x-forwarded-for': '1.2.3.4', 'x-real-ip': '1.2.3.4', forwarded: 'for=1.2.3.4' }
  const response = await fetch(`${nginxUrl}${BASE}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...spoofed },
    body: JSON.stringify({ username: USER, password: 'wrong-password' }),
  })
  expect(response.status).toBe(401)
  const securityLog = join(server.dataDir, 'log', 'security.log')
  let failures: { ip?: string }[] = []
  for (let i = 0; i < 40 && failures.length === 0; i++) {
    if (existsSync(securityLog)) {
      const events = readFileSync(securityLog, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { event: string; ip?: string })
      failures = events.filter((event) => event.event === 'AUTH_FAILED')
    }
    if (failures.length === 0) await Bun.sleep(25)
  }
  expect(failures.length).toBe(1)
  expect(failures[0]!.ip).toBe('127.0.0.1')
  expect(readFileSync(securityLog, 'utf8')).not.toContain('1.2.3.4')
})
