/**
 * Keeps directory lookups off the hot path: check-media-access and profile look users up in
 * memory. A change to the underlying store (see store/change-watch.ts) makes every entry stale;
 * a stale entry is looked up again on its next use, and kept if that lookup meets an outage (the
 * PBX's writer holding the lock, its file briefly missing), so tokens already issued keep working
 * (README "Running on MikoPBX").
 */
import { storeOutageOf } from '../store/database'
import type { Directory, DirectoryUser } from './directory'

interface Entry {
  user: DirectoryUser | null
  /** The invalidation count when it was looked up; older entries are stale. */
  generation: number
}

export class CachedDirectory implements Directory {
  private readonly byUsername = new Map<string, Entry>()
  private generation = 0

  readonly authenticateNow?: (username: string, password: string) => DirectoryUser | null
  /** Not cached: an HA1 answers for a password, and must follow a change at once (README "HTTP Digest"). */
  readonly digestHa1?: Directory['digestHa1']

  constructor(private readonly inner: Directory) {
    if (inner.authenticateNow) {
      const check = inner.authenticateNow.bind(inner)
      this.authenticateNow = (username, password) => this.remember(username, this.generation, check(username, password))
    }
    if (inner.digestHa1) this.digestHa1 = inner.digestHa1.bind(inner)
  }

  async authenticate(username: string, password: string): Promise<DirectoryUser | null> {
    const generation = this.generation
    return this.remember(username, generation, await this.inner.authenticate(username, password))
  }

  /** A user who just logged in is remembered, so an outage right after can't refuse their new tokens. */
  private remember(username: string, generation: number, user: DirectoryUser | null): DirectoryUser | null {
    if (user && generation === this.generation) this.byUsername.set(username, { user, generation })
    return user
  }

  findById(id: number): DirectoryUser | null {
    return this.inner.findById(id)
  }

  findByUsername(username: string): DirectoryUser | null {
    const entry = this.byUsername.get(username)
    if (entry?.generation === this.generation) return entry.user
    let user: DirectoryUser | null
    try {
      user = this.inner.findByUsername(username)
    } catch (error) {
      if (entry && storeOutageOf(error)) return entry.user
      throw error
    }
    this.byUsername.set(username, { user, generation: this.generation })
    return user
  }

  invalidate(): void {
    this.generation++
  }
}
