/**
 * `Accept-Language` negotiation (RFC 9110 §12.5.4, README "Localized errors") over the languages we
 * have catalogues for. Pure: a header value in, one of LANGUAGES out; anything doubtful gives `en`.
 */

/** Our languages; the order breaks ties that a wildcard leaves open, so `*` alone means `en`. */
export const LANGUAGES = ['en', 'ru', 'fr', 'de'] as const
export type Language = (typeof LANGUAGES)[number]
export const DEFAULT_LANGUAGE: Language = 'en'

/** A header past these is not parsed at all (README "Localized errors"): no request buys unbounded work here. */
export const NEGOTIATION_LIMITS = { headerChars: 1024, ranges: 32 } as const

interface LanguageRange {
  /** Lowercase primary subtag, or `*`. */
  primary: string
  /** True for `fr-CA` and the like: it asks for `fr` only through region fallback. */
  hasSubtags: boolean
  /** Thousandths, 0..1000: integer weights compare exactly. */
  weight: number
  position: number
}

/** language-range (RFC 4647 §2.1) with an optional weight (RFC 9110 §12.4.2); OWS around it is trimmed first. */
const RANGE = /^(?:(\*)|([A-Za-z]{1,8})((?:-[A-Za-z0-9]{1,8})*))(?:[ \t]*;[ \t]*[qQ]=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?))?$/

export function negotiateLanguage(header: string | null | undefined): Language {
  if (!header || header.length > NEGOTIATION_LIMITS.headerChars) return DEFAULT_LANGUAGE
  const ranges = parseRanges(header)
  if (ranges === null) return DEFAULT_LANGUAGE
  let best: { language: Language; weight: number; position: number } | null = null
  for (const language of LANGUAGES) {
    const match = weightOf(language, ranges)
    if (match === null || match.weight === 0) continue
    if (best === null || match.weight > best.weight || (match.weight === best.weight && match.position < best.position)) {
      best = { language, ...match }
    }
  }
  return best?.language ?? DEFAULT_LANGUAGE
}

/** The ranges of a header, or null when one element is malformed or there are too many. Empty elements are allowed (RFC 9110 §5.6.1). */
function parseRanges(header: string): LanguageRange[] | null {
  const ranges: LanguageRange[] = []
  for (const element of header.split(',')) {
    const text = element.trim()
    if (text === '') continue
    const match = RANGE.exec(text)
    if (match === null || ranges.length === NEGOTIATION_LIMITS.ranges) return null
    const [, star, primary, subtags, q] = match
    ranges.push({
      primary: star ?? primary!.toLowerCase(),
      hasSubtags: Boolean(subtags),
      weight: q === undefined ? 1000 : Math.round(Number(q) * 1000),
      position: ranges.length,
    })
  }
  return ranges
}

/**
 * How much the client wants `language`, from its most specific range: the bare tag (`fr`), else its
 * best regional range (`fr-CA` falls back to `fr`), else `*`. So `fr;q=0` excludes French whatever
 * regional ranges say, and `fr-CA;q=0` excludes nothing we have (we never serve `fr-CA`).
 * Null: no range names it.
 */
function weightOf(language: Language, ranges: readonly LanguageRange[]): { weight: number; position: number } | null {
  const exact = ranges.find((range) => range.primary === language && !range.hasSubtags)
  if (exact) return exact
  let regional: LanguageRange | undefined
  for (const range of ranges) {
    if (range.primary === language && range.weight > 0 && (regional === undefined || range.weight > regional.weight)) regional = range
  }
  if (regional) return regional
  const wildcard = ranges.find((range) => range.primary === '*')
  // A language the client named wins a tie with the wildcard; among what `*` matches, LANGUAGES' order decides.
  return wildcard ? { weight: wildcard.weight, position: Number.MAX_SAFE_INTEGER } : null
}

/**
 * negotiateLanguage with a memory of recent headers: a client sends the same header on every
 * request, and parsing it costs about a microsecond, a tenth of a check-media-access answer. At
 * most `capacity` headers are kept; a flood of distinct ones only empties the memory.
 */
export class NegotiationMemory {
  private readonly known = new Map<string, Language>()

  constructor(private readonly capacity = 64) {}

  get size(): number {
    return this.known.size
  }

  languageOf(header: string | null): Language {
    if (header === null) return DEFAULT_LANGUAGE
    const remembered = this.known.get(header)
    if (remembered !== undefined) return remembered
    const language = negotiateLanguage(header)
    if (this.known.size === this.capacity) this.known.clear()
    this.known.set(header, language)
    return language
  }
}
