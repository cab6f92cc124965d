/**
 * API keys (README "API keys"): made, listed, revoked and checked. Every key not revoked is held in
 * memory by hash, so a check never reads or writes the disk; last uses are kept there too and
 * written in batches (`flushLastUses`, every few seconds and at shutdown). A revocation made here
 * takes effect at once; one made by the CLI, at the next `reload`.
 */
import { createHash, randomBytes } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import type { Directory, DirectoryUser } from '../directory/directory'
import { ApiKeyStore, type ApiKeyRow } from './api-key-store'

export const API_KEY_PREFIX = 'sbk_'
/** 32 random bytes, base64url without padding: 43 characters. */
const KEY_BYTES = 32
const KEY_PATTERN = /^sbk_[A-Za-z0-9_-]{43}$/
export const API_KEY_LENGTH = API_KEY_PREFIX.length + 43
/** Characters shown to recognise a key: the marker and 8 of its random part. */
const SHOWN_PREFIX_LENGTH = API_KEY_PREFIX.length + 8
/** Active self-made keys per user; a new one beyond this revokes the one unused longest. */
export const MAX_SELF_MADE_KEYS = 10
export const SELF_MADE = 'self'

const hashApiKey = (key: string): string => createHash('sha256').update(key).digest('hex')

/** Length and characters only, before any hashing or lookup. */
export const isWellFormedApiKey = (text: string): boolean => text.length === API_KEY_LENGTH && KEY_PATTERN.test(text)

export function newApiKeyText(): string {
  return API_KEY_PREFIX + randomBytes(KEY_BYTES).toString('base64url')
}

export type KeyCheck =
  | { ok: true; user: DirectoryUser; key: ApiKeyRow }
  | { ok: false; reason: string }

/** What listing shows of a key: never the hash, and the user by name. */
export type ApiKeyView = Omit<ApiKeyRow, 'user_id' | 'username' | 'hash' | 'revoked_at'> & { user: string }

export interface MadeKey {
  /** The key itself: shown once to whoever made it, never stored or logged. */
  text: string
  row: ApiKeyRow
  /** A self-made key that the limit pushed out, if any. */
  replaced: ApiKeyRow | null
}

interface HeldKey {
  row: ApiKeyRow
  /** Unix seconds of the last use, null before the first; ahead of the table until the next flush. */
  lastUsedAt: number | null
}

export interface ApiKeySettings {
  /** `api_key_idle_minutes`: how long a new self-made key may stay unused. */
  idleMinutes: number
}

const SEEN_KEYS_LIMIT = 10_000

export class ApiKeyService {
  private byHash = new Map<string, HeldKey>()
  /**
   * Keys already seen, by their text, so a repeat skips the hash (as verified tokens are kept by
   * theirs). Emptied whenever a key leaves `byHash`; bounded like the token cache.
   */
  private readonly byText = new Map<string, HeldKey>()
  private readonly unflushed = new Set<HeldKey>()

  constructor(
    private readonly store: ApiKeyStore,
    private readonly directory: Directory,
    private readonly clock: Clock,
    private readonly settings: ApiKeySettings,
  ) {
    this.reload()
  }

  /** The hot path: memory only. */
  check(text: string, clientIp: string): KeyCheck {
    const held = this.byText.get(text) ?? this.lookUp(text)
    if (held === 'malformed') return { ok: false, reason: 'malformed api key' }
    if (!held) return { ok: false, reason: 'unknown or revoked api key' }
    const now = unixSeconds(this.clock)
    const { row } = held
    const dead = deadReason(held, now)
    if (dead) return { ok: false, reason: dead }
    if (row.bound_ip !== null && row.bound_ip !== clientIp) return { ok: false, reason: 'api key used from another address' }
    const user = this.directory.findByUsername(row.username)
    // A user removed and added again under the same name is someone else: its id differs.
    if (!user || user.disabled || user.id !== row.user_id) return { ok: false, reason: 'unknown or disabled user' }
    held.lastUsedAt = now
    this.unflushed.add(held)
    return { ok: true, user, key: row }
  }

  private lookUp(text: string): HeldKey | 'malformed' | undefined {
    if (!isWellFormedApiKey(text)) return 'malformed'
    const held = this.byHash.get(hashApiKey(text))
    if (held) {
      if (this.byText.size >= SEEN_KEYS_LIMIT) this.byText.clear()
      this.byText.set(text, held)
    }
    return held
  }

  /** A key for `user` made by itself, bound to its address (README "API keys"). */
  createSelfMade(user: DirectoryUser, clientIp: string, name = ''): MadeKey {
    const replaced = this.atSelfMadeLimit(user.username) ? this.leastRecentlyUsedSelfMade(user.username) : null
    if (replaced) this.revoke(replaced.id)
    return { ...this.create(user, { name, expires_at: null, idle_minutes: this.settings.idleMinutes, bound_ip: clientIp, created_by: SELF_MADE }), replaced }
  }

