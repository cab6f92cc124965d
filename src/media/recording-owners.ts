/**
 * Who may open a recording (README "Recordings: check-media-access"): in `owner` mode the parties
 * of the call it recorded, read from MikoPBX's CDR, and admins; in `any` mode every valid token.
 * check-media-access is the hottest route (bench/run.ts), so answers are kept in bounded maps,
 * filled on a miss and dropped when the CDR changes: a hit costs a Map lookup and a few compares.
 */
import type { Clock } from '../clock'
import type { DirectoryUser, Role } from '../directory/directory'
import { partyNumbersOf } from '../history/call-history'
import type { CdrReader, CdrSource } from '../history/cdr-reader'
import { MONITOR_DIR } from '../history/recordings'

export const RECORDINGS_ACCESS_MODES = ['owner', 'any'] as const
export type RecordingsAccess = (typeof RECORDINGS_ACCESS_MODES)[number]

const ADMIN_ROLES: ReadonlySet<Role> = new Set(['admin', 'superadmin'])

/** Recordings remembered with their parties, and names remembered as unknown, each at most. */
export const OWNER_CACHE_SIZE = 10_000
/** The CDR's data_version is read at most this often, so a new call's recording opens within it. */
export const CDR_CHANGE_CHECK_MS = 1000
/**
 * After a CDR read fails (MikoPBX holds its lock), reads are not tried again for this long: each try
 * may wait the busy timeout with the whole server paused (history/cdr-reader.ts).
 */
export const CDR_BACKOFF_MS = 1000

export const REFUSALS = {
  notParticipant: 'not a participant',
  unknown: 'unknown recording',
  noSource: 'no call history source',
  unavailable: 'call history unavailable',
} as const
export type OwnerRefusal = (typeof REFUSALS)[keyof typeof REFUSALS]

export type LogError = (error: unknown) => void
const logOnStderr: LogError = (error) =>
  console.error(JSON.stringify({ level: 'error', route: 'check-media-access', error: String(error) }))

export class RecordingOwners {
  /** Relative path → the numbers of every leg of its call; Map order is least recently used first. */
  private readonly known = new Map<string, ReadonlySet<string>>()
  private readonly unknown = new Set<string>()
  /** The directory's cache hands out the same user object until it changes (directory/cached.ts). */
  private readonly numbers = new WeakMap<DirectoryUser, readonly string[]>()
  private checkedAt = Number.NEGATIVE_INFINITY
  private backOffUntil = Number.NEGATIVE_INFINITY
  private version: number | null = null
  private reader: CdrReader | null = null

  constructor(
    private readonly source: CdrSource,
    private readonly clock: Clock,
    private readonly capacity: number = OWNER_CACHE_SIZE,
    private readonly logError: LogError = logOnStderr,
  ) {}

  /** Why `user` may not open the recording at `relative` (below the monitor directory), or null. */
  refusal(user: DirectoryUser, relative: string): OwnerRefusal | null {
    if (ADMIN_ROLES.has(user.role)) return null
    const now = this.clock.now()
    let parties: ReadonlySet<string> | OwnerRefusal
    try {
      parties = now < this.backOffUntil ? this.remembered(relative) : this.partiesOf(relative, now)
    } catch (error) {
      // Locked or broken CDR: a deny nginx understands, never a 5xx.
      this.backOffUntil = now + CDR_BACKOFF_MS
      this.logError(error)
      return REFUSALS.unavailable
    }
    if (typeof parties === 'string') return parties
    for (const number of this.numbersOf(user)) if (parties.has(number)) return null
    return REFUSALS.notParticipant
  }

  private numbersOf(user: DirectoryUser): readonly string[] {
    let numbers = this.numbers.get(user)
    if (numbers === undefined) {
      numbers = partyNumbersOf(user)
      this.numbers.set(user, numbers)
    }
    return numbers
  }

  /** What the maps already know, without touching the CDR. */
  private remembered(relative: string): ReadonlySet<string> | OwnerRefusal {
    return this.known.get(relative) ?? (this.unknown.has(relative) ? REFUSALS.unknown : REFUSALS.unavailable)
  }

  private partiesOf(relative: string, now: number): ReadonlySet<string> | OwnerRefusal {
    if (now - this.checkedAt >= CDR_CHANGE_CHECK_MS) this.source.followReplacement()
    const opening = this.source.open()
    if (opening.source !== 'cdr') return REFUSALS.noSource
    const reader = opening.reader
    // Another reader is another file (replaced, or reopened by call history): nothing remembered holds.
    if (reader !== this.reader) {
      this.forget()
      this.reader = reader
    }
    this.dropOnChange(() => reader.dataVersion(), now)
    const hit = this.known.get(relative)
    if (hit !== undefined) {
      this.known.delete(relative)
      this.known.set(relative, hit)
      return hit
    }
    if (this.unknown.has(relative)) return REFUSALS.unknown
    if (now < this.backOffUntil) return REFUSALS.unavailable
    const parties = reader.partiesOfRecording(uniqueIdOf(relative), MONITOR_DIR + relative)
    if (parties === null) {
      remember(this.unknown, relative, this.capacity)
      return REFUSALS.unknown
    }
    this.known.set(relative, parties)
    if (this.known.size > this.capacity) this.known.delete(this.known.keys().next().value!)
    return parties
  }

  private dropOnChange(dataVersion: () => number, now: number): void {
    if (now - this.checkedAt < CDR_CHANGE_CHECK_MS) return
    this.checkedAt = now
    let version: number
    try {
      version = dataVersion()
    } catch {
      // A rollback-journal file is unreadable, data_version included, while MikoPBX writes: what
      // is remembered stays valid until the next check, and misses wait for it too.
      this.backOffUntil = now + CDR_BACKOFF_MS
      return
    }
    if (version === this.version) return
    this.forget()
    this.version = version
  }

  /** The CDR changed, or is another file now: nothing remembered holds. */
  private forget(): void {
    this.version = null
    this.known.clear()
    this.unknown.clear()
  }
}

/** MikoPBX names a recording `<UNIQUEID>.<ext>`; a UNIQUEID has dots of its own (`1732370000.12`). */
function uniqueIdOf(relative: string): string {
  const name = relative.slice(relative.lastIndexOf('/') + 1)
  const dot = name.lastIndexOf('.')
  return dot > 0 ? name.slice(0, dot) : name
}

function remember(names: Set<string>, name: string, capacity: number): void {
  names.add(name)
  if (names.size > capacity) names.delete(names.values().next().value!)
}
