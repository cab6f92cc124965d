/** Accept-Language negotiation (README "Localized errors", RFC 9110 §12.5.4): every rule, and `en` for anything doubtful. */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { LANGUAGES, NEGOTIATION_LIMITS, negotiateLanguage, NegotiationMemory } from '../../src/i18n/negotiate'

const cases = (rows: ReadonlyArray<readonly [string | null | undefined, string]>) => {
  for (const [header, language] of rows) expect([header, negotiateLanguage(header)]).toEqual([header, language])
}

describe('negotiateLanguage', () => {
  test('no header or an empty one is en', () => {
    cases([
      [null, 'en'],
      [undefined, 'en'],
      ['', 'en'],
      ['  ', 'en'],
      [' , ,', 'en'],
    ])
  })

  test('a single language we have is chosen, in any case and with OWS', () => {
    cases([
      ['en', 'en'],
      ['ru', 'ru'],
      ['fr', 'fr'],
      ['de', 'de'],
      ['FR', 'fr'],
      ['  de  ', 'de'],
      ['Ru;Q=1', 'ru'],
    ])
  })

  test('a language we lack gives en', () => {
    cases([
      ['es', 'en'],
      ['es-ES, it;q=0.9', 'en'],
      ['x-klingon', 'en'],
    ])
  })

  test('the highest q-value wins, whatever the order', () => {
    cases([
      ['fr;q=0.5, de;q=0.8', 'de'],
      ['de;q=0.8, fr;q=0.9', 'fr'],
      ['ru;q=0.001, es', 'ru'],
      ['en;q=0.1, ru;q=0.2, fr;q=0.3, de;q=0.4', 'de'],
      ['fr;q=0.999, de', 'de'],
      ['de;q=1.000, fr;q=0.999', 'de'],
    ])
  })

  test('equal q-values go to the range listed first', () => {
    cases([
      ['fr, de', 'fr'],
      ['de, fr', 'de'],
      ['ru;q=0.5, fr;q=0.5', 'ru'],
      ['es, de, fr', 'de'],
    ])
  })

  test('a regional range falls back to its language (RFC 4647 §3.4 lookup)', () => {
    cases([
      ['fr-CA', 'fr'],
      ['de-AT', 'de'],
      ['ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7', 'ru'],
      ['zh-Hant-TW, fr-CA;q=0.5', 'fr'],
      ['sr-Latn-RS', 'en'],
      ['fr-CA;q=0.3, fr-BE;q=0.6, de;q=0.5', 'fr'],
    ])
  })

  test('the bare tag is more specific than a regional one for the same language', () => {
    cases([
      ['fr-CA, fr;q=0.2, de;q=0.5', 'de'],
      ['fr;q=0.2, fr-CA, de;q=0.5', 'de'],
    ])
  })

  test('q=0 excludes a language, also from the wildcard and from regional fallback', () => {
    cases([
      ['fr;q=0', 'en'],
      ['fr;q=0, de;q=0.1', 'de'],
      ['fr;q=0.0, fr-CA', 'en'],
      ['fr-CA, fr;q=0, ru;q=0.1', 'ru'],
      ['*, en;q=0', 'ru'],
      ['*;q=0.5, en;q=0, ru;q=0', 'fr'],
      ['en;q=0, ru;q=0, fr;q=0, de;q=0', 'en'],
      ['*;q=0', 'en'],
    ])
  })

  test('a regional q=0 excludes only that region, which we never serve', () => {
    cases([
      ['fr-CA;q=0, fr;q=0.5', 'fr'],
      ['fr-CA;q=0, *', 'en'],
      ['de-CH;q=0, de', 'de'],
    ])
  })

  test('the wildcard matches every language no other range names, in our order, and loses ties to named ones', () => {
    cases([
      ['*', 'en'],
      ['es, *;q=0.1', 'en'],
      ['*;q=0.5, de;q=0.4', 'en'],
      ['en;q=0.1, *;q=0.5', 'ru'],
      ['en;q=0.1, ru;q=0.2, *;q=0.5', 'fr'],
      ['de;q=0.6, *;q=0.5', 'de'],
      ['*, fr', 'fr'],
      ['*;q=0.5, de;q=0.5', 'de'],
      ['fr-CA;q=0.4, *;q=0.5', 'en'],
    ])
  })

  test('a malformed header is en, even when it also names a language we have', () => {
    cases([
      ['fr;q=2', 'en'],
      ['fr;q=1.5', 'en'],
      ['fr;q=0.1234', 'en'],
      ['fr;q=-1', 'en'],
      ['fr;q=', 'en'],
      ['fr;q', 'en'],
      ['fr;level=1', 'en'],
      ['fr;q=0.5;q=0.6', 'en'],
      ['fr q=0.5', 'en'],
      ['français', 'en'],
      ['toolongprimary', 'en'],
      ['fr-', 'en'],
      ['fr--CA', 'en'],
      ['-fr', 'en'],
      ['fr_CA', 'en'],
      ['fr-CA-toolongsub', 'en'],
      ['de, 1fr', 'en'],
      ['*-CA', 'en'],
      ['**', 'en'],
      ['fr\u0000', 'en'],
      ['ru;q=.5', 'en'],
    ])
  })

  test(`over ${NEGOTIATION_LIMITS.headerChars} characters is en without parsing`, () => {
    const padded = 'fr' + ', es'.repeat(300)
    expect(padded.length).toBeGreaterThan(NEGOTIATION_LIMITS.headerChars)
    expect(negotiateLanguage(padded)).toBe('en')
    const justUnder = 'fr,' + ' '.repeat(NEGOTIATION_LIMITS.headerChars - 3)
    expect(justUnder.length).toBe(NEGOTIATION_LIMITS.headerChars)
    expect(negotiateLanguage(justUnder)).toBe('fr')
  })

  test(`more than ${NEGOTIATION_LIMITS.ranges} ranges is en`, () => {
    const ranges = (count: number) => ['de', ...Array.from({ length: count - 1 }, () => 'es')].join(',')
    expect(negotiateLanguage(ranges(NEGOTIATION_LIMITS.ranges))).toBe('de')
    expect(negotiateLanguage(ranges(NEGOTIATION_LIMITS.ranges + 1))).toBe('en')
  })

  test('always answers one of our languages, for any string', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (header) => {
        expect(LANGUAGES).toContain(negotiateLanguage(header))
      }),
    )
  })

  test('a single well-formed range of ours with q > 0 is always chosen', () => {
    const language = fc.constantFrom(...LANGUAGES)
    const region = fc.option(fc.stringMatching(/^-[A-Za-z0-9]{1,8}$/), { nil: '' })
    const weight = fc.option(fc.integer({ min: 1, max: 1000 }).map((q) => `;q=${q === 1000 ? '1' : (q / 1000).toFixed(3)}`), { nil: '' })
    fc.assert(
      fc.property(language, region, weight, (tag, subtag, q) => {
        expect(negotiateLanguage(`${tag}${subtag}${q}`)).toBe(tag)
      }),
    )
  })
})

describe('NegotiationMemory', () => {
  test('answers as negotiateLanguage does, for new and remembered headers, past its capacity', () => {
    const memory = new NegotiationMemory(4)
    const headers = ['fr', 'de-AT', 'es', '*;q=0.5, en;q=0', 'fr;q=2', 'ru', 'fr', 'de-AT', ' ru ', 'x'.repeat(2000)]
    for (const header of [...headers, ...headers.reverse()]) expect([header, memory.languageOf(header)]).toEqual([header, negotiateLanguage(header)])
    expect(memory.languageOf(null)).toBe('en')
  })

  test('keeps at most its capacity of headers, however many distinct ones arrive', () => {
    const memory = new NegotiationMemory(3)
    const sizes: number[] = []
    for (let i = 0; i < 20; i++) {
      memory.languageOf(`es-${i}`)
      sizes.push(memory.size)
    }
    expect(Math.max(...sizes)).toBe(3)
    memory.languageOf('es-19')
    expect(memory.size).toBe(sizes.at(-1)!)
  })
})
