/**
 * The node's two connections to Redis (README "Several nodes"): one for commands and scripts, one
 * for pub/sub (a subscribed connection takes no other commands). Bun's built-in client speaks the
 * protocol; this class owns reconnecting, with backoff, so that after every reconnect the `onUp`
 * hooks (re-subscribe, reload revocations) finish before the link reports itself up again.
 * Commands never queue while down: they fail at once with StoreUnavailableError, a 503 to clients.
 */
import { RedisClient } from 'bun'
import { createHash } from 'node:crypto'
import type { Clock } from '../../clock'
import { StoreUnavailableError } from '../outage'

const BACKOFF_FIRST_MS = 100
const BACKOFF_MAX_MS = 5000
const CONNECT_TIMEOUT_MS = 3000

/** A Lua script, run by its SHA-1 (EVALSHA) once Redis knows it. */
export class RedisScript {
  readonly sha: string
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

export interface RedisLinkOptions {
  url: string
  clock: Clock
  log: (line: string) => void
  /** Where lines and errors name the server: the URL without its password. */
  label: string
}

export type LinkState = 'connecting' | 'up' | 'down' | 'closed'

export class RedisLink {
  private commands: RedisClient | null = null
  private subscriber: RedisClient | null = null
  private readonly channels = new Map<string, (message: string) => void>()
  private readonly upHooks: Array<() => Promise<void> | void> = []
  private readonly downHooks: Array<() => void> = []
  private linkState: LinkState = 'connecting'
  private lostAt: number | null = null
  private attempt = 0
  private retry: ReturnType<typeof setTimeout> | null = null

  constructor(private readonly options: RedisLinkOptions) {
    // Down from the start: until the first connect, nothing is verified from an empty copy.
    this.lostAt = options.clock.now()
  }

  get state(): LinkState {
    return this.linkState
  }

  /** When the link went down (ms since the epoch, by the clock), or null while up. */
  downSince(): number | null {
    return this.lostAt
  }

  /** Runs after every (re)connect, in order, before the link is up; a hook that throws makes it reconnect. */
  onUp(hook: () => Promise<void> | void): void {
    this.upHooks.push(hook)
  }

  onDown(hook: () => void): void {
    this.downHooks.push(hook)
  }

  /** Delivered in order of publication; kept across reconnects. */
  subscribe(channel: string, listener: (message: string) => void): void {
    this.channels.set(channel, listener)
  }

  start(): void {
    void this.connect()
  }

  /** A command on the command connection; fails at once when it is not connected. */
  async send(command: string, args: string[]): Promise<unknown> {
    const client = this.commands
    if (!client?.connected || this.linkState === 'closed') throw new StoreUnavailableError('redis unreachable')
    try {
      return await client.send(command, args)
    } catch (error) {
      throw this.asOutage(error)
    }
  }

  /** Like send, also while the up hooks run: for them only. */
  async eval(script: RedisScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    try {
      return await this.send('EVALSHA', [script.sha, String(keys.length), ...keys, ...args])
    } catch (error) {
      if (!String((error as Error).message).includes('NOSCRIPT')) throw error
      return this.send('EVAL', [script.source, String(keys.length), ...keys, ...args])
    }
  }

  close(): void {
    this.linkState = 'closed'
    if (this.retry) clearTimeout(this.retry)
    this.commands?.close()
    this.subscriber?.close()
  }

  private async connect(): Promise<void> {
    if (this.linkState === 'closed') return
    const options = { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: CONNECT_TIMEOUT_MS }
    const commands = new RedisClient(this.options.url, options)
    const subscriber = new RedisClient(this.options.url, options)
    this.commands = commands
    this.subscriber = subscriber
    const lost = (error?: Error) => this.lost(commands, error)
    commands.onclose = lost
    subscriber.onclose = lost
    try {
      await Promise.all([commands.connect(), subscriber.connect()])
      for (const [channel, listener] of this.channels) await subscriber.subscribe(channel, listener)
      for (const hook of this.upHooks) await hook()
    } catch (error) {
      return this.lost(commands, error as Error)
    }
    // Closed or replaced while the hooks ran.
    if (this.commands !== commands || (this.linkState as LinkState) === 'closed') return
    this.attempt = 0
    this.lostAt = null
    this.linkState = 'up'
    this.options.log(`redis: connected to ${this.options.label}`)
  }

  /** Either connection of the generation that `commands` belongs to failed: drop both, retry later. */
  private lost(commands: RedisClient, error?: Error): void {
    if (this.commands !== commands || this.linkState === 'closed') return
    const wasUp = this.linkState === 'up'
    this.commands = null
    this.linkState = 'down'
    this.lostAt ??= this.options.clock.now()
    commands.onclose = null
    commands.close()
    if (this.subscriber) {
      this.subscriber.onclose = null
      this.subscriber.close()
      this.subscriber = null
    }
    if (wasUp) {
      this.options.log(`redis: connection to ${this.options.label} lost (${describe(error)}); reconnecting`)
      for (const hook of this.downHooks) hook()
    }
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** this.attempt++, BACKOFF_MAX_MS)
    this.retry = setTimeout(() => void this.connect(), delay)
    this.retry.unref?.()
  }

  private asOutage(error: unknown): Error {
    const code = (error as { code?: string }).code
    // A server error reply (a script's error, a wrong type) is a bug, not an outage.
    if (code === 'ERR_REDIS_SERVER_ERROR' && !/^(LOADING|BUSY|MASTERDOWN|READONLY)/.test((error as Error).message)) return error as Error
    return new StoreUnavailableError(`redis: ${describe(error as Error)}`)
  }
}

function describe(error: Error | undefined): string {
  return error ? (error as { code?: string }).code ?? error.message : 'closed'
}
