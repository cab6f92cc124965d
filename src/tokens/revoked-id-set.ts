/**
 * The set of revoked token ids the hot path reads, compact enough for a million of them
 * (README "Tests, CI and benchmarks", `bench/revocations.ts`): each id is a 64-bit digest plus its expiry,
 * 12 bytes in one Int32Array, open addressing with linear probing. A Map of strings needs about
 * 150 bytes an id and over a second to fill at start.
 *
 * The digest of one of our ids (16 random bytes in base64url: 22 characters of `A-Za-z0-9-_`) is
 * its first 64 bits, reading each character by its place in ASCII order; any other string's is the
 * first 64 bits of its SHA-256. Equal ids always have equal digests, so a revoked id is never
 * missed. Two different ids share a digest with probability 2^-64, so with n ids revoked an
 * unrevoked one reads as revoked with probability about n / 2^64 (5e-14 for a million): that
 * token is refused and its app logs in again. The ids are random or HMACs minted with our key, so
 * nobody can pick ids that crowd one probe chain.
 *
 * An id's home slot is the top bits of its digest, so ids in SQLite's order (`ORDER BY jti`, ASCII)
 * have ascending home slots: a bulk load then writes the table front to back instead of touching a
 * random cache line per id, several times faster on a million.
 */
import { createHash } from 'node:crypto'

const OUR_ID = /^[\w-]{22}$/
const SLOT_WORDS = 3
const DIGEST_HI = 0
const DIGEST_LO = 1
/** Unix seconds as an unsigned 32-bit value; 0 marks an empty slot. */
const EXPIRES_AT = 2
const MIN_CAPACITY = 16
const MAX_EXPIRES_AT = 0xffff_ffff

/** Character code → its place among the base64url characters in ASCII order. */
const ASCII_RANK = new Int8Array(128)
'-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz'.split('').forEach((c, i) => (ASCII_RANK[c.charCodeAt(0)] = i))

/** The digest of the id last passed to digest(): module state, so the hot path allocates nothing. */
let digestHi = 0
let digestLo = 0

function digest(id: string): void {
  if (OUR_ID.test(id)) readLeadingCharacters(id)
  else hashOther(id)
}

function rankAt(id: string, index: number): number {
  return ASCII_RANK[id.charCodeAt(index)]!
}

/** 10 characters of 6 bits and the top 4 bits of the 11th. */
function readLeadingCharacters(id: string): void {
  const middle = rankAt(id, 5)
  digestHi = (rankAt(id, 0) << 26) | (rankAt(id, 1) << 20) | (rankAt(id, 2) << 14) | (rankAt(id, 3) << 8) | (rankAt(id, 4) << 2) | (middle >>> 4)
  digestLo = ((middle & 0xf) << 28) | (rankAt(id, 6) << 22) | (rankAt(id, 7) << 16) | (rankAt(id, 8) << 10) | (rankAt(id, 9) << 4) | (rankAt(id, 10) >>> 2)
}

function hashOther(id: string): void {
  const hash = createHash('sha256').update(id).digest()
  digestHi = hash.readInt32BE(0)
  digestLo = hash.readInt32BE(4)
}

/** Whole seconds in 1 … 2^32-1 (0 means empty; RFC 7519 allows a fractional `exp`, rounded up). */
function storedExpiry(expiresAt: number): number {
  const seconds = Math.ceil(expiresAt)
  // NaN lands here too: an id is never dropped for want of a usable expiry.
  if (!(seconds <= MAX_EXPIRES_AT)) return MAX_EXPIRES_AT | 0
  return Math.max(seconds, 1) | 0
}

/** The smallest power of two that holds `count` ids at most 3/4 full. */
function capacityFor(count: number): number {
  let capacity = MIN_CAPACITY
  while (count > (capacity / 4) * 3) capacity *= 2
  return capacity
}

export class RevokedIdSet {
  private slots!: Int32Array
  private mask = 0
  /** 32 - log2(capacity): `hi >>> homeShift` is an id's home slot. */
  private homeShift = 0
  private count = 0

  /**
   * `expected`: how many ids a bulk load will add. Size it up front: ids added in key order while
   * the table grows all land in its first slots and make one long probe chain.
   */
  constructor(expected = 0) {
    this.allocate(capacityFor(expected))
  }

