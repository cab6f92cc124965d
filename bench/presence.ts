/**
 * Presence bench (README "Tests, CI and benchmarks"): "10 000 SSE subscribers on one channel, and one publish reaches all of them in
 * under 1 s, with RSS per idle subscriber ≤ 16 KiB. Long-poll and WebSocket at 2 000 subscribers each"
 * (held here to the same two targets). Each transport gets a fresh server, pinned to CPU 0 (this client to
 * CPU 1): server RSS idle, then with every subscriber open and idle → RSS per subscriber; then `--runs`
 * publishes of a unique marker, each timed from just before the POST until the last subscriber saw it.
 * EventSource and long-poll clients are raw TCP sockets (HTTP/1.1 written by hand, bytes scanned for the
 * marker); WebSocket uses Bun's client. The config caps subscriptions per user at 1000, so the
 * subscribers are spread over ceil(N / 1000) users.
 *   node_modules/.bin/bun bench/presence.ts [--sse 10000] [--longpoll 2000] [--ws 2000] [--runs 3] [--json]
 * Missing a target is reported, not fatal: the exit code is 1 only when the bench itself broke.
 */
import { parseArgs } from 'node:util'
import type { Socket, SocketHandler } from 'bun'
import { BASE, BINARY, type ServerProcess } from '../test/binary/server-process'
import {
  CLIENT_CPU,
  pinningUnavailable,
  pinProcess,
  positiveInt,
  printTable,
  progress,
  requireBinary,
  rssKiB,
  runBench,
  SERVER_CPU,
  verdict,
  withServer,
} from './common'

/** The most `--max-subscriptions-per-user` accepts (src/config/schema.ts). */
const PER_USER = 1000
const PASSWORD = 'bench-presence-password'
/** Subscribers opened at once; the next batch waits until this one is subscribed. */
const BATCH = 500
const OPEN_TIMEOUT_MS = 20_000
const DELIVERY_TIMEOUT_MS = 10_000
/** Idle server before the baseline RSS; open subscribers before theirs (and long-polls before a publish). */
const IDLE_MS = 1000
const SETTLE_MS = 2000
const TARGET = { rssKiB: 16, lastMs: 1000 }
/** The whole bench is killed after this, whatever it is doing. */
const WATCHDOG_MS = 10 * 60_000

