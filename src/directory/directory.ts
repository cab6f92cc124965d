/** Where softphone users and their secrets live. Implementations: embedded SQLite, MikoPBX (later). */
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
}

/** The directory can't take another password check right now; the same for every user. */
export class DirectoryBusyError extends Error {
  override name = 'DirectoryBusyError'
}

export interface Directory {
  /**
   * The enabled user whose password matches, else null. Unknown, disabled and wrong-password
   * attempts take about the same time and are indistinguishable to the caller
   * (README "Security notes and decisions"). Throws DirectoryBusyError when too many checks are
   * already waiting.
   */
  authenticate(username: string, password: string): Promise<DirectoryUser | null>
  findById(id: number): DirectoryUser | null
  findByUsername(username: string): DirectoryUser | null
}
