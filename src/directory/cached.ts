/**
 * Keeps directory lookups off the hot path: check-media-access and profile look users up in
 * memory. The cache is dropped whenever the underlying store changes (see store/change-watch.ts).
 */
import type { Directory, DirectoryUser } from './directory'

export class CachedDirectory implements Directory {
  private readonly byUsername = new Map<string, DirectoryUser | null>()

  constructor(private readonly inner: Directory) {}

  authenticate(username: string, password: string): Promise<DirectoryUser | null> {
    return this.inner.authenticate(username, password)
  }

  findById(id: number): DirectoryUser | null {
    return this.inner.findById(id)
  }

  findByUsername(username: string): DirectoryUser | null {
    let user = this.byUsername.get(username)
    if (user === undefined) {
      user = this.inner.findByUsername(username)
      this.byUsername.set(username, user)
    }
    return user
  }

  invalidate(): void {
    this.byUsername.clear()
  }
}
