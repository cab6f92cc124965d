/**
 * nchan's own JavaScript client (npm `nchan` 1.0.10, NchanSubscriber.js), unchanged, in a real
 * headless Chromium, against the compiled binary behind nginx with the shipped snippets: one case
 * per transport (long-poll, EventSource, WebSocket). The page is served by the same nginx, so it is
 * same-origin with the API, as on a PBX (long-poll reads Last-Modified/Etag; there is no CORS).
 * Publishing goes straight to the backend on 127.0.0.1, as the PBX's producers do.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { NginxProcess } from './nginx-process'
import { BASE, BINARY, ServerProcess } from './server-process'

const CHROMIUM = '/usr/bin/chromium'
/** No internet here: without the background-networking flags Chromium floods refused connections. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
const FIXTURE = resolve(import.meta.dir, 'fixtures/nchan-test.html')
const LIBRARY = resolve(import.meta.dir, '../../node_modules/nchan/NchanSubscriber.js')
const USER = '201'
const PASSWORD = 'nchan-client-secret'
const WAIT_MS = 10_000
const PAUSE_MS = 150
/** nchan's id text, `<unix seconds>:<tag>`. */
const ID = /^(\d+):(\d+)$/

type Transport = 'longpoll' | 'eventsource' | 'websocket'

/** What the fixture page keeps on window.nchanTest. */
interface Received {
  sub: number
  message: string
  id: string | null | undefined
  contentType: string | null | undefined
}
interface NchanTestPage {
  received: Received[]
  events: { sub: number; event: string; detail?: string }[]
  startSubscriber(url: string, transport: Transport, lastId?: string): number
  stopSubscriber(n: number): string | null | undefined
  library: unknown
}
declare global {
  /** Only in the fixture page (page.evaluate / waitForFunction bodies run there). */
  var nchanTest: NchanTestPage
}

/** A request the page made to /sub/, as Chromium sent it. */
interface SentRequest {
  url: string
  headers: Record<string, string>
}

interface Published {
  body: string
  testId: string
  /** The id the backend answered the publish with. */
  id: string
}

let server: ServerProcess
let nginx: NginxProcess | null = null
let browser: Browser | null = null
let token = ''

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (CI installs it)`)
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run bun run build.ts --host first`)
  if (!existsSync(LIBRARY)) throw new Error(`${LIBRARY} is missing: npm ci (nchan is a devDependency)`)

  server = new ServerProcess()
  await server.addUser(USER, PASSWORD)
  await server.start()
  token = (await server.login(USER, PASSWORD)).access_token

  nginx = new NginxProcess()
  const www = join(nginx.prefix, 'www')
  mkdirSync(www, { mode: 0o755 })
  copyFileSync(FIXTURE, join(www, 'nchan-test.html'))
  copyFileSync(LIBRARY, join(www, 'NchanSubscriber.js'))
  await nginx.start({
    backendPort: server.port,
    serverConfig: `
        location = /nchan-test.html { root ${www}; types { } default_type text/html; }
        location = /NchanSubscriber.js { root ${www}; types { } default_type application/javascript; }`,
  })

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
}, 60_000)

afterAll(async () => {
  await browser?.close().catch(() => {})
  await nginx?.cleanup()
  await server?.cleanup()
})

const mask = (text: string) => (token ? text.replaceAll(token, '***') : text)

interface PageRun {
  page: Page
  /** What the library sent and got on /sub/, for failure reports. */
  trace: string[]
  requests: SentRequest[]
}

/** Runs a case on a fresh page; any failure carries what the library saw and sent. */
async function withPage(body: (run: PageRun) => Promise<void>): Promise<void> {
  const run = await openPage()
  try {
    await body(run)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    if (message.includes('library events:')) throw error
    throw new Error(`${message}\n${await diagnostics(run.page, run.trace).catch(() => run.trace.join('\n'))}`)
  } finally {
    await run.page.close()
  }
}

/** A fresh page from nginx, tracing the page's requests to /sub/. */
async function openPage(): Promise<PageRun> {
  const page = await browser!.newPage()
  const trace: string[] = []
  const requests: SentRequest[] = []
  const interesting = /^(accept|if-modified-since|if-none-match|etag|last-event-id|last-modified|content-type|sec-websocket-protocol)$/
  const pick = (headers: Record<string, string>) =>
    Object.entries(headers)
      .filter(([name]) => interesting.test(name))
      .map(([name, value]) => `${name}: ${value}`)
      .join('; ')
  page.on('request', (request) => {
    if (!request.url().includes('/sub/')) return
    // headers(), not allHeaders(): the latter waits for the raw headers, which a held poll doesn't have yet.
    const headers = request.headers()
    requests.push({ url: request.url(), headers })
    trace.push(mask(`> ${request.method()} ${request.url()} [${pick(headers)}]`))
  })
  page.on('response', async (response) => {
    if (!response.url().includes('/sub/')) return
    const headers = await response.allHeaders().catch(() => response.headers())
    trace.push(mask(`< ${response.status()} ${response.url()} [${pick(headers)}]`))
  })
  page.on('requestfailed', (request) => {
    if (request.url().includes('/sub/')) trace.push(mask(`x ${request.url()} ${request.failure()?.errorText ?? ''}`))
  })
  page.on('websocket', (socket) => {
    trace.push(mask(`ws open ${socket.url()}`))
    socket.on('framereceived', ({ payload }) => trace.push(`ws < ${JSON.stringify(String(payload))}`))
    socket.on('framesent', ({ payload }) => trace.push(`ws > ${JSON.stringify(String(payload))}`))
    socket.on('close', () => trace.push('ws close'))
  })
  page.on('pageerror', (error) => trace.push(`page error: ${error.message}`))
  await page.goto(`${nginx!.url}/nchan-test.html`)
  expect(await page.evaluate(() => nchanTest.library)).toBe('function')
  return { page, trace, requests }
}