  get size(): number {
    return this.count
  }

  get capacity(): number {
    return this.mask + 1
  }

  /** Makes room for `count` more ids in one step, so a bulk load never grows the table id by id. */
  reserve(count: number): void {
    const capacity = capacityFor(this.count + count)
    if (capacity > this.capacity) this.resize(capacity)
  }

  /** Adding an id again keeps the later expiry, which also covers two ids sharing a digest. */
  add(id: string, expiresAt: number): void {
    digest(id)
    const at = this.find()
    const expiry = storedExpiry(expiresAt)
    const stored = this.slots[at + EXPIRES_AT]!
    if (stored !== 0) {
      if (expiry >>> 0 > stored >>> 0) this.slots[at + EXPIRES_AT] = expiry
      return
    }
    if (this.count + 1 > (this.capacity / 4) * 3) {
      this.resize(this.capacity * 2)
      this.insert(digestHi, digestLo, expiry)
    } else {
      this.put(at, digestHi, digestLo, expiry)
    }
    this.count++
  }

  /** On every check-media-access: no allocation for our own ids. */
  has(id: string): boolean {
    digest(id)
    return this.slots[this.find() + EXPIRES_AT] !== 0
  }

  /** Drops every id whose expiry is at or before `now` (Unix seconds); returns how many. */
  purge(now: number): number {
    const before = this.count
    for (let index = 0; index <= this.mask; ) {
      const expiry = this.slots[index * SLOT_WORDS + EXPIRES_AT]!
      // A removal may pull a later id into this slot: look at it again.
      if (expiry !== 0 && expiry >>> 0 <= now) this.removeAt(index)
      else index++
    }
    const fitting = capacityFor(this.count * 2)
    if (fitting * 4 <= this.capacity) this.resize(fitting)
    return before - this.count
  }

  /** The word offset of the current digest's slot, or of the empty slot where it would go. */
  private find(): number {
    const slots = this.slots
    const mask = this.mask
    for (let index = digestHi >>> this.homeShift; ; index = (index + 1) & mask) {
      const at = index * SLOT_WORDS
      if (slots[at + EXPIRES_AT] === 0 || (slots[at + DIGEST_HI] === digestHi && slots[at + DIGEST_LO] === digestLo)) return at
    }
  }

  private insert(hi: number, lo: number, expiry: number): void {
    let index = hi >>> this.homeShift
    while (this.slots[index * SLOT_WORDS + EXPIRES_AT] !== 0) index = (index + 1) & this.mask
    this.put(index * SLOT_WORDS, hi, lo, expiry)
  }

  private put(at: number, hi: number, lo: number, expiry: number): void {
    this.slots[at + DIGEST_HI] = hi
    this.slots[at + DIGEST_LO] = lo
    this.slots[at + EXPIRES_AT] = expiry
  }

  private allocate(capacity: number): void {
    this.slots = new Int32Array(capacity * SLOT_WORDS)
    this.mask = capacity - 1
    this.homeShift = 32 - Math.log2(capacity)
  }

  private resize(capacity: number): void {
    const old = this.slots
    this.allocate(capacity)
    for (let at = 0; at < old.length; at += SLOT_WORDS) {
      if (old[at + EXPIRES_AT] !== 0) this.insert(old[at + DIGEST_HI]!, old[at + DIGEST_LO]!, old[at + EXPIRES_AT]!)
    }
  }

  /**
   * Backward-shift deletion, so no tombstones pile up: every later id of the probe chain that may
   * sit in the hole (its home slot is not between the hole and itself) moves back into it.
   */
  private removeAt(index: number): void {
    const slots = this.slots
    const mask = this.mask
    let hole = index
    for (let next = (index + 1) & mask; slots[next * SLOT_WORDS + EXPIRES_AT] !== 0; next = (next + 1) & mask) {
      const from = next * SLOT_WORDS
      const home = slots[from + DIGEST_HI]! >>> this.homeShift
      if (((next - home) & mask) < ((next - hole) & mask)) continue
      this.put(hole * SLOT_WORDS, slots[from + DIGEST_HI]!, slots[from + DIGEST_LO]!, slots[from + EXPIRES_AT]!)
      hole = next
    }
    this.put(hole * SLOT_WORDS, 0, 0, 0)
    this.count--
  }
}
