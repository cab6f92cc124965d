/**
 * The AMI TCP client (README "AMI"): logs in after the banner, correlates replies by ActionID,
 * gathers `EventList: start` lists up to their `…Complete` event, pings to notice a dead peer, and
 * reconnects with exponential backoff and jitter. Hand-written on node:net because the npm AMI
 * clients lowercase keys or drop repeated ones under Bun.
 *
 * Log lines name the host and port and never the username or secret; a condition that repeats on
 * every retry (connection refused, login refused) is logged once until the link comes up again.
 */
import { createConnection, type Socket } from 'node:net'
import { AmiActionTimeout, AmiDisconnected, type AmiLink, type AmiMessage, type AmiReply, type AmiStatus } from './ami-link'
import { AmiParser, MAX_FRAME_CHARS } from './ami-parser'

export interface AmiTimers {
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const realTimers: AmiTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
}

export interface AmiClientOptions {
  host: string
  port: number
  username: string
  secret: string
  /** Receives one line per operator-relevant event (connected, refused, dropped). */
  log: (line: string) => void
  pingIntervalMs?: number
  actionTimeoutMs?: number
  backoffInitialMs?: number
  backoffMaxMs?: number
  /** In [0, 1); spreads reconnects of several instances. */
  random?: () => number
  timers?: AmiTimers
  maxFrameChars?: number
}

export const AMI_DEFAULTS = {
  pingIntervalMs: 20_000,
  actionTimeoutMs: 10_000,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
}

interface Pending {
  resolve(reply: AmiReply): void
  reject(error: Error): void
  timer: unknown
  response?: AmiMessage
  list: boolean
  events: AmiMessage[]
}

/** One action as it goes on the wire. Values can't hold line breaks: they would inject keys. */
export function serializeAction(name: string, actionId: string, params: Readonly<Record<string, string>> = {}): string {
  const lines = [`Action: ${name}`, `ActionID: ${actionId}`]
  for (const [key, value] of Object.entries(params)) {
    if (/[\r\n]/.test(key) || /[\r\n]/.test(value) || key.includes(':')) throw new TypeError(`AMI action ${name}: parameter ${JSON.stringify(key.replace(/[\r\n:]/g, ''))} holds a line break or colon`)
    lines.push(`${key}: ${value}`)
  }
  return `${lines.join('\r\n')}\r\n\r\n`
}

export class AmiClient implements AmiLink {
  private currentStatus: AmiStatus = 'down'
  private socket: Socket | null = null
  private readonly pending = new Map<string, Pending>()
  private readonly eventListeners: Array<(event: AmiMessage) => void> = []
  private readonly statusListeners: Array<(status: AmiStatus) => void> = []
  private readonly idPrefix = `sb${Math.floor(Math.random() * 0xffffff).toString(16)}-`
  private nextId = 0
  private failures = 0
  private reconnectTimer: unknown = null
  private pingTimer: unknown = null
  /** Until the login is accepted: a peer that never greets or answers is dropped. */
  private loginDeadline: unknown = null
  private closed = true
  /** The last problem logged; the same one again is not logged until the link has been up. */
  private lastProblem: string | null = null
  private readonly timers: AmiTimers
  private readonly random: () => number
  private readonly settings: typeof AMI_DEFAULTS

  constructor(private readonly options: AmiClientOptions) {
    this.timers = options.timers ?? realTimers
    this.random = options.random ?? Math.random
    this.settings = {
      pingIntervalMs: options.pingIntervalMs ?? AMI_DEFAULTS.pingIntervalMs,
      actionTimeoutMs: options.actionTimeoutMs ?? AMI_DEFAULTS.actionTimeoutMs,
      backoffInitialMs: options.backoffInitialMs ?? AMI_DEFAULTS.backoffInitialMs,
      backoffMaxMs: options.backoffMaxMs ?? AMI_DEFAULTS.backoffMaxMs,
    }
  }

  get status(): AmiStatus {
    return this.currentStatus
  }

  private get where(): string {
    return `${this.options.host}:${this.options.port}`
  }

  start(): void {
    if (!this.closed) return
    this.closed = false
    this.connect()
  }