  /** A stable key made by an admin or the operator: no address, no idle limit, expiring only at `expiresAt`. */
  createStable(user: DirectoryUser, createdBy: string, name = '', expiresAt: number | null = null): MadeKey {
    return { ...this.create(user, { name, expires_at: expiresAt, idle_minutes: null, bound_ip: null, created_by: createdBy }), replaced: null }
  }

  /** Keys that still work, of one user or all, oldest first. */
  list(username?: string): ApiKeyView[] {
    const now = unixSeconds(this.clock)
    return [...this.byHash.values()]
      .filter((held) => (username === undefined || held.row.username === username) && !deadReason(held, now))
      .sort((a, b) => a.row.id - b.row.id)
      .map((held) => this.view(held))
  }

  /** The key with `id` if it is held (not revoked), working or not. */
  find(id: number): ApiKeyRow | null {
    for (const held of this.byHash.values()) if (held.row.id === id) return held.row
    return null
  }

  /** True if this call revoked it; from then on it fails at once. */
  revoke(id: number): boolean {
    const revoked = this.store.revoke(id, unixSeconds(this.clock))
    for (const [hash, held] of this.byHash) {
      if (held.row.id !== id) continue
      this.byHash.delete(hash)
      this.unflushed.delete(held)
    }
    this.byText.clear()
    return revoked
  }

  /** Writes the last uses made since the previous flush, in one transaction. */
  flushLastUses(): number {
    if (this.unflushed.size === 0) return 0
    const uses = [...this.unflushed].map((held) => ({ id: held.row.id, at: idleSince(held) }))
    this.store.recordLastUses(uses)
    this.unflushed.clear()
    return uses.length
  }

  /**
   * Re-reads the table after another process changed it (the CLI): keys it revoked are dropped,
   * keys it made are taken up. Last uses not yet flushed are kept.
   */
  reload(): void {
    const previous = this.byHash
    const next = new Map<string, HeldKey>()
    for (const row of this.store.notRevoked()) {
      const known = previous.get(row.hash)
      const lastUsedAt = latest(row.last_used_at, known?.lastUsedAt ?? null)
      // The same object: a last use waiting for the flush stays attached to it.
      const held = known ? Object.assign(known, { row, lastUsedAt }) : { row, lastUsedAt }
      next.set(row.hash, held)
    }
    for (const held of this.unflushed) if (next.get(held.row.hash) !== held) this.unflushed.delete(held)
    this.byHash = next
    this.byText.clear()
  }

  /** Deletes keys dead for long (api-key-store.ts); last uses are flushed first, so idle is judged on them. */
  purge(): number {
    this.flushLastUses()
    const deleted = this.store.purgeDead(unixSeconds(this.clock))
    if (deleted > 0) this.reload()
    return deleted
  }

  private create(user: DirectoryUser, fields: Pick<ApiKeyRow, 'name' | 'expires_at' | 'idle_minutes' | 'bound_ip' | 'created_by'>) {
    const text = newApiKeyText()
    const now = unixSeconds(this.clock)
    const row = this.store.insert({
      user_id: user.id,
      username: user.username,
      hash: hashApiKey(text),
      prefix: text.slice(0, SHOWN_PREFIX_LENGTH),
      created_at: now,
      ...fields,
    })
    this.byHash.set(row.hash, { row, lastUsedAt: null })
    return { text, row }
  }

  private selfMadeAlive(username: string): HeldKey[] {
    const now = unixSeconds(this.clock)
    return [...this.byHash.values()].filter((held) => held.row.username === username && held.row.created_by === SELF_MADE && !deadReason(held, now))
  }

  private atSelfMadeLimit(username: string): boolean {
    return this.selfMadeAlive(username).length >= MAX_SELF_MADE_KEYS
  }

  private leastRecentlyUsedSelfMade(username: string): ApiKeyRow | null {
    const oldest = this.selfMadeAlive(username).sort((a, b) => idleSince(a) - idleSince(b) || a.row.id - b.row.id)[0]
    return oldest?.row ?? null
  }

  private view(held: HeldKey): ApiKeyView {
    const { row } = held
    return {
      id: row.id,
      user: row.username,
      name: row.name,
      prefix: row.prefix,
      created_at: row.created_at,
      last_used_at: held.lastUsedAt,
      expires_at: row.expires_at,
      idle_minutes: row.idle_minutes,
      bound_ip: row.bound_ip,
      created_by: row.created_by,
    }
  }
}

const idleSince = (held: HeldKey): number => held.lastUsedAt ?? held.row.created_at

/** Why a held key no longer works (expired, or idle too long), or null. */
function deadReason(held: HeldKey, now: number): string | null {
  const { row } = held
  if (row.expires_at !== null && now >= row.expires_at) return 'expired api key'
  if (row.idle_minutes !== null && now - idleSince(held) >= row.idle_minutes * 60) return 'idle api key'
  return null
}

function latest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.max(a, b)
}
