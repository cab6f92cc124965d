/**
 * One node's share of the Redis store for tests: a RedisLink, its in-memory mirror, the revocation
 * fan-out and the session records; and a relay that cuts one node off Redis while others stay.
 */
import type { Socket } from 'bun'
import { RedisSessionRecords } from '../src/sessions/redis-session-records'
import { RedisLink } from '../src/store/redis/redis-link'
import { RedisRevocations } from '../src/tokens/redis-revocations'
import { Revocations } from '../src/tokens/revocations'
import type { ManualClock } from './helpers'

export const STALE_SECONDS = 30

/** Polls until `condition` holds; fails the test after `ms`. */
export async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}

/** The node's in-memory copy. */
export function mirrorOn(clock: ManualClock): Revocations {
  return new Revocations(clock)
}

export interface Node {
  link: RedisLink
  mirror: Revocations
  revocations: RedisRevocations
  records: RedisSessionRecords
  logs: string[]
}

export async function startNode(clock: ManualClock, url: string): Promise<Node> {
  const logs: string[] = []
  const log = (line: string) => logs.push(line)
  const link = new RedisLink({ url, clock, log, label: 'test' })
  const mirror = mirrorOn(clock)
  const revocations = new RedisRevocations({ link, mirror, clock, staleSeconds: STALE_SECONDS, log })
  const records = new RedisSessionRecords(link, revocations)
  link.start()
  await until(() => link.state === 'up', 'the link to come up')
  return { link, mirror, revocations, records, logs }
}

/**
 * A TCP relay to the redis-server that can cut every connection through it and refuse new ones:
 * one node's network outage while the others stay connected.
 */
/** A client's connection to Redis through the relay; what it sends before that is up waits in `pending`. */
interface Relayed {
  upstream: Socket<unknown> | null
  pending: Uint8Array[]
}

export class CuttableRelay {
  private readonly relayed = new Map<Socket<unknown>, Relayed>()
  private cut = false
  private readonly listener

  constructor(targetPort: number) {
    this.listener = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        open: (client) => {
          if (this.cut) return void client.end()
          const relayed: Relayed = { upstream: null, pending: [] }
          this.relayed.set(client, relayed)
          void Bun.connect({
            hostname: '127.0.0.1',
            port: targetPort,
            socket: {
              open: (upstream) => {
                relayed.upstream = upstream as Socket<unknown>
                for (const chunk of relayed.pending.splice(0)) upstream.write(chunk)
              },
              data: (_upstream, chunk) => void client.write(chunk),
              close: () => void client.end(),
            },
          }).catch(() => client.end())
        },
        data: (client, chunk) => {
          const relayed = this.relayed.get(client)
          if (relayed?.upstream) relayed.upstream.write(chunk)
          else relayed?.pending.push(new Uint8Array(chunk))
        },
        close: (client) => {
          this.relayed.get(client)?.upstream?.end()
          this.relayed.delete(client)
        },
      },
    })
  }

  url(): string {
    return `redis://127.0.0.1:${this.listener.port}`
  }

  cutAll(): void {
    this.cut = true
    for (const [client, { upstream }] of this.relayed) {
      upstream?.end()
      client.end()
    }
  }

  restore(): void {
    this.cut = false
  }

  stop(): void {
    this.cutAll()
    this.listener.stop(true)
  }
}