  /** Logs off if logged in, closes the socket and stops reconnecting. Pending actions reject. */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.timers.clearTimeout(this.reconnectTimer)
    this.reconnectTimer = null
    const socket = this.socket
    if (socket && this.currentStatus === 'up') socket.end(serializeAction('Logoff', this.freshId()))
    else socket?.destroy()
    this.lostConnection(socket)
  }

  onEvent(listener: (event: AmiMessage) => void): void {
    this.eventListeners.push(listener)
  }

  onStatus(listener: (status: AmiStatus) => void): void {
    this.statusListeners.push(listener)
  }

  action(name: string, params: Readonly<Record<string, string>> = {}, timeoutMs = this.settings.actionTimeoutMs): Promise<AmiReply> {
    if (this.currentStatus !== 'up') return Promise.reject(new AmiDisconnected(`AMI ${this.where} is not connected`))
    return this.send(name, params, timeoutMs)
  }

  private freshId(): string {
    this.nextId += 1
    return `${this.idPrefix}${this.nextId}`
  }

  private send(name: string, params: Readonly<Record<string, string>>, timeoutMs: number): Promise<AmiReply> {
    const socket = this.socket
    if (!socket) return Promise.reject(new AmiDisconnected(`AMI ${this.where} is not connected`))
    const actionId = this.freshId()
    let wire: string
    try {
      wire = serializeAction(name, actionId, params)
    } catch (error) {
      return Promise.reject(error as Error)
    }
    return new Promise<AmiReply>((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(actionId)
        reject(new AmiActionTimeout(`AMI action ${name} got no complete reply within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(actionId, { resolve, reject, timer, list: false, events: [] })
      socket.write(wire)
    })
  }

  private connect(): void {
    this.reconnectTimer = null
    const parser = new AmiParser(
      {
        onBanner: () => this.login(socket),
        onMessage: (message) => this.dispatch(message),
        onOverflow: () => {
          this.problem(`AMI ${this.where} sent a frame over ${this.options.maxFrameChars ?? MAX_FRAME_CHARS} characters without an end; reconnecting`)
          socket.destroy()
          this.lostConnection(socket)
        },
      },
      this.options.maxFrameChars,
    )
    const socket = createConnection({ host: this.options.host, port: this.options.port })
    this.socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) parser.push(chunk)
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (this.socket === socket && this.currentStatus !== 'up') this.problem(`AMI ${this.where} unreachable: ${error.code ?? 'connection error'}; retrying`)
    })
    socket.on('close', () => this.lostConnection(socket))
    this.loginDeadline = this.timers.setTimeout(() => {
      if (this.socket !== socket || this.currentStatus === 'up') return
      this.problem(`AMI ${this.where} did not greet and accept a login within ${this.settings.actionTimeoutMs} ms; reconnecting`)
      socket.destroy()
      this.lostConnection(socket)
    }, this.settings.actionTimeoutMs)
  }

  private login(socket: Socket): void {
    const { username, secret } = this.options
    this.send('Login', { Username: username, Secret: secret }, this.settings.actionTimeoutMs).then(
      (reply) => this.loginAnswered(socket, reply.response),
      () => {}, // a drop, or the login deadline, which reconnects
    )
  }

  private loginAnswered(socket: Socket, response: AmiMessage): void {
    if (this.socket !== socket) return
    if (response.get('Response') !== 'Success') {
      // Asterisk's message is fixed text ("Authentication failed"); it never echoes the credentials.
      this.problem(`AMI login to ${this.where} refused (${response.get('Message') ?? 'no message'}): check ami_username and the secret; retrying`)
      socket.destroy()
      return
    }
    this.timers.clearTimeout(this.loginDeadline)
    this.failures = 0
    this.lastProblem = null
    this.options.log(`AMI connected to ${this.where}`)
    this.setStatus('up')
    this.schedulePing(socket)
  }

  private schedulePing(socket: Socket): void {
    this.pingTimer = this.timers.setTimeout(() => {
      if (this.socket !== socket) return
      this.send('Ping', {}, this.settings.actionTimeoutMs).then(
        () => this.schedulePing(socket),
        (error) => {
          if (this.socket !== socket || !(error instanceof AmiActionTimeout)) return
          this.problem(`AMI ${this.where} did not answer a ping; reconnecting`)
          socket.destroy()
        },
      )
    }, this.settings.pingIntervalMs)
  }

  private dispatch(message: AmiMessage): void {
    const actionId = message.get('ActionID')
    const pending = actionId === undefined ? undefined : this.pending.get(actionId)
    if (pending && actionId !== undefined) return this.answer(actionId, pending, message)
    if (message.get('Event') === undefined) return // a response nobody waits for any more
    if (actionId?.startsWith(this.idPrefix)) return // the rest of a list whose action timed out
    for (const listener of this.eventListeners) listener(message)
  }

  private answer(actionId: string, pending: Pending, message: AmiMessage): void {
    const eventList = message.get('EventList')?.toLowerCase()
    if (message.get('Event') === undefined) {
      pending.response = message
      pending.list = eventList === 'start'
      if (!pending.list) this.settle(actionId, pending)
      return
    }
    if (eventList === 'complete') return this.settle(actionId, pending)
    pending.events.push(message)
  }

  private settle(actionId: string, pending: Pending): void {
    this.pending.delete(actionId)
    this.timers.clearTimeout(pending.timer)
    pending.resolve({ response: pending.response!, events: pending.events })
  }

  private lostConnection(socket: Socket | null): void {
    if (socket === null || this.socket !== socket) return
    this.socket = null
    this.timers.clearTimeout(this.pingTimer)
    this.timers.clearTimeout(this.loginDeadline)
    this.pingTimer = null
    const wasUp = this.currentStatus === 'up'
    for (const [actionId, pending] of this.pending) {
      this.pending.delete(actionId)
      this.timers.clearTimeout(pending.timer)
      pending.reject(new AmiDisconnected(`AMI connection to ${this.where} dropped`))
    }
    if (wasUp) {
      if (!this.closed) this.options.log(`AMI connection to ${this.where} lost; reconnecting`)
      this.setStatus('down')
    }
    if (!this.closed) this.scheduleReconnect()
  }

  /** The next delay: backoffInitialMs doubling per failure up to backoffMaxMs, then between half and all of it. */
  nextDelayMs(): number {
    const ceiling = Math.min(this.settings.backoffMaxMs, this.settings.backoffInitialMs * 2 ** Math.min(this.failures, 30))
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2)
  }

  private scheduleReconnect(): void {
    const delay = this.nextDelayMs()
    this.failures += 1
    this.reconnectTimer = this.timers.setTimeout(() => {
      if (!this.closed) this.connect()
    }, delay)
  }

  private problem(line: string): void {
    if (line === this.lastProblem) return
    this.lastProblem = line
    this.options.log(line)
  }

  private setStatus(status: AmiStatus): void {
    this.currentStatus = status
    for (const listener of this.statusListeners) listener(status)
  }
}
