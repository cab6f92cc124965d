/**
 * `Type=notify` against the compiled binary (README "systemd readiness and watchdog"): a python3
 * AF_UNIX datagram receiver (`fixtures/notify-receiver.py`) stands in for systemd's NOTIFY_SOCKET,
 * at a path or at an abstract `@name`, and records every message in arrival order.
 */
import { afterEach, beforeEach, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { openUnixDatagram } from '../../src/systemd/unix-datagram'
import { BASE, BINARY } from './server-process'

const RECEIVER = resolve(import.meta.dir, 'fixtures/notify-receiver.py')
const NO_WX_EXEC = resolve(import.meta.dir, 'fixtures/no-wx-exec.py')
/** WatchdogSec=1s: a ping every 500 ms. */
const WATCHDOG_USEC = '1000000'
const SENTINEL = 'SENTINEL'
const mdweSupported = Bun.spawnSync(['python3', NO_WX_EXEC]).exitCode === 0

interface Datagram {
  atMs: number
  message: string
}

/** The stand-in for systemd's notify socket. */
class NotifyReceiver {
  readonly received: Datagram[] = []
  private readonly child: ReturnType<typeof Bun.spawn>
  private wake: () => void = () => {}

  private constructor(readonly address: string) {
    this.child = Bun.spawn(['python3', RECEIVER, address], { stdout: 'pipe', stderr: 'inherit' })
  }

  static async bind(address: string): Promise<NotifyReceiver> {
    const receiver = new NotifyReceiver(address)
    await receiver.readLines()
    return receiver
  }

  /** Resolves once "bound" is read; datagrams keep arriving in the background. */
  private async readLines(): Promise<void> {
    const lines = (this.child.stdout as ReadableStream<Uint8Array>).getReader()
    const decoder = new TextDecoder()
    let buffered = ''
    let bound: () => void = () => {}
    const isBound = new Promise<void>((resolve) => (bound = resolve))
    void (async () => {
      for (;;) {
        const { value, done } = await lines.read()
        if (done) return
        buffered += decoder.decode(value, { stream: true })
        let end: number
        while ((end = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, end)
          buffered = buffered.slice(end + 1)
          if (line === 'bound') bound()
          else {
            const { at_ms, message } = JSON.parse(line) as { at_ms: number; message: string }
            this.received.push({ atMs: at_ms, message })
            this.wake()
          }
        }
      }
    })()
    await isBound
  }

  /** The first datagram from index `from` on that matches, and its index. */
  async next(matches: (message: string) => boolean, from = 0): Promise<{ index: number; datagram: Datagram }> {
    for (;;) {
      const index = this.received.findIndex((datagram, at) => at >= from && matches(datagram.message))
      if (index >= 0) return { index, datagram: this.received[index]! }
      await new Promise<void>((resolve) => (this.wake = resolve))
    }
  }

  /** Sends a marker and waits for it: everything sent to the socket before it has then arrived. */
  async drain(): Promise<number> {
    const sender = openUnixDatagram(this.address)
    expect(sender.send(SENTINEL)).toBeNull()
    sender.close()
    return (await this.next((message) => message === SENTINEL, this.received.length)).index
  }

  messages(from = 0, to = this.received.length): string[] {
    return this.received.slice(from, to).map(({ message }) => message)
  }

  close(): void {
    this.child.kill()
  }
}

class Serve {
  output = ''
  readonly exited: Promise<number>
  private readonly child: ReturnType<typeof Bun.spawn>

  constructor(dataDir: string, port: number, env: Record<string, string>, launcher: string[] = []) {
    const child = Bun.spawn([...launcher, BINARY, 'serve', '--data-dir', dataDir, '--port', String(port)], {
      stdout: 'pipe',
      stderr: 'pipe',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    })
    void (async () => {
      const decoder = new TextDecoder()
      for await (const chunk of child.stdout as ReadableStream<Uint8Array>) this.output += decoder.decode(chunk, { stream: true })
    })()
    this.child = child
    this.exited = child.exited
  }

  get pid(): number {
    return this.child.pid
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal)
  }

  async listening(): Promise<void> {
    while (!this.output.includes(' listening on ')) await Bun.sleep(10)
  }
}

async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = probe
  probe.stop(true)
  return port
}

const health = (port: number) => fetch(`http://127.0.0.1:${port}${BASE}/health`)
const isReady = (message: string) => message.split('\n').includes('READY=1')
const isPing = (message: string) => message.split('\n').includes('WATCHDOG=1')

let dir: string
let receiver: NotifyReceiver | null
let server: Serve | null
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-notify-'))
  receiver = null
  server = null
})
afterEach(async () => {
  server?.signal('SIGKILL')
  await server?.exited
  receiver?.close()
  rmSync(dir, { recursive: true, force: true })
})

async function serveNotifying(address: string, env: Record<string, string> = {}): Promise<{ receiver: NotifyReceiver; server: Serve; port: number }> {
  receiver = await NotifyReceiver.bind(address)
  const port = await freePort()
  server = new Serve(dir, port, { NOTIFY_SOCKET: address, ...env })
  return { receiver, server, port }
}

test('READY=1 arrives once the port answers, with the status; SIGTERM sends STOPPING=1 and exits 0', async () => {
  const { receiver, server, port } = await serveNotifying(join(dir, 'notify'))
  const ready = await receiver.next(isReady)
  expect((await health(port)).status).toBe(200)
  expect(ready.datagram.message).toBe('READY=1\nSTATUS=serving, 0 sessions, AMI off')
  expect(ready.index).toBe(0)

  server.signal('SIGTERM')
  expect(await server.exited).toBe(0)
  const last = await receiver.drain()
  expect(receiver.messages(1, last)).toEqual(['STOPPING=1\nSTATUS=stopping (SIGTERM)'])
})

