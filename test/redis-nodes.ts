/**
 * Several "nodes" in one test process, each with its own RedisLink to one real redis-server
 * (test/redis-server.ts). Waiting here is for another process (Redis, a reconnect), never for the clock.
 */
import type { Clock } from '../src/clock'
import { RedisLink } from '../src/store/redis/redis-link'
import type { RedisServer } from './redis-server'

/** Polls until `condition` holds; fails after `timeoutMs` of real time. */
export async function until(condition: () => boolean, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}

export interface LinkOptions {
  url: string
  clock: Clock
  /** Registered before the first connect, as production code registers its hooks. */
  prepare?: (link: RedisLink) => void
}

/** A started link, once it is up. */
export async function openLink({ url, clock, prepare }: LinkOptions): Promise<RedisLink> {
  const link = new RedisLink({ url, clock, log: () => {}, label: url })
  prepare?.(link)
  link.start()
  await until(() => link.state === 'up', `link to ${url}`)
  return link
}

/**
 * A node that logs in as its own ACL user, so that a test can cut it off alone (`cutOff`) and let
 * it back (`letIn`). ACL users are not in the AOF: `add` again after a restart.
 */
export class NodeUser {
  constructor(
    private readonly server: RedisServer,
    readonly name: string,
    private readonly password = `${name}-password`,
  ) {
    this.add()
  }

  add(): void {
    this.server.cli('ACL', 'SETUSER', this.name, 'on', `>${this.password}`, '~*', '&*', '+@all')
  }

  url(): string {
    return `redis://${this.name}:${this.password}@127.0.0.1:${this.server.port}`
  }

  /** Its connections are closed, and it can't log in again until `letIn`. */
  cutOff(): void {
    this.server.cli('ACL', 'SETUSER', this.name, 'off')
    this.server.cli('CLIENT', 'KILL', 'USER', this.name)
  }

  letIn(): void {
    this.server.cli('ACL', 'SETUSER', this.name, 'on')
  }
}