const { values: options } = parseArgs({
  options: {
    sse: { type: 'string', default: '10000' },
    longpoll: { type: 'string', default: '2000' },
    ws: { type: 'string', default: '2000' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
})
const runs = positiveInt('--runs', options.runs)

// main() runs at the end of this file, once every constant below is initialised.

/** A subscriber as the bench sees it: when it saw the current marker, and whether its connection ended. */
interface Probe {
  seenAt: number
  closed: boolean
}

/** What every probe looks for in what it receives; unique per publish. */
let marker = '-'

interface Run {
  /** The `subscribers` field of the publish answer. */
  serverCount: number
  delivered: number
  lastMs: number
  p50Ms: number
  p99Ms: number
  id: string
}

interface Transport<P extends Probe> {
  name: string
  channel: string
  n: number
  /** Opens one subscriber with the given token; `ready` says when it is subscribed (and throws if it failed). */
  open(port: number, token: string): Promise<P> | P
  ready(probe: P): boolean
  /**
   * Whether subscribers stay subscribed after a delivery, so that the publish answer's `subscribers` counts them:
   * then a publish before the timed runs checks the count. Not long-poll: that publish would answer the polls,
   * and the answer counts after delivery, when every answered poll is gone (it reads 0).
   */
  persistent: boolean
  /** Before each timed run but the first: long-polls poll again, after the last message. */
  rearm?(probes: P[], lastId: string): void
  close(probe: P): void
}

async function main(): Promise<void> {
  requireBinary()
  const unpinnedWhy = pinningUnavailable()
  if (unpinnedWhy) console.error(`warning: running unpinned, ${unpinnedWhy}`)
  else pinProcess(process.pid, CLIENT_CPU)
  const pin = (pid: number) => {
    if (!unpinnedWhy) pinProcess(pid, SERVER_CPU)
  }

  const transports: Transport<Probe>[] = [
    rawTransport('SSE', 'users-state', count('--sse', options.sse), { Accept: 'text/event-stream' }),
    rawTransport('long-poll', 'active-calls', count('--longpoll', options.longpoll), {}),
    wsTransport('WebSocket', 'contacts', count('--ws', options.ws)),
  ].filter((t) => t.n > 0)
  const results = []
  for (const transport of transports) results.push(await runTransport(transport, pin))

  const pinning = unpinnedWhy ? `unpinned (${unpinnedWhy})` : `server pinned to CPU ${SERVER_CPU}, client to CPU ${CLIENT_CPU}`
  console.log(`\npresence: a fresh server per transport; ${pinning}; loopback, Bun ${Bun.version}`)
  console.log(`RSS/sub = (server RSS with all open and idle ${SETTLE_MS / 1000} s - idle RSS) / N; publish→all = POST sent → marker seen by the last subscriber`)
  console.log(`(delivery times include this client reading every socket on one thread, so they are upper bounds)`)
  console.log(`server count: the publish answers' \`subscribers\`; n/a for long-poll, which it counts after delivery, when answered polls are gone`)
  console.log(`targets: RSS/sub <= ${TARGET.rssKiB} KiB, publish→all < ${TARGET.lastMs} ms in every run, every subscriber counted and reached\n`)
  const ms = (values: number[]) => values.map((v) => v.toFixed(0)).join(' / ')
  printTable([
    ['transport', 'channel', 'N', 'server count', 'delivered', 'RSS/sub KiB', 'publish→all ms', 'p50 ms', 'p99 ms', 'dropped', 'target', 'result'],
    ...results.map((r) => [
      r.transport,
      r.channel,
      String(r.n),
      r.confirm ? [...new Set([r.confirm, ...r.runs].map((run) => run.serverCount))].join(' / ') : 'n/a',
      `${Math.min(...r.runs.map((run) => run.delivered))}/${r.n}`,
      r.rssPerSubKiB.toFixed(1),
      ms(r.runs.map((run) => run.lastMs)),
      ms(r.runs.map((run) => run.p50Ms)),
      ms(r.runs.map((run) => run.p99Ms)),
      String(r.dropped),
      `<= ${TARGET.rssKiB} KiB, < ${TARGET.lastMs} ms`,
      verdict(r.pass),
    ]),
  ])
  console.log()
  printTable([
    ['transport', 'users', 'open time', 'RSS idle', 'RSS open', 'RSS after runs', 'server stderr'],
    ...results.map((r) => [
      r.transport,
      String(r.users),
      `${r.openSeconds.toFixed(1)} s`,
      `${r.rssIdleMiB.toFixed(1)} MiB`,
      `${r.rssOpenMiB.toFixed(1)} MiB`,
      `${r.rssAfterMiB.toFixed(1)} MiB`,
      r.serverStderr ? JSON.stringify(r.serverStderr.slice(0, 200)) : '(empty)',
    ]),
  ])
  if (options.json) {
    const settings = { runs, batch: BATCH, perUser: PER_USER, settleMs: SETTLE_MS, targets: TARGET, pinning, bun: Bun.version, binary: BINARY }
    console.log(JSON.stringify({ settings, transports: results }, null, 2))
  }
}

async function runTransport<P extends Probe>(t: Transport<P>, pin: (pid: number) => void) {
  return withServer(async (server) => {
    const users = Array.from({ length: Math.ceil(t.n / PER_USER) }, (_, i) => String(300 + i))
    progress(`${t.name}: fresh server, ${users.length} user(s) of up to ${PER_USER} subscriptions`)
    for (const user of users) await server.addUser(user, PASSWORD)
    await server.start(['--max-subscriptions-per-user', String(PER_USER)])
    const pid = server.pid!
    pin(pid)
    const tokens: string[] = []
    for (const user of users) tokens.push((await server.login(user, PASSWORD)).access_token)
    await Bun.sleep(IDLE_MS)
    const rssIdle = rssKiB(pid)

    progress(`${t.name}: opening ${t.n} subscribers on ${t.channel}, ${BATCH} at a time`)
    const openedAt = performance.now()
    const probes: P[] = []
    for (let start = 0; start < t.n; start += BATCH) {
      const size = Math.min(BATCH, t.n - start)
      const batch = await Promise.all(Array.from({ length: size }, (_, k) => t.open(server.port, tokens[Math.floor((start + k) / PER_USER)]!)))
      probes.push(...batch)
      const ok = await waitFor(() => batch.every((probe) => t.ready(probe)), OPEN_TIMEOUT_MS)
      if (!ok) throw new Error(`${t.name}: subscribers ${start}..${start + size - 1} not open after ${OPEN_TIMEOUT_MS} ms`)
    }
    const openSeconds = (performance.now() - openedAt) / 1000
    await Bun.sleep(SETTLE_MS)
    const rssOpen = rssKiB(pid)

    const confirm = t.persistent ? await deliver(server, t.channel, probes, 'confirm') : undefined
    const timed: Run[] = []
    for (let run = 1; run <= runs; run++) {
      await Bun.sleep(IDLE_MS)
      if (run > 1 && t.rearm) {
        t.rearm(probes, timed.at(-1)!.id)
        await Bun.sleep(SETTLE_MS)
      }
      timed.push(await deliver(server, t.channel, probes, `run${run}`))
      progress(`${t.name}: run ${run}: ${timed.at(-1)!.delivered}/${t.n} in ${timed.at(-1)!.lastMs.toFixed(0)} ms`)
    }
    const dropped = probes.filter((probe) => probe.closed).length
    const rssAfter = rssKiB(pid)
    for (const probe of probes) t.close(probe)

    const rssPerSubKiB = (rssOpen - rssIdle) / t.n
    const counted = !t.persistent || [confirm!, ...timed].every((run) => run.serverCount === t.n)
    const pass = counted && rssPerSubKiB <= TARGET.rssKiB && timed.every((run) => run.delivered === t.n && run.lastMs < TARGET.lastMs)
    const MiB = (kiB: number) => kiB / 1024
    return {
      transport: t.name,
      channel: t.channel,
      n: t.n,
      users: users.length,
      openSeconds,
      rssIdleMiB: MiB(rssIdle),
      rssOpenMiB: MiB(rssOpen),
      rssAfterMiB: MiB(rssAfter),
      rssPerSubKiB,
      confirm,
      runs: timed,
      dropped,
      serverStderr: server.stderr.trim(),
      pass,
    }
  })
}

/** Publishes a fresh marker and waits until every open probe has seen it (or the timeout). */
async function deliver(server: ServerProcess, channel: string, probes: Probe[], label: string): Promise<Run> {
  marker = `${label}-${crypto.randomUUID()}`
  for (const probe of probes) probe.seenAt = 0
  const start = performance.now()
  const response = await fetch(`${server.baseUrl}/pub/${channel}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ bench: marker }),
  })
  const answer = (await response.json()) as { success?: boolean; subscribers: number; id: string }
  if (response.status !== 200 || !answer.success) throw new Error(`publish to ${channel} answered ${response.status}: ${JSON.stringify(answer)}`)
  await waitFor(() => probes.every((probe) => probe.seenAt > 0 || probe.closed), DELIVERY_TIMEOUT_MS)
  const times = probes.flatMap((probe) => (probe.seenAt > 0 ? [probe.seenAt - start] : [])).sort((a, b) => a - b)
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN
  return { serverCount: answer.subscribers, delivered: times.length, lastMs: times.at(-1) ?? NaN, p50Ms: at(0.5), p99Ms: at(0.99), id: answer.id }
}

/** An HTTP/1.1 client on a raw socket: writes requests by hand and scans the bytes it gets for the marker. */
class RawSubscriber implements Probe {
  constructor(readonly token: string) {}
  seenAt = 0
  closed = false
  /** The start of the response, for its status line. */
  head = ''
  private tail = ''
  private unsent = ''
  socket!: Socket<RawSubscriber>

  send(text: string): void {
    this.unsent += text
    this.flush()
  }

  flush(): void {
    if (this.unsent) this.unsent = this.unsent.slice(Math.max(0, this.socket.write(this.unsent)))
  }

  get sent(): boolean {
    return !this.unsent
  }

  receive(text: string): void {
    if (this.head.length < 512) this.head += text.slice(0, 512)
    // The tail catches a marker split between two reads.
    if (!this.seenAt && (this.tail + text).includes(marker)) this.seenAt = performance.now()
    this.tail = text.slice(-marker.length)
  }
}

const RAW_HANDLERS: SocketHandler<RawSubscriber> = {
  data: (socket, chunk) => socket.data.receive(chunk.toString('latin1')),
  drain: (socket) => socket.data.flush(),
  close: (socket) => void (socket.data.closed = true),
  error: (socket) => void (socket.data.closed = true),
}

/** EventSource (with accept: text/event-stream) or long-poll (without) over raw sockets. */
function rawTransport(name: string, channel: string, n: number, headers: Record<string, string>): Transport<RawSubscriber> {
  const eventStream = 'Accept' in headers
  let host = ''
  const request = (token: string, extra: Record<string, string> = {}) =>
    [`GET ${BASE}/sub/${channel}?authorization=${token} HTTP/1.1`, `Host: ${host}`, ...Object.entries({ ...headers, ...extra }).map(([k, v]) => `${k}: ${v}`)]
      .join('\r\n')
      .concat('\r\n\r\n')
  return {
    name,
    channel,
    n,
    persistent: eventStream,
    async open(port, token) {
      host = `127.0.0.1:${port}`
      const probe = new RawSubscriber(token)
      probe.socket = await Bun.connect({ hostname: '127.0.0.1', port, data: probe, socket: RAW_HANDLERS })
      probe.send(request(token))
      return probe
    },
    ready(probe) {
      const status = probe.head.slice(0, probe.head.indexOf('\r\n'))
      if (status && !status.startsWith('HTTP/1.1 200')) throw new Error(`${name}: subscribe answered ${JSON.stringify(probe.head.slice(0, 300))}`)
      if (probe.closed) throw new Error(`${name}: connection closed while subscribing`)
      // An event stream is subscribed once its opening comment arrived; a long-poll is pending once sent.
      return eventStream ? probe.head.includes(': softphone-backend') : probe.sent
    },
    // A long-poll polls again with nchan's cursor: If-Modified-Since is the message time, If-None-Match its tag.
    rearm: eventStream ? undefined : (probes, lastId) => {
      const [time, tag] = lastId.split(':') as [string, string]
      const cursor = { 'If-Modified-Since': new Date(Number(time) * 1000).toUTCString(), 'If-None-Match': tag }
      for (const probe of probes) {
        if (probe.seenAt === 0 || probe.closed) continue // still pending, or gone
        probe.head = ''
        probe.send(request(probe.token, cursor))
      }
    },
    close: (probe) => probe.socket.terminate(),
  }
}

class WsSubscriber implements Probe {
  seenAt = 0
  closed = false
  opened = false
  closeCode = 0
  readonly ws: WebSocket

  constructor(url: string) {
    this.ws = new WebSocket(url)
    this.ws.onopen = () => (this.opened = true)
    this.ws.onmessage = (event) => {
      if (!this.seenAt && String(event.data).includes(marker)) this.seenAt = performance.now()
    }
    this.ws.onclose = (event) => {
      this.closed = true
      this.closeCode = event.code
    }
  }
}

function wsTransport(name: string, channel: string, n: number): Transport<WsSubscriber> {
  return {
    name,
    channel,
    n,
    persistent: true,
    open: (port, token) => new WsSubscriber(`ws://127.0.0.1:${port}${BASE}/sub/${channel}?authorization=${token}`),
    ready(probe) {
      if (probe.closed) throw new Error(`WebSocket closed while opening, code ${probe.closeCode}`)
      return probe.opened
    },
    close: (probe) => probe.ws.close(),
  }
}

/** Polls `done` every 5 ms; false after the timeout. */
async function waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  while (!done()) {
    if (performance.now() > deadline) return false
    await Bun.sleep(5)
  }
  return true
}

/** A subscriber count: 0 skips the transport. */
function count(name: string, text: string): number {
  return text === '0' ? 0 : positiveInt(name, text)
}

await runBench(main, { watchdogMs: WATCHDOG_MS })
