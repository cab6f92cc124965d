/**
 * The signing keys (README "Key rotation"): the key file at `secret_key_path` (the legacy key,
 * ModuleSoftphoneBackend's format, never rewritten) and, once `secret rotate` ran, a ring file next
 * to it, `<secret_key_path>.ring`, with the keys that carry a `kid`. The newest key without a
 * retirement time signs; a key past its retirement time verifies nothing, whatever the file says.
 */
import { closeSync, fsyncSync, lstatSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'
import { watchDatabaseFile, type ChangeWatch } from '../store/change-watch'
import { KID } from './jws'
import { loadOrCreateSecretKey, SecretKeyError } from './secret-key'

const KEY_TEXT = /^[0-9a-f]{64}$/

export interface RingKey {
  kid: string
  /** ASCII bytes of the 64-character hex text, as for the legacy key. */
  key: Uint8Array
  createdAt: number
  /** Unix seconds from which the key verifies nothing; null for the signing key. */
  retiresAt: number | null
}

export interface KeyRingState {
  /** When the legacy key stopped verifying tokens without a kid; null while it still does. */
  legacyRetiresAt: number | null
  keys: RingKey[]
}

export const EMPTY_RING: KeyRingState = { legacyRetiresAt: null, keys: [] }

export function ringPathFor(secretKeyPath: string): string {
  return `${secretKeyPath}.ring`
}

export class KeyRing {
  constructor(
    readonly legacyKey: Uint8Array,
    private state: KeyRingState = EMPTY_RING,
  ) {}

  /** What a rotation written by another process becomes once the server reads it. */
  replace(state: KeyRingState): void {
    this.state = state
  }

  /** The newest key without a retirement time; the legacy key (no kid) before the first rotation. */
  signing(): { kid?: string; key: Uint8Array } {
    const current = this.state.keys.findLast((entry) => entry.retiresAt === null)
    return current ? { kid: current.kid, key: current.key } : { key: this.legacyKey }
  }

  /** The key that verifies tokens with this kid (undefined: without one) at `now`, if still live. */
  keyFor(kid: string | undefined, now: number): Uint8Array | undefined {
    if (kid === undefined) return live(this.state.legacyRetiresAt, now) ? this.legacyKey : undefined
    const entry = this.state.keys.find((candidate) => candidate.kid === kid)
    return entry && live(entry.retiresAt, now) ? entry.key : undefined
  }

  isLive(kid: string | undefined, now: number): boolean {
    return this.keyFor(kid, now) !== undefined
  }
}

const live = (retiresAt: number | null, now: number) => retiresAt === null || now < retiresAt

export interface Rotation {
  now: number
  /** How long tokens signed by the previous keys stay valid: the longest TTL plus clock tolerance. */
  graceSeconds: number
  /** The compromise procedure: every older key, the legacy one included, retires at once. */
  revokeAll: boolean
}

/**
 * The ring after one rotation: the signing key (or the legacy key) retires after the grace period,
 * or now with `revokeAll`; keys already retired are dropped; a new key with a new kid signs.
 */
export function rotated(state: KeyRingState, { now, graceSeconds, revokeAll }: Rotation): KeyRingState {
  const retireAt = (retiresAt: number | null) => (revokeAll ? now : (retiresAt ?? now + graceSeconds))
  const kept = state.keys.filter((entry) => live(entry.retiresAt, now)).map((entry) => ({ ...entry, retiresAt: retireAt(entry.retiresAt) }))
  const legacyRetiresAt = state.legacyRetiresAt !== null && state.legacyRetiresAt <= now ? state.legacyRetiresAt : retireAt(state.legacyRetiresAt)
  const text = randomBytes(32).toString('hex')
  const fresh: RingKey = { kid: newKid(state), key: Buffer.from(text, 'latin1'), createdAt: now, retiresAt: null }
  return { legacyRetiresAt, keys: [...kept.filter((entry) => live(entry.retiresAt, now)), fresh] }
}

/** 12 random bytes as 16 base64url characters, unlike every kid in the ring. */
function newKid(state: KeyRingState): string {
  for (;;) {
    const kid = randomBytes(12).toString('base64url')
    if (!state.keys.some((entry) => entry.kid === kid)) return kid
  }
}

export function serializeRing(state: KeyRingState): string {
  const keys = state.keys.map((entry) => ({
    kid: entry.kid,
    secret: Buffer.from(entry.key).toString('latin1'),
    created_at: entry.createdAt,
    retires_at: entry.retiresAt,
  }))
  return `${JSON.stringify({ legacy_retires_at: state.legacyRetiresAt, keys }, null, 2)}\n`
}

/** Throws SecretKeyError naming `source` when the text isn't a ring this build wrote. */
export function parseRing(text: string, source: string): KeyRingState {
  const bad = (why: string) => new SecretKeyError(`key ring ${source} is invalid (${why}); restore it from a backup`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw bad('not JSON')
  }
  const ring = value as { legacy_retires_at?: unknown; keys?: unknown }
  if (typeof ring !== 'object' || ring === null || !Array.isArray(ring.keys)) throw bad('no keys list')
  if (ring.legacy_retires_at !== null && !isSeconds(ring.legacy_retires_at)) throw bad('legacy_retires_at')
  const keys = ring.keys.map((entry: Record<string, unknown>, i: number): RingKey => {
    const { kid, secret, created_at: createdAt, retires_at: retiresAt } = entry ?? {}
    if (typeof kid !== 'string' || !KID.test(kid)) throw bad(`key ${i}: kid`)
    if (typeof secret !== 'string' || !KEY_TEXT.test(secret)) throw bad(`key ${i}: secret must be 64 lowercase hex characters`)
    if (!isSeconds(createdAt)) throw bad(`key ${i}: created_at`)
    if (retiresAt !== null && !isSeconds(retiresAt)) throw bad(`key ${i}: retires_at`)
    return { kid, key: Buffer.from(secret, 'latin1'), createdAt, retiresAt }
  })
  if (new Set(keys.map((entry) => entry.kid)).size !== keys.length) throw bad('a kid appears twice')
  return { legacyRetiresAt: ring.legacy_retires_at as number | null, keys }
}

const isSeconds = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0

/** The ring at `path`, with the key file's checks; the empty ring when there is no file. */
export function readRingFile(path: string): KeyRingState {
  let stat
  try {
    stat = lstatSync(path)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_RING
    throw new SecretKeyError(`cannot inspect key ring ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  }
  if (stat.isSymbolicLink()) throw new SecretKeyError(`key ring ${path} is a symlink; it must be a regular file`)
  if (!stat.isFile()) throw new SecretKeyError(`key ring ${path} is not a regular file`)
  if (stat.mode & 0o077) {
    throw new SecretKeyError(`key ring ${path} is accessible to other users (mode 0${(stat.mode & 0o777).toString(8)}); run: chmod 600 ${path}`)
  }
  try {
    return parseRing(readFileSync(path, 'utf8'), path)
  } catch (error) {
    if (error instanceof SecretKeyError) throw error
    throw new SecretKeyError(`cannot read key ring ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  }
}

/** Temp file (0600), fsync, rename, fsync of the directory: a reader sees the old ring or the new one. */
export function writeFileAtomically(path: string, content: string | Uint8Array): void {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const fd = openSync(temp, 'wx', 0o600)
    try {
      writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, path)
    const dir = openSync(dirname(path), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
  } catch (error) {
    try {
      unlinkSync(temp)
    } catch {}
    throw new SecretKeyError(`cannot write ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  }
}

/**
 * Keeps `ring` in step with the ring file, which `secret rotate` replaces from another process:
 * re-read whenever the file system reports a change next to it, and once a second in any case
 * (store/change-watch.ts). A ring that fails its checks is reported and the keys in memory stay.
 */
export function watchKeyRing(path: string, ring: KeyRing, log: (line: string) => void): ChangeWatch {
  let seen = fileVersion(path)
  return watchDatabaseFile(path, () => {
    const current = fileVersion(path)
    if (current === seen) return
    seen = current
    try {
      ring.replace(readRingFile(path))
      log(`key ring ${path} reloaded; signing with ${ring.signing().kid ?? 'the legacy key'}`)
    } catch (error) {
      log(`${(error as Error).message}; keeping the keys in memory`)
    }
  })
}

/** Identity and change time: a rename gives a new inode, an edit in place a new mtime or size. */
function fileVersion(path: string): string | null {
  try {
    const { dev, ino, mtimeMs, size } = statSync(path)
    return `${dev}:${ino}:${mtimeMs}:${size}`
  } catch {
    return null
  }
}

/** The server's keys at start: the legacy key file (created on first start) and the ring next to it. */
export function openKeyRing(secretKeyPath: string): { ring: KeyRing; generated: boolean } {
  const { key, generated } = loadOrCreateSecretKey(secretKeyPath)
  return { ring: new KeyRing(key, readRingFile(ringPathFor(secretKeyPath))), generated }
}
