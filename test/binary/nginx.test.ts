/**
 * The shipped nginx snippets under a real nginx, in front of the compiled binary.
 * The snippets are used as shipped; only the backend port, the recordings path and the access log
 * path are rewritten in temp copies, because those name places on a real PBX.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { dirname, join } from 'node:path'
import { createCdrFixture } from '../cdr-fixture'
import { NginxProcess } from './nginx-process'
import { BASE, BINARY, ServerProcess } from './server-process'

const RECORDINGS_URI = '/pbxcore/softphone/recordings'
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
  await nginx.start({
    backendPort: server.port,
    // Like a PBX's own rules: a regex location that would serve recordings if it won.
    serverConfig: `        location ~* \\.(mp3|wav)$ { root ${nginx.recordings}; }`,
  })
  nginxUrl = nginx.url
  tokens = await login()
}, 30_000)

afterAll(async () => {
  await nginx?.cleanup()
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

test('the access log masks tokens', async () => {
  // Both parameter names, repeated, so every masking branch has a line to prove it.
  await recording(`?token=${tokens.access_token}`)
  await recording(`?x=1&authorization=${tokens.access_token}&token=${tokens.refresh_token}`)
  let log = ''
  // nginx writes the line after sending the response.
  for (let i = 0; i < 40 && !log.includes('?x=1&authorization=***'); i++) {
    await Bun.sleep(25)
    log = readFileSync(accessLog, 'utf8')
  }
  expect(log).toContain('authorization=***')
  expect(log).toContain('token=***')
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
