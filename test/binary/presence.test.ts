/**
 * Presence through the compiled binary and real sockets: who may publish (loopback variants, and a
 * peer in its own network namespace), a quiet EventSource stream outliving idle timeouts, release
 * of subscribers and descriptors after 1 000 connect/disconnect cycles, and shutdown with streams open.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { followStream, ServerProcess } from './server-process'

const PASSWORD = 'Pw-presence'

async function started(args: string[] = []): Promise<{ server: ServerProcess; token: string }> {
  const server = new ServerProcess()
  await server.addUser('201', PASSWORD)
  await server.start(args)
  return { server, token: (await server.login('201', PASSWORD)).access_token }
}

const publish = (base: string, channel: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/pub/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

describe('publishing is for loopback peers without proxy headers', () => {
  let dual: ServerProcess
  beforeAll(async () => ({ server: dual } = await started(['--host', '::'])))
  afterAll(() => dual.cleanup())

  test('127.0.0.1 (seen as ::ffff:127.0.0.1 on a dual-stack socket) and ::1 may publish', async () => {
    for (const host of ['127.0.0.1', '[::1]']) {
      const response = await publish(`http://${host}:${dual.port}${dual.baseUrl.slice(dual.url.length)}`, 'contacts', { from: host })
      expect({ host, status: response.status }).toEqual({ host, status: 200 })
    }
  })

  test('a loopback request carrying X-Real-IP, X-Forwarded-For or Forwarded is refused', async () => {
    const proxied: Array<Record<string, string>> = [{ 'x-real-ip': '127.0.0.1' }, { 'x-forwarded-for': '127.0.0.1' }, { forwarded: 'for=127.0.0.1' }]
    for (const headers of proxied) {
      expect((await publish(`http://127.0.0.1:${dual.port}${dual.baseUrl.slice(dual.url.length)}`, 'contacts', { a: 1 }, headers)).status).toBe(403)
    }
  })
})

describe('a peer on another host (a network namespace of its own)', () => {
  const suffix = String(process.pid % 100000)
  const namespace = `sb${suffix}`
  const [hostIf, peerIf] = [`sbh${suffix}`, `sbp${suffix}`]
  const octet = (process.pid % 250) + 1
  const [hostIp, peerIp] = [`10.231.${octet}.1`, `10.231.${octet}.2`]
  let server: ServerProcess

  const sh = (...command: string[]) => {
    const result = Bun.spawnSync(command, { stderr: 'pipe' })
    if (result.exitCode !== 0) throw new Error(`${command.join(' ')}: ${result.stderr.toString()}`)
  }
  beforeAll(async () => {
    sh('ip', 'netns', 'add', namespace)
    sh('ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf)
    sh('ip', 'link', 'set', peerIf, 'netns', namespace)
    sh('ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostIf)
    sh('ip', 'link', 'set', hostIf, 'up')
    sh('ip', 'netns', 'exec', namespace, 'ip', 'addr', 'add', `${peerIp}/30`, 'dev', peerIf)
    sh('ip', 'netns', 'exec', namespace, 'ip', 'link', 'set', peerIf, 'up')
    ;({ server } = await started(['--host', hostIp]))
  })
  afterAll(async () => {
    await server?.cleanup()
    Bun.spawnSync(['ip', 'netns', 'del', namespace])
    Bun.spawnSync(['ip', 'link', 'del', hostIf])
  })

  /** Runs fetch from inside the namespace, with the same Bun. */
  function fetchFromPeer(path: string, init: { method: string; body?: string; headers?: Record<string, string> }): { status: number; body: string } {
    const script = `const r = await fetch(${JSON.stringify(`${server.baseUrl}${path}`)}, ${JSON.stringify(init)}); console.log(JSON.stringify({ status: r.status, body: await r.text() }))`
    const result = Bun.spawnSync(['ip', 'netns', 'exec', namespace, process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' })
    if (result.exitCode !== 0) throw new Error(result.stderr.toString())
    return JSON.parse(result.stdout.toString())
  }

  test('its publish is refused with 403, while other routes answer it', () => {
    expect(fetchFromPeer('/health', { method: 'GET' }).status).toBe(200)
    const refused = fetchFromPeer('/pub/contacts', { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
    expect(refused.status).toBe(403)
    expect(JSON.parse(refused.body).code).toBe('publish_forbidden')
  })

  test('its X-Real-IP is ignored: it is no trusted proxy', () => {
    fetchFromPeer('/auth/login', {
      method: 'POST',
      body: JSON.stringify({ username: '201', password: 'wrong' }),
      headers: { 'content-type': 'application/json', 'x-real-ip': '198.51.100.1' },
    })
    const log = readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line))
    expect(log.at(-1)).toMatchObject({ event: 'AUTH_FAILED', ip: peerIp })
  })
})

