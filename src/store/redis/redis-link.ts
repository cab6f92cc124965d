/**
 * The node's two connections to Redis (README "Several nodes"): one for commands and scripts, one
 * for pub/sub (a subscribed connection takes no other commands). Bun's built-in client speaks the
 * protocol; this class owns reconnecting, with backoff, so that after every reconnect the DB is
 * selected, the channels are subscribed and the `onUp` hooks (reload revocations) have finished,
 * in that order, before the link reports itself up again.
 * Commands never queue while down: they fail at once with StoreUnavailableError, a 503 to clients,
 * and a reply that takes over 3 s counts as an outage too.
 * An outage logs two lines whatever its length: one when it starts, one when the link is back.
 * Tests: test/unit/redis-link.test.ts, against a real redis-server.
 */
import { RedisClient } from 'bun'
import { createHash } from 'node:crypto'
import type { Clock } from '../../clock'
import { StoreUnavailableError } from '../outage'

const BACKOFF_FIRST_MS = 100
const BACKOFF_MAX_MS = 5000
const CONNECT_TIMEOUT_MS = 3000
const COMMAND_TIMEOUT_MS = 3000
/**
 * Both connections are pinged this often while up. A peer gone without a reset (a cut cable, a
 * paused server) is otherwise noticed only by the next command, and the subscriber sends none: a
 * node would go on trusting a revocation copy that no longer hears announcements.
 */
const HEARTBEAT_MS = 2000
/** Replies that mean "not now" rather than "wrong": retried by clients like an unreachable server. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN)\b/

/** A Lua script, run by its SHA-1 (EVALSHA) once Redis knows it. */
export class RedisScript {
  readonly sha: string
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

/** A parsed `redis_url` (store/redis/redis-url.ts) spreads into these: `{ ...target, clock, log }`. */
export interface RedisLinkOptions {
  /** For Bun's RedisClient, credentials included. */
  url: string
  /** Where lines and errors name the server: the URL without its password. */
  label: string
  /** Selected on the command connection after each connect (Bun ignores a DB over a unix socket). */
  db?: number
  /** true for rediss:// (implied by the scheme); TLS options to trust a private CA. */
  tls?: boolean | Bun.TLSOptions
  clock: Clock
  log: (line: string) => void
  /** Schedules the next attempt; tests pass a manual one. */
  retryTimer?: RetryTimer
  /** How long a reply may take before the server counts as gone; 3 s unless a test shortens it. */
  commandTimeoutMs?: number
  /** How often both connections are pinged while up; 2 s unless a test shortens it. */
  heartbeatMs?: number
}

/** Holds at most one pending attempt. */
export interface RetryTimer {
  after(ms: number, run: () => void): void
  cancel(): void
}

class RealRetryTimer implements RetryTimer {
  private handle: ReturnType<typeof setTimeout> | null = null

  after(ms: number, run: () => void): void {
    this.handle = setTimeout(() => {
      this.handle = null
      run()
    }, ms)
    this.handle.unref?.()
  }

  cancel(): void {
    if (this.handle) clearTimeout(this.handle)
    this.handle = null
  }
}

export type LinkState = 'connecting' | 'up' | 'down' | 'closed'

/** One attempt's pair of connections; every reconnect makes a new one, so late events of an old one are told apart. */
class Generation {
  /** The DB is selected: commands may run (the up hooks run on a ready generation). */
  ready = false
  readonly subscribed = new Set<string>()
  heartbeat: ReturnType<typeof setInterval> | null = null

  constructor(
    readonly commands: RedisClient,
    readonly subscriber: RedisClient,
  ) {}

  close(): void {
    if (this.heartbeat) clearInterval(this.heartbeat)
    for (const client of [this.commands, this.subscriber]) {
      client.onclose = null
      client.close()
    }
  }
}

export class RedisLink {
  private current: Generation | null = null
  private readonly channels = new Map<string, (message: string) => void>()
  private readonly upHooks: Array<() => Promise<void> | void> = []
  private readonly downHooks: Array<() => void> = []
  private linkState: LinkState = 'connecting'
  private lostAt: number | null = null
  /** The current outage has been logged; cleared when the link is up again. */
  private outageLogged = false
  private started = false
  private attempt = 0
  private readonly retryTimer: RetryTimer

