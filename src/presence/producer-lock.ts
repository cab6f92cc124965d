/**
 * One AMI producer per PBX when several nodes run AMI (README "Several nodes"): the nodes compete
 * for a Redis lock and only its holder publishes snapshots (producer-sink.ts). The holder renews
 * the lock well within its TTL; a holder that can't renew (Redis unreachable, the lock taken)
 * steps down at once, so two nodes never publish as leader at the same time, and another node takes
 * over once the lock's TTL has run out.
 *
 * Key: `softphone:producer:<name>`, this node's instance id, with a TTL (SET NX PX).
 */
import { RedisScript, type RedisLink } from '../store/redis/redis-link'

const LOCK_PREFIX = 'softphone:producer:'
export const LOCK_TTL_MS = 10_000
export const LOCK_RENEW_MS = 3_000

/** Compare-and-PEXPIRE: renews KEYS[1] for ARGV[2] ms if ARGV[1] holds it. */
const RENEW = new RedisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

/** Compare-and-DEL. */
const RELEASE = new RedisScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

/** What the lock uses of the link. */
export type LockLink = Pick<RedisLink, 'onUp' | 'onDown' | 'send' | 'eval'>

export interface ProducerLockOptions {
  link: LockLink
  /** The PBX the producers read, e.g. its AMI address. */
  name: string
  instanceId?: string
  ttlMs?: number
  renewMs?: number
  log: (line: string) => void
}

export class ProducerLock {
  readonly instanceId: string
  private readonly key: string
  private readonly ttlMs: number
  private readonly renewMs: number
  private readonly listeners: Array<(leader: boolean) => void> = []
  private leader = false
  /** When the last successful claim or renewal was sent (performance.now()). */
  private confirmedAt = 0
  private timer: ReturnType<typeof setInterval> | null = null
  private ticking = false
  private closed = false

  constructor(private readonly options: ProducerLockOptions) {
    this.instanceId = options.instanceId ?? crypto.randomUUID()
    this.key = `${LOCK_PREFIX}${options.name}`
    this.ttlMs = options.ttlMs ?? LOCK_TTL_MS
    this.renewMs = options.renewMs ?? LOCK_RENEW_MS
    options.link.onDown(() => this.become(false))
    // After a reconnect, compete at once rather than at the next renewal.
    options.link.onUp(() => {
      if (this.timer) void this.tick()
    })
  }

  /**
   * Holding the lock, confirmed less than a TTL ago: a renewal stuck behind a stalled event loop
   * must not leave this node publishing after the lock may have passed to another.
   */
  isLeader(): boolean {
    return this.leader && performance.now() - this.confirmedAt < this.ttlMs
  }

  /** Called with true when this node becomes the producer, with false when it stops being it. */
  onChange(listener: (leader: boolean) => void): void {
    this.listeners.push(listener)
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.renewMs)
    this.timer.unref?.()
    void this.tick()
  }

  /** Stops competing and hands the lock back, so another node takes over without waiting for the TTL. */
  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.become(false)
    await this.release()
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return
    this.ticking = true
    const sentAt = performance.now()
    try {
      const held = await this.claim()
      // A claim that was under way when the lock closed: hand it back too.
      if (this.closed) {
        if (held) await this.release()
        return
      }
      if (held) this.confirmedAt = sentAt
      this.become(held)
    } catch (error) {
      if (this.leader) this.options.log(`producer lock ${this.options.name}: can't renew (${(error as Error).message}); stepping down`)
      this.become(false)
    } finally {
      this.ticking = false
    }
  }

  /** Renews the lock if this node holds it (also from before an outage), else takes it if it is free. */
  private async claim(): Promise<boolean> {
    const { link } = this.options
    if (Number(await link.eval(RENEW, [this.key], [this.instanceId, String(this.ttlMs)])) === 1) return true
    return (await link.send('SET', [this.key, this.instanceId, 'NX', 'PX', String(this.ttlMs)])) === 'OK'
  }

  /** Compare-and-DEL: only this node's own lock goes. */
  private async release(): Promise<void> {
    try {
      await this.options.link.eval(RELEASE, [this.key], [this.instanceId])
    } catch {
      // Unreachable: the lock runs out by itself.
    }
  }

  private become(leader: boolean): void {
    if (leader === this.leader) return
    this.leader = leader
    this.options.log(`producer lock ${this.options.name}: ${leader ? 'this node produces' : 'this node stopped producing'}`)
    for (const listener of this.listeners) listener(leader)
  }
}
