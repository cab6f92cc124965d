/**
 * The sd_notify notifier with a recording socket and manual time: what it sends, when, and what
 * it withholds (README "systemd readiness and watchdog"). The real socket is in
 * test/binary/notify.test.ts; the address encoding is checked byte for byte here.
 */
import { Database } from 'bun:sqlite'
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AmiStatus } from '../../src/pbx/ami/ami-link'
import { openStore } from '../../src/store/database'
import { startNotifier, watchdogPeriodMs, type NotifierOptions, type NotifierTimers } from '../../src/systemd/notify'
import { checkStore, type StoreCheck } from '../../src/systemd/store-check'
import { encodeUnixAddress, type DatagramSender } from '../../src/systemd/unix-datagram'

/** Timers on a monotonic clock that only moves when told to. */
class ManualTime implements NotifierTimers {
  now = 0
  private nextHandle = 1
  private readonly scheduled = new Map<number, { callback: () => void; at: number }>()

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.nextHandle++
    this.scheduled.set(handle, { callback, at: this.now + ms })
    return handle
  }

  clearTimeout(handle: unknown): void {
    this.scheduled.delete(handle as number)
  }

  get pending(): number {
    return this.scheduled.size
  }

  /** Moves time forward by `ms`, running each timer on time, in order. */
  advance(ms: number): void {
    const until = this.now + ms
    for (;;) {
      const next = [...this.scheduled].filter(([, timer]) => timer.at <= until).sort(([, a], [, b]) => a.at - b.at)[0]
      if (!next) break
      this.scheduled.delete(next[0])
      this.now = next[1].at
      next[1].callback()
    }
    this.now = until
  }

  /** A blocked loop: `ms` pass with nothing running, then whatever is overdue runs late. */
  stall(ms: number): void {
    const resumed = this.now + ms
    const overdue = [...this.scheduled].filter(([, timer]) => timer.at <= resumed)
    this.now = resumed
    for (const [handle, timer] of overdue) {
      this.scheduled.delete(handle)
      timer.callback()
    }
  }
}

class RecordingSocket implements DatagramSender {
  readonly sent: string[] = []
  failWith: string | null = null
  closed = false

  send(message: string): string | null {
    if (this.closed) throw new Error('sent after close')
    this.sent.push(message)
    return this.failWith
  }

  close(): void {
    this.closed = true
  }

  take(): string[] {
    return this.sent.splice(0)
  }
}

let time: ManualTime
let socket: RecordingSocket
let opened: string[]
let logs: string[]
let store: StoreCheck
let ami: AmiStatus

beforeEach(() => {
  time = new ManualTime()
  socket = new RecordingSocket()
  opened = []
  logs = []
  store = { ok: true, sessions: 3 }
  ami = 'up'
})

function start(env: NotifierOptions['env'], extra: Partial<NotifierOptions> = {}) {
  return startNotifier({
    env,
    pid: 4242,
    log: (line) => logs.push(line),
    checkStore: () => store,
    ami: () => ami,
    open: (address) => {
      opened.push(address)
      return socket
    },
    timers: time,
    monotonic: () => time.now,
    ...extra,
  })
}