const subscribeUrl = (channel: string) => `${nginx!.url}${BASE}/sub/${channel}?authorization=${token}`

async function startSubscriber(page: Page, channel: string, transport: Transport, lastId?: string): Promise<number> {
  return page.evaluate(([url, transport, lastId]) => nchanTest.startSubscriber(url, transport, lastId), [subscribeUrl(channel), transport, lastId] as [
    string,
    Transport,
    string | undefined,
  ])
}

/** Publishes straight to the backend (nginx refuses pub/), as a producer on the PBX does. */
async function publish(channel: string, n: number): Promise<Published> {
  const testId = crypto.randomUUID()
  const body = JSON.stringify({ event: `${channel}-update`, ts: Date.now(), test_id: testId, n })
  const response = await fetch(`${server.baseUrl}/pub/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  expect(response.status).toBe(200)
  const answer = (await response.json()) as { id: string }
  expect(answer.id).toMatch(ID)
  return { body, testId, id: answer.id }
}

async function publishSeveral(channel: string, from: number, count: number): Promise<Published[]> {
  const published: Published[] = []
  for (let n = from; n < from + count; n++) {
    if (published.length > 0) await Bun.sleep(PAUSE_MS)
    published.push(await publish(channel, n))
  }
  return published
}

async function receivedBy(page: Page, sub: number): Promise<Received[]> {
  return (await page.evaluate(() => nchanTest.received)).filter((entry) => entry.sub === sub)
}

async function diagnostics(page: Page, trace: string[]): Promise<string> {
  const { received, events } = await page.evaluate(() => ({ received: nchanTest.received, events: nchanTest.events }))
  return mask(
    [
      'received: ' + JSON.stringify(received, null, 1),
      'library events: ' + JSON.stringify(events),
      'trace:',
      ...trace,
      'nginx error log (tail):',
      nginx!.errorLog.split('\n').slice(-15).join('\n'),
    ].join('\n'),
  )
}

/** Waits, bounded, until subscriber `sub` received every test_id; on timeout fails with what the library saw. */
async function waitForAll(page: Page, trace: string[], sub: number, expected: Published[]): Promise<void> {
  const testIds = expected.map((message) => message.testId)
  try {
    await page.waitForFunction(
      ([sub, testIds]) => testIds.every((testId) => nchanTest.received.some((entry) => entry.sub === sub && entry.message.includes(testId))),
      [sub, testIds] as [number, string[]],
      { timeout: WAIT_MS, polling: 50 },
    )
  } catch (error) {
    throw new Error(`subscriber ${sub} did not receive ${testIds.join(', ')}: ${(error as Error).message}\n${await diagnostics(page, trace)}`)
  }
}

async function waitForConnect(page: Page, trace: string[], sub: number): Promise<void> {
  try {
    await page.waitForFunction((sub) => nchanTest.events.some((entry) => entry.sub === sub && entry.event === 'connect'), sub, { timeout: WAIT_MS, polling: 50 })
  } catch (error) {
    throw new Error(`subscriber ${sub} did not connect: ${(error as Error).message}\n${await diagnostics(page, trace)}`)
  }
}

/** Bodies exactly as published, in order, nothing else; meta.id as nchan writes it, equal to the publish id, increasing. */
function expectExactly(received: Received[], expected: Published[]): void {
  expect(received.map((entry) => entry.message)).toEqual(expected.map((message) => message.body))
  const ids = received.map((entry) => String(entry.id))
  for (const id of ids) expect(id).toMatch(ID)
  expect(ids).toEqual(expected.map((message) => message.id))
  const parsed = ids.map((id) => ID.exec(id)!.slice(1).map(Number) as [number, number])
  for (let i = 1; i < parsed.length; i++) {
    const [[time0, tag0], [time1, tag1]] = [parsed[i - 1]!, parsed[i]!]
    expect(time1 > time0 || (time1 === time0 && tag1 > tag0)).toBe(true)
  }
}

/**
 * Resume, for the transports where the library passes the last id (`opt.id` → `?last_event_id=`):
 * a subscriber started from the stopped one's lastMessageId gets only what it missed; one started
 * from the newest id gets only what comes next, while a fresh one (the control) replays the buffer,
 * which on these one-message channels is the missed message alone.
 */
async function expectResume(page: Page, trace: string[], channel: string, transport: Transport, stopped: number, last: Published): Promise<void> {
  const lastId = await page.evaluate((n) => nchanTest.stopSubscriber(n), stopped)
  expect(lastId).toBe(last.id)

  const [missed] = await publishSeveral(channel, 4, 1)
  const resumed = await startSubscriber(page, channel, transport, lastId!)
  await waitForAll(page, trace, resumed, [missed!])
  expectExactly(await receivedBy(page, resumed), [missed!])
  expect(trace.some((line) => line.includes(`last_event_id=${encodeURIComponent(lastId!)}`))).toBe(true)

  const newest = await page.evaluate((n) => nchanTest.stopSubscriber(n), resumed)
  expect(newest).toBe(missed!.id)
  const fromNewest = await startSubscriber(page, channel, transport, newest!)
  const fresh = await startSubscriber(page, channel, transport)
  await waitForConnect(page, trace, fromNewest)
  await waitForConnect(page, trace, fresh)
  const [next] = await publishSeveral(channel, 5, 1)
  await waitForAll(page, trace, fromNewest, [next!])
  await waitForAll(page, trace, fresh, [missed!, next!])
  expectExactly(await receivedBy(page, fromNewest), [next!])
  expectExactly(await receivedBy(page, fresh), [missed!, next!])
  await page.evaluate(([a, b]) => [nchanTest.stopSubscriber(a), nchanTest.stopSubscriber(b)], [fromNewest, fresh] as [number, number])
}

/** Starts a subscriber, publishes three messages with pauses, and checks what the library delivered. */
async function liveCase(page: Page, trace: string[], channel: string, transport: Transport): Promise<{ sub: number; published: Published[] }> {
  const sub = await startSubscriber(page, channel, transport)
  await waitForConnect(page, trace, sub)
  const published = await publishSeveral(channel, 1, 3)
  await waitForAll(page, trace, sub, published)
  expectExactly(await receivedBy(page, sub), published)
  return { sub, published }
}

test(
  'long-poll: a message published before subscribing comes first, then three live ones, in order, exactly once',
  () =>
    withPage(async ({ page, trace, requests }) => {
      const before = await publish('contacts', 0)
      const sub = await startSubscriber(page, 'contacts', 'longpoll')
      await waitForAll(page, trace, sub, [before])
      expectExactly(await receivedBy(page, sub), [before])

      const live = await publishSeveral('contacts', 1, 3)
      await waitForAll(page, trace, sub, [before, ...live])
      expectExactly(await receivedBy(page, sub), [before, ...live])
      for (const entry of await receivedBy(page, sub)) expect(entry.contentType).toBe('application/json')
      // nchan cursors: after each message the library asks for the next one with the Last-Modified
      // and Etag the backend answered (its first request has no cursor, so it gets the oldest).
      expect(requests[0]!.headers['if-modified-since']).toBeUndefined()
      const cursors = [before, ...live].map((message) => {
        const [, time, tag] = ID.exec(message.id)!
        return { 'if-modified-since': new Date(Number(time) * 1000).toUTCString(), 'if-none-match': tag }
      })
      const sent = () => requests.map(({ headers }) => ({ 'if-modified-since': headers['if-modified-since'], 'if-none-match': headers['if-none-match'] }))
      // The poll after the last message is under way; its request event may still be arriving.
      for (let i = 0; i < 40 && !cursors.every((cursor) => sent().some((s) => Bun.deepEquals(s, cursor))); i++) await Bun.sleep(50)
      expect(sent().slice(1)).toEqual(cursors)
      await page.evaluate((n) => nchanTest.stopSubscriber(n), sub)
    }),
  30_000,
)

test(
  'EventSource: three live messages in order with nchan ids, and resume from lastMessageId',
  () =>
    withPage(async ({ page, trace }) => {
      const { sub, published } = await liveCase(page, trace, 'active-calls', 'eventsource')
      expect(trace.some((line) => line.startsWith('> GET') && line.includes('accept: text/event-stream'))).toBe(true)
      await expectResume(page, trace, 'active-calls', 'eventsource', sub, published.at(-1)!)
    }),
  30_000,
)

test(
  'WebSocket (ws+meta.nchan): three live messages in order with nchan ids and content-type, and resume from lastMessageId',
  () =>
    withPage(async ({ page, trace }) => {
      const { sub, published } = await liveCase(page, trace, 'users-state', 'websocket')
      for (const entry of await receivedBy(page, sub)) expect(entry.contentType).toBe('application/json')
      expect(trace.some((line) => line.startsWith(`ws open ws://127.0.0.1:${nginx!.port}${BASE}/sub/users-state?`))).toBe(true)
      await expectResume(page, trace, 'users-state', 'websocket', sub, published.at(-1)!)
    }),
  30_000,
)
