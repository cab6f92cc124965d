/**
 * Full snapshots across nodes (README "Several nodes"): a snapshot is stored in Redis and
 * published to every node, and each node, its publisher too, feeds what arrives into its own sink
 * (the personalised feed). `full` publishes whatever it is given (the ingest route's snapshots);
 * `producer(lock)` is the sink for this node's AMI engine, which publishes only while this node
 * holds the PBX's producer lock (producer-lock.ts) and, when it becomes the holder, publishes its
 * latest snapshots at once.
 *
 * Keys:
 * - `softphone:snapshot:<kind>`: the last full snapshot of each kind, loaded after every (re)connect.
 * - `softphone:snapshots`: the pub/sub channel every node follows.
 * Both carry JSON {kind, snapshot}.
 */
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import { StoreUnavailableError } from '../store/outage'
import type { ProducerLock } from './producer-lock'
import { SNAPSHOT_KINDS, type SnapshotKind, type SnapshotOf, type SnapshotSink } from './snapshot'

const LAST_PREFIX = 'softphone:snapshot:'
export const SNAPSHOTS_CHANNEL = 'softphone:snapshots'

const LATEST_RETRY_MS = 100

/** Stores ARGV[1] in KEYS[1] and publishes it on KEYS[2], so the stored one is the last published. */
const PUBLISH = new RedisScript(`
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('PUBLISH', KEYS[2], ARGV[1])
`)

interface WireSnapshot {
  kind: SnapshotKind
  snapshot: SnapshotOf<SnapshotKind>
}

/** What the fan-out uses of the link. */
export type FanoutLink = Pick<RedisLink, 'state' | 'subscribe' | 'onUp' | 'onDown' | 'send' | 'eval'>

export interface SnapshotFanoutOptions {
  link: FanoutLink
  /** This node's own sink: the personalised feed. */
  local: SnapshotSink
  log: (line: string) => void
}

export class SnapshotFanout implements SnapshotSink {
  /** The text last fed to the local sink per kind: a reload that brings nothing new feeds nothing. */
  private readonly fed = new Map<SnapshotKind, string>()
  /** What arrives by pub/sub while the last snapshots are reloaded waits here (as in redis-bus.ts). */
  private waiting: string[] | null = []

  constructor(private readonly options: SnapshotFanoutOptions) {
    options.link.subscribe(SNAPSHOTS_CHANNEL, (text) => this.arrived(text))
    options.link.onDown(() => (this.waiting ??= []))
    options.link.onUp(() => this.reload())
  }

  /**
   * Publishes to every node. Throws a store outage when Redis is unreachable, so the caller can
   * answer 503 (ingest) or try again (the AMI engine retries a failed publish).
   */
  full<K extends SnapshotKind>(kind: K, snapshot: SnapshotOf<K>): void {
    const { link, log } = this.options
    if (link.state !== 'up') throw new StoreUnavailableError('redis unreachable')
    const text = JSON.stringify({ kind, snapshot })
    link.eval(PUBLISH, [lastKey(kind), SNAPSHOTS_CHANNEL], [text]).catch((error: Error) => log(`redis: ${kind} snapshot not published (${error.message})`))
  }

  /** The sink for this node's AMI engine: it publishes only while `lock` is held. */
  producer(lock: Pick<ProducerLock, 'isLeader' | 'onChange'>): SnapshotSink {
    const latest = new Map<SnapshotKind, SnapshotOf<SnapshotKind>>()
    lock.onChange((leader) => {
      if (leader) this.publishLatest(latest, lock)
    })
    return {
      full: (kind, snapshot) => {
        latest.set(kind, snapshot)
        if (lock.isLeader()) this.full(kind, snapshot)
      },
    }
  }

  /**
   * The lock may be taken while the link still runs its reconnect hooks, before it takes
   * publications: then this tries again shortly, for as long as the lock is held.
   */
  private publishLatest(latest: ReadonlyMap<SnapshotKind, SnapshotOf<SnapshotKind>>, lock: Pick<ProducerLock, 'isLeader'>): void {
    if (!lock.isLeader()) return
    try {
      for (const [kind, snapshot] of latest) this.full(kind, snapshot)
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error
      setTimeout(() => this.publishLatest(latest, lock), LATEST_RETRY_MS).unref?.()
    }
  }

  private arrived(text: string): void {
    if (this.waiting) this.waiting.push(text)
    else this.feed(text)
  }

  /** The last snapshot of each kind, then what arrived meanwhile. */
  private async reload(): Promise<void> {
    this.waiting ??= []
    for (const kind of SNAPSHOT_KINDS) {
      const text = (await this.options.link.send('GET', [lastKey(kind)])) as string | null
      if (text !== null) this.feed(text)
    }
    const waiting = this.waiting
    this.waiting = null
    for (const text of waiting) this.feed(text)
  }

  private feed(text: string): void {
    let wire: WireSnapshot
    try {
      wire = JSON.parse(text) as WireSnapshot
    } catch {
      this.options.log(`redis: snapshot that is not JSON dropped (${text.length} bytes)`)
      return
    }
    if (!SNAPSHOT_KINDS.includes(wire.kind) || this.fed.get(wire.kind) === text) return
    this.fed.set(wire.kind, text)
    try {
      this.options.local.full(wire.kind, wire.snapshot)
    } catch (error) {
      this.options.log(`redis: ${wire.kind} snapshot not taken by this node (${(error as Error).message})`)
    }
  }
}

const lastKey = (kind: SnapshotKind) => `${LAST_PREFIX}${kind}`