describe('streams', () => {
  let server: ServerProcess
  let token: string
  beforeAll(async () => ({ server, token } = await started()))
  afterAll(() => server.cleanup())

  const openFds = () => readdirSync(`/proc/${server.pid}/fd`).length

  test('1 000 subscribe/disconnect cycles leave no subscriber and no descriptor behind', async () => {
    await Bun.sleep(200)
    const baseline = openFds()
    for (let batch = 0; batch < 20; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const abort = new AbortController()
          const response = await fetch(`${server.baseUrl}/sub/contacts?authorization=${token}`, {
            // No client-side connection pool: every descriptor left open would be the server's.
            headers: { accept: 'text/event-stream', connection: 'close' },
            signal: abort.signal,
          })
          const reader = response.body!.getReader()
          await reader.read()
          abort.abort()
          await reader.cancel().catch(() => {})
        }),
      )
    }
    let subscribers = -1
    for (let i = 0; i < 100 && subscribers !== 0; i++) {
      await Bun.sleep(20)
      subscribers = (await (await publish(server.baseUrl, 'users-state', { probe: i })).json()).subscribers
    }
    expect(subscribers).toBe(0)
    let fds = openFds()
    for (let i = 0; i < 100 && fds > baseline + 2; i++) {
      await Bun.sleep(20)
      fds = openFds()
    }
    expect(fds).toBeLessThanOrEqual(baseline + 2)
  }, 60_000)

  test('a quiet EventSource stream survives 60 s (past Bun\'s and Elysia\'s idle timeouts) on heartbeats', async () => {
    const response = await fetch(`${server.baseUrl}/sub/active-calls?authorization=${token}`, { headers: { accept: 'text/event-stream' } })
    const follower = followStream(response)
    await Bun.sleep(61_000)
    expect(follower.text().match(/: heartbeat\n\n/g)?.length ?? 0).toBeGreaterThanOrEqual(3)
    await publish(server.baseUrl, 'active-calls', { after: 'a quiet minute' })
    for (let i = 0; i < 100 && !follower.text().includes('a quiet minute'); i++) await Bun.sleep(10)
    expect(follower.text()).toContain('data: {"after":"a quiet minute"}')
    await follower.stop()
  }, 90_000)

  test('SIGTERM: streams get their final event or close frame, polls an answer, and the process exits 0 quickly', async () => {
    const sse = await fetch(`${server.baseUrl}/sub/contacts?authorization=${token}`, { headers: { accept: 'text/event-stream' } })
    const ws = new WebSocket(`${server.baseUrl.replace('http', 'ws')}/sub/contacts?authorization=${token}`)
    await new Promise((resolve) => ws.addEventListener('open', resolve))
    const wsClosed = new Promise<number>((resolve) => ws.addEventListener('close', (event) => resolve(event.code)))
    const poll = fetch(`${server.baseUrl}/sub/users-state?authorization=${token}`, { headers: { 'if-modified-since': new Date().toUTCString(), 'if-none-match': '99' } })
    await Bun.sleep(200)
    const started = Date.now()
    server.signal('SIGTERM')
    const text = await new Response(sse.body).text()
    expect(text).toContain('event: close\ndata: {"reason":"shutdown"}')
    expect(await wsClosed).toBe(1001)
    expect((await poll).status).toBe(503)
    expect(await server.stop('SIGTERM')).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
  }, 20_000)
})