const WATCHDOG = { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000' }

describe('without NOTIFY_SOCKET', () => {
  test('nothing is opened, scheduled, sent or logged', () => {
    const notifier = start({ WATCHDOG_USEC: '30000000' })
    notifier.stopping('SIGTERM')
    expect({ opened, pending: time.pending, logs }).toEqual({ opened: [], pending: 0, logs: [] })
  })

  test('an address that is neither absolute nor abstract is refused with one line', () => {
    start({ NOTIFY_SOCKET: 'run/notify' })
    expect(opened).toEqual([])
    expect(logs).toEqual(['systemd notify: NOTIFY_SOCKET=run/notify is neither an absolute path nor @name; not notifying'])
  })
})

describe('readiness and stopping', () => {
  test('READY=1 with the status at start, STOPPING=1 at shutdown, then the socket is closed', () => {
    const notifier = start(WATCHDOG)
    expect(opened).toEqual(['/run/systemd/notify'])
    expect(socket.take()).toEqual(['READY=1\nSTATUS=serving, 3 sessions, AMI up'])
    notifier.stopping('SIGTERM')
    notifier.stopping('SIGINT')
    expect(socket.take()).toEqual(['STOPPING=1\nSTATUS=stopping (SIGTERM)'])
    expect({ closed: socket.closed, pending: time.pending }).toEqual({ closed: true, pending: 0 })
  })

  test('AMI off and one session read as such', () => {
    store = { ok: true, sessions: 1 }
    start({ NOTIFY_SOCKET: '@notify' }, { ami: undefined })
    expect(socket.take()).toEqual(['READY=1\nSTATUS=serving, 1 session, AMI off'])
  })

  test('a socket that cannot be opened (bun:ffi without the JIT) costs one line and nothing else', () => {
    const notifier = start(WATCHDOG, {
      open: () => {
        throw new TypeError('bun:ffi requires the JIT')
      },
    })
    notifier.stopping('SIGTERM')
    expect(logs).toEqual(['systemd notify: bun:ffi requires the JIT; not notifying (README "systemd readiness and watchdog")'])
    expect(time.pending).toBe(0)
  })

  test('send failures are logged once, and a lost STATUS is repeated by the next message', () => {
    socket.failWith = 'ENOENT'
    start(WATCHDOG)
    time.advance(15_000 * 3)
    expect(logs).toEqual(['systemd notify: cannot send to NOTIFY_SOCKET /run/systemd/notify (ENOENT); serving anyway, later failures are not logged'])
    socket.take()
    socket.failWith = null
    time.advance(15_000)
    expect(socket.take()).toEqual(['WATCHDOG=1\nSTATUS=serving, 3 sessions, AMI up'])
  })
})

describe('watchdog', () => {
  test('the period is half of WATCHDOG_USEC; WATCHDOG_PID naming another process turns pings off', () => {
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000' }, 7)).toBe(15_000)
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '400000', WATCHDOG_PID: '7' }, 7)).toBe(200)
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '8' }, 7)).toBeNull()
    expect(watchdogPeriodMs({ WATCHDOG_USEC: 'soon' }, 7)).toBeNull()
    expect(watchdogPeriodMs({ WATCHDOG_USEC: '0' }, 7)).toBeNull()
    expect(watchdogPeriodMs({}, 7)).toBeNull()
  })

  test('WATCHDOG=1 every half period; STATUS only when it changed', () => {
    start(WATCHDOG)
    socket.take()
    time.advance(14_999)
    expect(socket.take()).toEqual([])
    time.advance(1)
    expect(socket.take()).toEqual(['WATCHDOG=1'])
    store = { ok: true, sessions: 4 }
    ami = 'down'
    time.advance(15_000)
    expect(socket.take()).toEqual(['WATCHDOG=1\nSTATUS=serving, 4 sessions, AMI down'])
    time.advance(30_000)
    expect(socket.take()).toEqual(['WATCHDOG=1', 'WATCHDOG=1'])
  })

  test('a store that fails the check withholds the ping, looks again every eighth of the period, pings once it answers', () => {
    start(WATCHDOG)
    socket.take()
    store = { ok: false, reason: 'store: SQLITE_BUSY' }
    time.advance(15_000)
    expect(socket.take()).toEqual(['STATUS=watchdog ping withheld: store: SQLITE_BUSY'])
    time.advance(1875 * 3)
    expect(socket.take()).toEqual([])
    store = { ok: true, sessions: 3 }
    time.advance(1875)
    expect(socket.take()).toEqual(['WATCHDOG=1\nSTATUS=serving, 3 sessions, AMI up'])
    time.advance(14_999)
    expect(socket.take()).toEqual([])
  })

  test('a loop that ran its timer more than a second late withholds that ping; the next on-time check pings', () => {
    start(WATCHDOG)
    socket.take()
    time.advance(14_999)
    time.stall(1002)
    expect(socket.take()).toEqual(['STATUS=watchdog ping withheld: event loop 1001 ms late'])
    time.advance(1875)
    expect(socket.take()).toEqual(['WATCHDOG=1\nSTATUS=serving, 3 sessions, AMI up'])
  })

  test('a short period bounds the lag at half of it', () => {
    start({ NOTIFY_SOCKET: '@n', WATCHDOG_USEC: '1000000' })
    socket.take()
    time.advance(499)
    time.stall(251)
    expect(socket.take()).toEqual(['WATCHDOG=1'])
    time.advance(499)
    time.stall(252)
    expect(socket.take()).toEqual(['STATUS=watchdog ping withheld: event loop 251 ms late'])
  })

  test('without WATCHDOG_USEC the STATUS line is still kept current, with no pings', () => {
    start({ NOTIFY_SOCKET: '/run/systemd/notify' })
    socket.take()
    time.advance(15_000)
    expect(socket.take()).toEqual([])
    ami = 'down'
    time.advance(15_000)
    expect(socket.take()).toEqual(['STATUS=serving, 3 sessions, AMI down'])
    store = { ok: false, reason: 'store: SQLITE_IOERR' }
    time.advance(15_000)
    expect(socket.take()).toEqual(['STATUS=self-check failed: store: SQLITE_IOERR'])
  })
})

