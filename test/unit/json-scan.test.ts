/** The one-pass JSON checks against JSON.parse, the reference (fast-check, fixed seeds). */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { exceededLimit, isJson } from '../../src/http/json-scan'

const parses = (text: string) => {
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

const children = (value: unknown): unknown[] => (value !== null && typeof value === 'object' ? Object.values(value) : [])
const depthOf = (value: unknown): number =>
  value !== null && typeof value === 'object' ? 1 + Math.max(0, ...children(value).map(depthOf)) : 0
const itemsOf = (value: unknown): number => children(value).reduce<number>((sum, child) => sum + 1 + itemsOf(child), 0)

/** JSON texts with one character inserted or replaced: mostly invalid, in every position. */
const mutatedJson = fc
  .tuple(fc.json(), fc.nat(), fc.constantFrom('', ',', '"', '\\', ']', '}', '[', '{', ':', ' ', '0', '-', '+', 'e', '.', '\u0001', '\u001f', 'u', 'tru', '\\u12'), fc.boolean())
  .map(([text, at, insert, replace]) => {
    const index = at % (text.length + 1)
    return text.slice(0, index) + insert + text.slice(index + (replace ? 1 : 0))
  })
const jsonAlphabet = fc.string({ unit: fc.constantFrom(...'{}[]",:\\ 0123-+e.Eftnrulas\t\n\r/x') })

describe('isJson', () => {
  test('agrees with JSON.parse on valid, mutated and random text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), mutatedJson, jsonAlphabet), (text) => isJson(text) === parses(text)),
      { numRuns: 20_000, seed: 8259 },
    )
  })

  test('edge cases', () => {
    for (const text of ['0', '-0.5e+7', ' "a\\u00E9\\/" ', '[]', '{ }', '[[],{}]', '{"a":{"b":[1,true,null]}}', '\t\n\r[1]', '" ~\u007f"']) {
      expect([text, isJson(text)]).toEqual([text, true])
    }
    for (const text of ['', ' ', '01', '1.', '.5', '-', '+1', '[1,]', '{"a":1,}', '{"a"}', '{1:2}', '"a\nb"', '"\\x"', '"\\u12"', '[1]]', 'nul', 'true false', '\u00a0[]', '"\u001f"']) {
      expect([text, isJson(text)]).toEqual([text, false])
    }
  })

  test('takes deep nesting of any depth', () => {
    const depth = 512 * 1024
    expect(isJson('['.repeat(depth) + ']'.repeat(depth))).toBe(true)
    expect(isJson('{"a":'.repeat(depth / 4) + '1' + '}'.repeat(depth / 4))).toBe(true)
    expect(isJson('['.repeat(depth) + ']'.repeat(depth - 1))).toBe(false)
  })
})

describe('exceededLimit', () => {
  test('measures the depth and item count of valid JSON exactly', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(6), fc.nat(40), (value, maxDepth, maxItems) => {
        const text = JSON.stringify(value, null, maxItems % 3)
        expect(exceededLimit(text, { maxDepth, maxItems: Infinity })).toBe(depthOf(value) > maxDepth ? 'depth' : null)
        expect(exceededLimit(text, { maxDepth: Infinity, maxItems })).toBe(itemsOf(value) > maxItems ? 'items' : null)
      }),
      { numRuns: 5_000, seed: 8259 },
    )
  })

  test('skips brackets and commas in strings, escaped quotes included', () => {
    const limits = { maxDepth: 1, maxItems: 2 }
    expect(exceededLimit('{"a":"[[{,,,","b":"\\"[[,,"}', limits)).toBeNull()
    // `\\` ends with an escaped backslash, so the quote after it closes the string.
    expect(exceededLimit('{"a":"\\\\","b":[1]}', limits)).toBe('depth')
    expect(exceededLimit('{"a":"\\\\","b":1,"c":2}', limits)).toBe('items')
  })
})
