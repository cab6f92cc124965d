import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { randomBytes } from 'node:crypto'
import { RevokedIdSet } from '../../src/tokens/revoked-id-set'

const NOW = 1_800_000_000
const SEED = 20261130
const randomId = () => randomBytes(16).toString('base64url')
/** One of our ids that starts with `prefix`: its leading characters pick its digest and home slot. */
const idStartingWith = (prefix: string) => prefix + randomId().slice(prefix.length)

describe('RevokedIdSet', () => {
  test('has what was added and nothing else', () => {
    const set = new RevokedIdSet()
    const added = Array.from({ length: 5 }, randomId)
    for (const id of added) set.add(id, NOW + 60)
    expect(added.every((id) => set.has(id))).toBe(true)
    expect(set.size).toBe(5)
    expect(Array.from({ length: 1000 }, randomId).some((id) => set.has(id))).toBe(false)
  })

  test('adding an id again keeps one entry with the later expiry', () => {
    const set = new RevokedIdSet()
    const id = randomId()
    set.add(id, NOW + 100)
    set.add(id, NOW + 10)
    expect(set.size).toBe(1)
    expect(set.purge(NOW + 99)).toBe(0)
    expect(set.has(id)).toBe(true)
    expect(set.purge(NOW + 100)).toBe(1)
    expect(set.has(id)).toBe(false)
  })

  test('purge drops ids expired at or before now and keeps the rest', () => {
    const set = new RevokedIdSet()
    const ids = Array.from({ length: 300 }, randomId)
    ids.forEach((id, i) => set.add(id, NOW + i))
    expect(set.purge(NOW + 99)).toBe(100)
    expect(ids.filter((id) => set.has(id))).toEqual(ids.slice(100))
    expect(set.size).toBe(200)
  })

  test('an expiry that is fractional, in the past, past 2106 or not a number still keeps the id until it is due', () => {
    const set = new RevokedIdSet()
    const [fractional, past, far, notANumber] = Array.from({ length: 4 }, randomId) as [string, string, string, string]
    set.add(fractional, NOW + 0.5)
    set.add(past, -5)
    set.add(far, 2 ** 40)
    set.add(notANumber, NaN)
    expect([fractional, past, far, notANumber].every((id) => set.has(id))).toBe(true)
    expect(set.purge(NOW)).toBe(1)
    expect(set.has(past)).toBe(false)
    expect(set.purge(NOW + 1)).toBe(1)
    expect(set.has(fractional)).toBe(false)
    expect(set.purge(2 ** 32 - 2)).toBe(0)
    expect([far, notANumber].every((id) => set.has(id))).toBe(true)
  })

  test('grows past three quarters full and finds every id after each rehash', () => {
    const set = new RevokedIdSet()
    expect(set.capacity).toBe(16)
    const ids = Array.from({ length: 10_000 }, randomId)
    const capacities = new Set<number>()
    for (const id of ids) {
      set.add(id, NOW + 60)
      capacities.add(set.capacity)
    }
    expect([...capacities]).toEqual([16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384])
    expect(ids.every((id) => set.has(id))).toBe(true)
    expect(set.size).toBe(10_000)
  })

  test('a bulk load sized up front never rehashes: a million ids fit in 2^21 slots of 12 bytes', () => {
    expect(new RevokedIdSet(1_000_000).capacity).toBe(2 ** 21)
    expect(new RevokedIdSet(786_432).capacity).toBe(2 ** 20)
    expect(new RevokedIdSet(786_433).capacity).toBe(2 ** 21)
  })

  test('purge shrinks a mostly empty table, keeping what is left', () => {
    const set = new RevokedIdSet()
    const ids = Array.from({ length: 10_000 }, randomId)
    ids.forEach((id, i) => set.add(id, i < 9_990 ? NOW : NOW + 60))
    expect(set.purge(NOW)).toBe(9_990)
    expect(set.capacity).toBe(32)
    expect(ids.slice(9_990).every((id) => set.has(id))).toBe(true)
    expect(ids.slice(0, 9_990).some((id) => set.has(id))).toBe(false)
  })

  test('ids with the same home slot share one probe chain, across the end of the table, and survive removals from it', () => {
    const set = new RevokedIdSet()
    // 'zzzz', the highest leading characters: the last slot of a table this small, so the chain wraps to the start.
    const chain = Array.from({ length: 10 }, (_, i) => idStartingWith(`zzzz${i}`))
    const neighbours = Array.from({ length: 2 }, (_, i) => idStartingWith(`----${i}`))
    chain.forEach((id, i) => set.add(id, NOW + (i % 2)))
    for (const id of neighbours) set.add(id, NOW + 1)
    expect(set.capacity).toBe(16)
    expect([...chain, ...neighbours].every((id) => set.has(id))).toBe(true)
    expect(set.has(idStartingWith('zzzz9'))).toBe(false)
    expect(set.purge(NOW)).toBe(5)
    expect(chain.map((id) => set.has(id))).toEqual(chain.map((_, i) => i % 2 === 1))
    expect(neighbours.every((id) => set.has(id))).toBe(true)
  })

  test('two of our ids sharing their first 11 characters share a digest: both read as revoked (the documented false positive)', () => {
    const set = new RevokedIdSet()
    const a = 'abcdefghijkAAAAAAAAAAA'
    const b = 'abcdefghijkBBBBBBBBBBB'
    set.add(a, NOW + 60)
    expect(set.has(b)).toBe(true)
    set.add(b, NOW + 120)
    expect(set.size).toBe(1)
    set.purge(NOW + 60)
    expect(set.has(a)).toBe(true)
  })

  test('ids not of our form (22 base64url characters) are hashed and kept apart from their look-alikes', () => {
    const canonical = 'AAAAAAAAAAAAAAAAAAAAAA'
    const others = [
      'live',
      'jti-1',
      '',
      'AAAAAAAAAAAAAAAAAAAAA+',
      'AAAAAAAAAAAAAAAAAAAA/A',
      'AAAAAAAAAAAAAAAAAAAAAé',
      'AAAAAAAAAAAAAAAAAAAAAA==',
      'AAAAAAAAAAAAAAAAAAAAA',
      'AAAAAAAAAAAAAAAAAAAAAAA',
    ]
    const set = new RevokedIdSet()
    for (const id of others) set.add(id, NOW + 60)
    expect(set.size).toBe(others.length)
    expect(others.every((id) => set.has(id))).toBe(true)
    expect(set.has(canonical)).toBe(false)
    expect(set.has('jti-2')).toBe(false)

    const ours = new RevokedIdSet()
    ours.add(canonical, NOW + 60)
    expect(others.some((id) => ours.has(id))).toBe(false)
  })

  test('behaves like a Map of id to latest expiry under random adds and purges (fast-check, fixed seed)', () => {
    // Few distinct home slots and a small table, so probe chains are long, wrap and get cut by purges.
    const prefix = fc.constantFrom('----', '-0', 'AAAA', 'zzzy', 'zzzz')
    const id = fc.tuple(prefix, fc.nat(40)).map(([start, n]) => `${start}${n}`.padEnd(22, 'Q'))
    const op = fc.oneof(
      fc.record({ add: id, expiresAt: fc.integer({ min: NOW, max: NOW + 20 }) }),
      fc.record({ purge: fc.integer({ min: NOW, max: NOW + 20 }) }),
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.array(id, { maxLength: 20 }), (ops, probes) => {
        const set = new RevokedIdSet()
        const model = new Map<string, number>()
        for (const step of ops) {
          if ('add' in step) {
            set.add(step.add, step.expiresAt)
            model.set(step.add, Math.max(step.expiresAt, model.get(step.add) ?? 0))
          } else {
            const expired = [...model].filter(([, expiresAt]) => expiresAt <= step.purge)
            for (const [key] of expired) model.delete(key)
            expect(set.purge(step.purge)).toBe(expired.length)
          }
          expect(set.size).toBe(model.size)
        }
        for (const key of [...model.keys(), ...probes]) expect(set.has(key)).toBe(model.has(key))
      }),
      { seed: SEED, numRuns: 300 },
    )
  })
})