test('an abstract @name address works, and WATCHDOG=1 comes every half of WATCHDOG_USEC', async () => {
  const { receiver } = await serveNotifying(`@softphone-notify-test-${process.pid}`, { WATCHDOG_USEC })
  const ready = await receiver.next(isReady)
  const pings: number[] = [ready.datagram.atMs]
  let from = ready.index + 1
  while (pings.length < 5) {
    const ping = await receiver.next(isPing, from)
    pings.push(ping.datagram.atMs)
    from = ping.index + 1
  }
  const gaps = pings.slice(1).map((at, index) => at - pings[index]!)
  const median = gaps.sort((a, b) => a - b)[2]!
  // 500 ms nominal; wide bounds because the machine is shared.
  expect(median).toBeGreaterThan(350)
  expect(median).toBeLessThan(900)
})

test('a stopped process sends nothing; once it runs again the late timer withholds a ping, then pings resume', async () => {
  const { receiver, server } = await serveNotifying(join(dir, 'notify'), { WATCHDOG_USEC })
  await receiver.next(isPing)
  server.signal('SIGSTOP')
  while (readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1]![0] !== 'T') await Bun.sleep(5)
  const stoppedAt = await receiver.drain()
  await Bun.sleep(1500)
  server.signal('SIGCONT')
  const withheld = await receiver.next((message) => message.startsWith('STATUS=watchdog ping withheld: event loop'), stoppedAt)
  expect(withheld.index).toBe(stoppedAt + 1)
  expect(Number(/(\d+) ms late/.exec(withheld.datagram.message)![1])).toBeGreaterThan(250)
  const resumed = await receiver.next(isPing, withheld.index)
  expect(resumed.datagram.message).toBe('WATCHDOG=1\nSTATUS=serving, 0 sessions, AMI off')
  expect(receiver.messages(withheld.index + 1, resumed.index).filter(isPing)).toEqual([])
})

/** Another process takes the store's write lock and holds it until its stdin closes. */
async function holdWriteLock(): Promise<ReturnType<typeof Bun.spawn>> {
  const script = `
    import { Database } from 'bun:sqlite'
    const db = new Database(${JSON.stringify(join(dir, 'softphone.db'))})
    db.run('BEGIN IMMEDIATE')
    console.log('locked')
    for await (const _ of console) break
    db.run('ROLLBACK')`
  const holder = Bun.spawn([process.execPath, '-e', script], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
  const { value } = await (holder.stdout as ReadableStream<Uint8Array>).getReader().read()
  expect(new TextDecoder().decode(value)).toContain('locked')
  return holder
}

test("while another writer holds the store's lock no ping is sent; pings resume once it lets go", async () => {
  const { receiver } = await serveNotifying(join(dir, 'notify'), { WATCHDOG_USEC })
  await receiver.next(isPing)
  const holder = await holdWriteLock()
  const withheld = await receiver.next((message) => message === 'STATUS=watchdog ping withheld: store: SQLITE_BUSY')
  // Three periods with the lock held.
  await Bun.sleep(1500)
  const released = await receiver.drain()
  ;(holder.stdin as import('bun').FileSink).end()
  expect(await holder.exited).toBe(0)
  expect(receiver.messages(withheld.index, released).filter(isPing)).toEqual([])
  const resumed = await receiver.next(isPing, released)
  expect(resumed.datagram.message).toBe('WATCHDOG=1\nSTATUS=serving, 0 sessions, AMI off')
})

test('a start that fails (port taken) sends no READY', async () => {
  receiver = await NotifyReceiver.bind(join(dir, 'notify'))
  const taken = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  try {
    server = new Serve(dir, taken.port, { NOTIFY_SOCKET: receiver.address, WATCHDOG_USEC })
    expect(await server.exited).toBe(69)
  } finally {
    taken.stop(true)
  }
  expect(receiver.messages(0, await receiver.drain())).toEqual([])
})

test('NOTIFY_SOCKET naming a path that does not exist: one line, and the service serves', async () => {
  const port = await freePort()
  server = new Serve(dir, port, { NOTIFY_SOCKET: join(dir, 'missing', 'notify'), WATCHDOG_USEC: '100000' })
  await server.listening()
  expect((await health(port)).status).toBe(200)
  // Several 50 ms watchdog ticks, then STOPPING: every one of them fails to send.
  await Bun.sleep(300)
  server.signal('SIGTERM')
  expect(await server.exited).toBe(0)
  expect(server.output.split('\n').filter((line) => line.includes('NOTIFY_SOCKET'))).toEqual([
    `systemd notify: cannot send to NOTIFY_SOCKET ${join(dir, 'missing', 'notify')} (ENOENT); serving anyway, later failures are not logged`,
  ])
})

test.skipIf(!mdweSupported)('under MemoryDenyWriteExecute (no JIT, so no bun:ffi): one line, no READY, and the service serves', async () => {
  receiver = await NotifyReceiver.bind(join(dir, 'notify'))
  const port = await freePort()
  server = new Serve(dir, port, { NOTIFY_SOCKET: receiver.address }, ['python3', NO_WX_EXEC])
  await server.listening()
  expect((await health(port)).status).toBe(200)
  server.signal('SIGTERM')
  expect(await server.exited).toBe(0)
  expect(server.output.split('\n').filter((line) => line.includes('systemd notify'))).toEqual([
    'systemd notify: bun:ffi requires the JIT; not notifying (README "systemd readiness and watchdog")',
  ])
  expect(receiver.messages(0, await receiver.drain())).toEqual([])
}, 20_000)