  constructor(private readonly options: RedisLinkOptions) {
    // Down from the start: until the first connect, nothing is verified from an empty copy.
    this.lostAt = options.clock.now()
    this.retryTimer = options.retryTimer ?? new RealRetryTimer()
  }

  get state(): LinkState {
    return this.linkState
  }

  get label(): string {
    return this.options.label
  }

  /** When the link went down (ms since the epoch, by the clock), or null while up. */
  downSince(): number | null {
    return this.lostAt
  }

  /** Runs after every (re)connect, in order, before the link is up; a hook that throws makes it reconnect. */
  onUp(hook: () => Promise<void> | void): void {
    this.upHooks.push(hook)
  }

  /** Runs when a link that was up goes down. */
  onDown(hook: () => void): void {
    this.downHooks.push(hook)
  }

  /** Delivered in order of publication; kept across reconnects. A second call for a channel replaces its listener. */
  subscribe(channel: string, listener: (message: string) => void): void {
    this.channels.set(channel, listener)
    const generation = this.current
    if (generation?.ready) this.subscribeOn(generation, channel).catch((error) => this.failed(generation, error))
  }

  /** Connects, and keeps reconnecting until close(); a second call does nothing. */
  start(): void {
    if (this.started) return
    this.started = true
    void this.connect()
  }

  /**
   * A command on the command connection; fails at once with StoreUnavailableError when it is not
   * connected. The up hooks use it too, while the link is still connecting.
   */
  async send(command: string, args: readonly string[]): Promise<unknown> {
    const generation = this.current
    if (!generation?.ready || !generation.commands.connected) throw new StoreUnavailableError('redis unreachable')
    try {
      return await this.withinDeadline(generation, generation.commands.send(command, [...args]))
    } catch (error) {
      throw asOutage(error)
    }
  }

