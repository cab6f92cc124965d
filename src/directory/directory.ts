/**
 * Where softphone users and their secrets live. Implementations: embedded SQLite (embedded.ts) and
 * MikoPBX's own database, read-only (mikopbx.ts). Lookups may throw an error that storeOutageOf
 * (store/database.ts) names an outage; the routes answer it with 503.
 */
import type { DigestAlgorithm } from '../auth/digest-header'

export const ROLES = ['user', 'admin', 'superadmin'] as const
export type Role = (typeof ROLES)[number]

export interface DirectoryUser {
  id: number
  /** The SIP extension, e.g. "201". */
  username: string
  displayName: string
  role: Role
  /** Up to 10 digits, or empty. */
  mobile: string
  disabled: boolean
  /** The user's space (README "Spaces"); absent means the default space, as for every MikoPBX user. */
  spaceId?: number
}

export interface Directory {
  /**
   * The enabled user whose password matches, else null. Unknown, disabled and wrong-password
   * attempts take about the same time and are indistinguishable to the caller
   * (README "Security notes and decisions").
   * Unbounded: the caller limits how many run at once (auth/password-login.ts).
   */
  authenticate(username: string, password: string): Promise<DirectoryUser | null>
  /**
   * The same check answered at once, by directories that compare without hashing (MikoPBX's
   * plaintext SIP secrets); such a login needs no password-check slot (auth/password-login.ts).
   */
  authenticateNow?(username: string, password: string): DirectoryUser | null
  /**
   * HTTP Digest's HA1 for an enabled user (auth/digest.ts), or null: stored per realm by the
   * embedded directory, computed from the SIP secret by MikoPBX's.
   */
  digestHa1?(username: string, realm: string, algorithm: DigestAlgorithm): string | null
  findById(id: number): DirectoryUser | null
  findByUsername(username: string): DirectoryUser | null
}
