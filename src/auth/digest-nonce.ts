/**
 * Stateless nonces and opaques bound to the client address, and the one piece of state Digest
 * needs: the last nonce count accepted per nonce (README "HTTP Digest").
 *
 * nonce  = base64url(issued-at seconds (8 bytes) ‖ 8 random bytes ‖ HMAC-SHA256(key, "nonce" ‖ those 16 bytes ‖ address))
 * opaque = base64url(HMAC-SHA256(key, "opaque" ‖ address)), first 24 bytes
 *
 * The random bytes keep two challenges in the same second (SHA-256 and MD5, or two clients behind
 * one NAT address) from sharing a nonce and so a nonce count.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import { DigestInvalidNonceError } from './digest-errors'

export const DEFAULT_NONCE_LIFETIME_SECONDS = 300
/** Nonces whose counts are remembered at once; see NonceCounts for what happens past it. */
export const MAX_TRACKED_NONCES = 20_000

const STAMP_BYTES = 16
const MAC_BYTES = 32
const OPAQUE_BYTES = 24

export interface NonceCheck {
  /** Seconds since the epoch when it was issued. */
  issuedAt: number
  expired: boolean
}

export class DigestNonces {
  /** The key before the last rotation: what it issued is recognised, as expired (rotate()). */
  private previousKey: Uint8Array | null = null

  constructor(
    private key: Uint8Array,
    private readonly clock: Clock,
    readonly lifetimeSeconds = DEFAULT_NONCE_LIFETIME_SECONDS,
  ) {}

  issue(address: string): string {
    const stamp = Buffer.alloc(STAMP_BYTES)
    stamp.writeBigUInt64BE(BigInt(unixSeconds(this.clock)))
    randomBytes(8).copy(stamp, 8)
    return Buffer.concat([stamp, this.mac('nonce', stamp, address)]).toString('base64url')
  }

  opaque(address: string): string {
    return this.mac('opaque', Buffer.alloc(0), address).subarray(0, OPAQUE_BYTES).toString('base64url')
  }

  /**
   * Issues under `key` from now on. What the previous key issued counts as expired, so a client
   * that answers one correctly is told `stale=true` and retries at once; the key before that is
   * forgotten.
   */
  rotate(key: Uint8Array): void {
    this.previousKey = this.key
    this.key = key
  }

  /** Throws DigestInvalidNonceError unless both were issued here to `address`; expiry is the caller's to act on. */
  check(nonce: string, opaque: string, address: string): NonceCheck {
    const bytes = decode(nonce, STAMP_BYTES + MAC_BYTES)
    const opaqueBytes = decode(opaque, OPAQUE_BYTES)
    if (bytes !== null && opaqueBytes !== null) {
      const issuedAt = Number(bytes.readBigUInt64BE())
      if (this.issued(this.key, bytes, opaqueBytes, address)) return { issuedAt, expired: unixSeconds(this.clock) - issuedAt >= this.lifetimeSeconds }
      if (this.previousKey && this.issued(this.previousKey, bytes, opaqueBytes, address)) return { issuedAt, expired: true }
    }
    throw new DigestInvalidNonceError('nonce or opaque not issued to this address')
  }

  private issued(key: Uint8Array, nonce: Buffer, opaque: Buffer, address: string): boolean {
    const nonceOk = timingSafeEqual(nonce.subarray(STAMP_BYTES), this.mac('nonce', nonce.subarray(0, STAMP_BYTES), address, key))
    const opaqueOk = timingSafeEqual(opaque, this.mac('opaque', Buffer.alloc(0), address, key).subarray(0, OPAQUE_BYTES))
    return nonceOk && opaqueOk
  }

  /** A NUL ends the label and the address, so no two (label, stamp, address) triples share an input. */
  private mac(label: string, stamp: Buffer, address: string, key = this.key): Buffer {
    return createHmac('sha256', key).update(`${label}\0`).update(stamp).update(`${address}\0`).digest()
  }
}

/** Canonical base64url of exactly `length` bytes, else null. */
function decode(text: string, length: number): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null
  const bytes = Buffer.from(text, 'base64url')
  return bytes.length === length && bytes.toString('base64url') === text ? bytes : null
}

/**
 * The last accepted nonce count per nonce, so each count is used once (RFC 7616 §3.4: nc). Entries
 * leave when their nonce expires. When the table is full of live nonces, the oldest are dropped and
 * every nonce issued up to then counts as expired: the client is told `stale=true` and starts over
 * with a fresh nonce, and a dropped nonce can never be replayed from count 1.
 */
export class NonceCounts {
  private readonly counts = new Map<string, { count: number; issuedAt: number }>()
  /** Nonces issued at or before this second and not in the table are treated as expired. */
  private forgottenUpTo = -Infinity

  constructor(
    private readonly lifetimeSeconds = DEFAULT_NONCE_LIFETIME_SECONDS,
    private readonly capacity = MAX_TRACKED_NONCES,
  ) {}

  /** True when the nonce was dropped to bound the table: answer as for an expired nonce. */
  forgotten(nonce: string, issuedAt: number): boolean {
    return issuedAt <= this.forgottenUpTo && !this.counts.has(nonce)
  }

  /** Records `count` if it is above the last one accepted for `nonce`; false for a replay. */
  accept(nonce: string, issuedAt: number, count: number, now: number): boolean {
    const entry = this.counts.get(nonce)
    if (entry) {
      if (count <= entry.count) return false
      entry.count = count
      return true
    }
    if (count < 1) return false
    if (this.counts.size >= this.capacity) this.makeRoom(now)
    this.counts.set(nonce, { count, issuedAt })
    return true
  }

  get size(): number {
    return this.counts.size
  }

  private makeRoom(now: number): void {
    for (const [nonce, { issuedAt }] of this.counts) {
      if (now - issuedAt >= this.lifetimeSeconds) this.counts.delete(nonce)
    }
    if (this.counts.size < this.capacity) return
    // Full of live nonces: drop the oldest tenth, and remember up to when nothing is tracked.
    const byAge = [...this.counts].sort((a, b) => a[1].issuedAt - b[1].issuedAt)
    for (const [nonce, { issuedAt }] of byAge.slice(0, Math.max(1, Math.floor(this.capacity / 10)))) {
      this.counts.delete(nonce)
      this.forgottenUpTo = Math.max(this.forgottenUpTo, issuedAt)
    }
  }
}