  /**
   * A server that stops answering (paused, or cut off without a reset) leaves the socket open, so
   * a reply gets a deadline; missing it drops the connections, on which later replies could no
   * longer be matched to their commands.
   */
  private async withinDeadline<T>(generation: Generation, reply: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeoutMs = this.options.commandTimeoutMs ?? COMMAND_TIMEOUT_MS
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new StoreUnavailableError(`redis: no reply within ${timeoutMs} ms`)
        // Rejected first: closing the connections rejects the reply too, with a vaguer reason.
        reject(error)
        this.failed(generation, error)
      }, timeoutMs)
    })
    try {
      return await Promise.race([reply, deadline])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The script by its SHA-1; by its source when Redis doesn't know it (restarted, or SCRIPT FLUSH). */
  async eval(script: RedisScript, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    try {
      return await this.send('EVALSHA', [script.sha, String(keys.length), ...keys, ...args])
    } catch (error) {
      if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error
      return this.send('EVAL', [script.source, String(keys.length), ...keys, ...args])
    }
  }

  /** Stops for good: no retry is left scheduled, and an attempt under way ends without effect. */
  close(): void {
    this.linkState = 'closed'
    this.retryTimer.cancel()
    this.current?.close()
    this.current = null
  }

  private async connect(): Promise<void> {
    if (this.linkState === 'closed') return
    let generation: Generation
    try {
      generation = this.open()
    } catch (error) {
      // A URL Bun refuses: retried like an unreachable server, so the node keeps running and says why.
      return this.failed(null, error)
    }
    this.current = generation
    try {
      await Promise.all([generation.commands.connect(), generation.subscriber.connect()])
      if (this.options.db) await this.withinDeadline(generation, generation.commands.send('SELECT', [String(this.options.db)]))
      generation.ready = true
      for (const channel of this.channels.keys()) await this.subscribeOn(generation, channel)
      for (const hook of this.upHooks) {
        if (this.current !== generation) return
        await hook()
      }
    } catch (error) {
      return this.failed(generation, error)
    }
    // close() or a failure replaced the generation while the hooks ran.
    if (this.current === generation) this.up(generation)
  }

  /** PING on both connections, each reply within the command deadline; a miss drops the generation. */
  private beat(generation: Generation): void {
    const pings = Promise.all([generation.commands.send('PING', []), generation.subscriber.ping()])
    this.withinDeadline(generation, pings).catch((error) => this.failed(generation, error))
  }

  private open(): Generation {
    const options = { autoReconnect: false, enableOfflineQueue: false, connectionTimeout: CONNECT_TIMEOUT_MS, ...(this.options.tls ? { tls: this.options.tls } : {}) }
    const commands = new RedisClient(this.options.url, options)
    const subscriber = new RedisClient(this.options.url, options)
    const generation = new Generation(commands, subscriber)
    commands.onclose = (error) => this.failed(generation, error)
    subscriber.onclose = (error) => this.failed(generation, error)
    return generation
  }

  /** The listener is looked up per message, so a later subscribe replaces it without resubscribing. */
  private async subscribeOn(generation: Generation, channel: string): Promise<void> {
    if (generation.subscribed.has(channel)) return
    generation.subscribed.add(channel)
    await generation.subscriber.subscribe(channel, (message) => this.deliver(channel, message))
  }

  /** A listener's bug costs its message, not the process: Bun treats a throw here as uncaught. */
  private deliver(channel: string, message: string): void {
    try {
      this.channels.get(channel)?.(message)
    } catch (error) {
      this.options.log(`redis: a message on ${channel} was dropped: its listener failed (${describe(error)})`)
    }
  }

  private up(generation: Generation): void {
    generation.heartbeat = setInterval(() => this.beat(generation), this.options.heartbeatMs ?? HEARTBEAT_MS)
    generation.heartbeat.unref?.()
    this.attempt = 0
    this.lostAt = null
    this.outageLogged = false
    this.linkState = 'up'
    this.options.log(`redis: connected to ${this.options.label}`)
  }

  /** An attempt, or the connections of the current generation, failed: drop both, retry later. */
  private failed(generation: Generation | null, error: unknown): void {
    if (this.current !== generation || this.linkState === 'closed') return
    const wasUp = this.linkState === 'up'
    this.current = null
    generation?.close()
    this.linkState = 'down'
    this.lostAt ??= this.options.clock.now()
    this.logOutage(wasUp, error)
    if (wasUp) this.runDownHooks()
    this.scheduleRetry()
  }

  /** Called from Bun's close event, where a throw would be uncaught. */
  private runDownHooks(): void {
    for (const hook of this.downHooks) {
      try {
        hook()
      } catch (error) {
        this.options.log(`redis: a down hook failed (${this.redacted(describe(error))})`)
      }
    }
  }

  private logOutage(wasUp: boolean, error: unknown): void {
    if (this.outageLogged) return
    this.outageLogged = true
    const reason = this.redacted(describe(error))
    this.options.log(
      wasUp
        ? `redis: connection to ${this.options.label} lost (${reason}); reconnecting`
        : `redis: cannot connect to ${this.options.label} (${reason}); retrying`,
    )
  }

  private scheduleRetry(): void {
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** this.attempt, BACKOFF_MAX_MS)
    if (delay < BACKOFF_MAX_MS) this.attempt++
    this.retryTimer.after(delay, () => void this.connect())
  }

  /** Bun's messages don't quote the URL today; this keeps its password out of the log if one ever does. */
  private redacted(text: string): string {
    const password = passwordIn(this.options.url)
    if (!password) return text
    return [password, safeDecode(password)].reduce((result, secret) => result.replaceAll(secret, '***'), text)
  }
}

function asOutage(error: unknown): Error {
  if (error instanceof StoreUnavailableError) return error
  const code = (error as { code?: string }).code
  const message = String((error as Error).message)
  // A server's error reply (a script's redis.error_reply, a wrong type, NOSCRIPT) is an answer, not an outage.
  if (code === 'ERR_REDIS_SERVER_ERROR' && !TRANSIENT_REPLY.test(message)) return error as Error
  return new StoreUnavailableError(`redis: ${describe(error)}`)
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return 'closed'
  return (error as { code?: string }).code ?? error.message
}

function passwordIn(url: string): string {
  const userinfo = /^[a-z+]+:\/\/([^/?#]*)@/.exec(url)?.[1] ?? ''
  const colon = userinfo.indexOf(':')
  return colon < 0 ? '' : userinfo.slice(colon + 1)
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
