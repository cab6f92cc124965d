/**
 * Spaces (README "Spaces"): once a space's `expire_at` has passed, its users are refused on every
 * authenticated route and at login. Each space's expiry is kept in memory, so the check costs a map
 * lookup per request; writes through this service reload it, and the server reloads it when another
 * process (the `spaces` command) commits to the store.
 */
import type { Database } from 'bun:sqlite'
import type { PrincipalCheck } from '../auth/access-guard'
import type { AuthRefusal } from '../auth/authenticator'
import { unixSeconds, type Clock } from '../clock'
import type { DirectoryUser } from '../directory/directory'
import { DEFAULT_SPACE_ID, SpaceStore, type SpaceListing, type SpaceRow } from './space-store'

const EXPIRED: AuthRefusal = { failure: 'space_expired', reason: 'space expired' }

export class SpaceService {
  private readonly store: SpaceStore
  private expiries: Map<number, number | null>

  constructor(
    db: Database,
    private readonly clock: Clock,
  ) {
    this.store = new SpaceStore(db)
    this.expiries = this.store.expiries()
  }

  /** For the access guard's checks (auth/access-guard.ts). */
  readonly check: PrincipalCheck = (principal) => this.refusalFor(principal.user)

  /** EXPIRED for a user whose space has expired, else null. A space removed meanwhile refuses nobody. */
  refusalFor(user: DirectoryUser): AuthRefusal | null {
    const expireAt = this.expiries.get(user.spaceId ?? DEFAULT_SPACE_ID)
    return expireAt != null && unixSeconds(this.clock) >= expireAt ? EXPIRED : null
  }

  isExpired(space: SpaceRow): boolean {
    return space.expire_at !== null && unixSeconds(this.clock) >= space.expire_at
  }

  /** After another process committed to the store. */
  reload(): void {
    this.expiries = this.store.expiries()
  }

  list(): SpaceListing[] {
    return this.store.all()
  }

  /** Throws SpaceError('unknown'). */
  existing(domain: string): SpaceRow {
    return this.store.existing(domain)
  }

  add(domain: string, expireAt: number | null): SpaceRow {
    return this.reloaded(this.store.add(domain, expireAt, unixSeconds(this.clock)))
  }

  setExpiry(domain: string, expireAt: number | null): SpaceRow {
    return this.reloaded(this.store.setExpiry(domain, expireAt))
  }

  remove(domain: string): void {
    this.store.remove(domain)
    this.reload()
  }

  private reloaded<T>(result: T): T {
    this.reload()
    return result
  }
}