describe('sockaddr_un', () => {
  test('a path ends with its NUL, counted in the length', () => {
    const { bytes, length } = encodeUnixAddress('/run/systemd/notify')
    expect(length).toBe(2 + '/run/systemd/notify'.length + 1)
    expect([...bytes.subarray(0, length)]).toEqual([1, 0, ...Buffer.from('/run/systemd/notify'), 0])
  })

  test('an abstract name starts with a NUL and its length stops at its last byte', () => {
    const { bytes, length } = encodeUnixAddress('@userdb-notify')
    expect(length).toBe(2 + 1 + 'userdb-notify'.length)
    expect([...bytes.subarray(0, length)]).toEqual([1, 0, 0, ...Buffer.from('userdb-notify')])
  })

  test('an address longer than sun_path is refused', () => {
    expect(() => encodeUnixAddress(`/${'x'.repeat(107)}`)).toThrow('unix socket address too long')
    expect(encodeUnixAddress(`/${'x'.repeat(106)}`).length).toBe(110)
  })
})

describe('the store check', () => {
  let dir: string
  let db: Database
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'softphone-notify-'))
    db = openStore(join(dir, 'softphone.db'))
  })
  afterEach(() => {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const addSession = (id: string, exp: number, revokedAt: number | null) =>
    db.run(
      `INSERT INTO sessions (id, username, role, user_id, created_at, last_used_at, ip, user_agent, current_hash, current_iat, current_exp, revoked_at)
       VALUES (?, '201', 'user', 1, 0, 0, '127.0.0.1', '', 'h', 0, ?, ?)`,
      [id, exp, revokedAt],
    )

  test('counts live sessions: not revoked, not expired', () => {
    addSession('a', 2000, null)
    addSession('b', 2000, 1500)
    addSession('c', 1000, null)
    expect(checkStore(db, 1000)).toEqual({ ok: true, sessions: 1 })
  })

  test("another writer's lock fails it at once, and the busy timeout is restored", () => {
    const other = new Database(join(dir, 'softphone.db'))
    other.run('BEGIN IMMEDIATE')
    try {
      // With the store's 5 s busy timeout this would outlast the test's own 5 s limit.
      expect(checkStore(db, 0)).toEqual({ ok: false, reason: 'store: SQLITE_BUSY' })
      expect(db.inTransaction).toBe(false)
    } finally {
      other.run('ROLLBACK')
      other.close()
    }
    expect(db.query('PRAGMA busy_timeout').get()).toEqual({ timeout: 5000 })
    expect(checkStore(db, 0)).toEqual({ ok: true, sessions: 0 })
  })

  test('a transaction left open by this connection fails it', () => {
    db.run('BEGIN')
    expect(checkStore(db, 0)).toEqual({ ok: false, reason: 'store: a transaction was left open' })
    db.run('ROLLBACK')
  })
})
