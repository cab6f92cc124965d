/**
 * One-pass checks of JSON text (RFC 8259) that build nothing, so their time is linear in the text's
 * length whatever its shape. JSON.parse is not: a deeply nested value costs it (and the garbage
 * collector) tens of times more per byte than a flat one (bench/hostile-bodies.ts).
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39
const LOWER_U = 0x75
/** `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`; `\u` takes four hex digits. */
const SINGLE_ESCAPES = new Set([...'"\\/bfnrt'].map((char) => char.charCodeAt(0)))

export interface JsonShapeLimits {
  /** How deep arrays and objects may nest: `{}` is 1. */
  maxDepth: number
  /** How many array elements and object members there may be, at every depth together. */
  maxItems: number
}

/**
 * The limit the text breaks first, if any, skipping string contents (escaped quotes included). Exact for
 * valid JSON; for invalid text any answer will do, since the parser refuses it next.
 */
export function exceededLimit(text: string, { maxDepth, maxItems }: JsonShapeLimits): 'depth' | 'items' | null {
  let depth = 0
  let items = 0
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index)
    if (char === QUOTE) index = closingQuote(text, index)
    else if (char === OPEN_ARRAY || char === OPEN_OBJECT) {
      if (++depth > maxDepth) return 'depth'
      // A container's first item follows its opening bracket; every other one a comma.
      if (!isClosing(text.charCodeAt(skipSpace(text, index + 1))) && ++items > maxItems) return 'items'
    } else if (isClosing(char)) depth--
    else if (char === COMMA && ++items > maxItems) return 'items'
  }
  return null
}

const isClosing = (char: number) => char === CLOSE_ARRAY || char === CLOSE_OBJECT

/** The index of the quote that closes the string opened at `open`, or the text's length if none does. */
function closingQuote(text: string, open: number): number {
  for (let index = open + 1; index < text.length; index++) {
    const char = text.charCodeAt(index)
    if (char === BACKSLASH) index++
    else if (char === QUOTE) return index
  }
  return text.length
}

/** Whether `text` is exactly one JSON value with optional whitespace around it: what JSON.parse accepts. */
export function isJson(text: string): boolean {
  // The open containers, outermost first: 1 for an object, 0 for an array. Valid text nests at most
  // half its length deep; deeper (ignored) writes only happen in text that can't be closed in time.
  const isObject = new Uint8Array((text.length >> 1) + 1)
  let depth = 0
  let index = skipSpace(text, 0)
  for (;;) {
    // A value starts here.
    const char = text.charCodeAt(index)
    if (char === OPEN_ARRAY || char === OPEN_OBJECT) {
      index = skipSpace(text, index + 1)
      if (text.charCodeAt(index) === (char === OPEN_ARRAY ? CLOSE_ARRAY : CLOSE_OBJECT)) index++
      else {
        isObject[depth++] = char === OPEN_OBJECT ? 1 : 0
        if (char === OPEN_OBJECT && (index = memberName(text, index)) < 0) return false
        continue
      }
    } else if ((index = scalarEnd(text, index)) < 0) return false
    // After a value: commas and closing brackets until the next value, or the end.
    for (;;) {
      index = skipSpace(text, index)
      if (depth === 0) return index === text.length
      const char = text.charCodeAt(index)
      const inObject = isObject[depth - 1] === 1
      if (char === COMMA) {
        index = skipSpace(text, index + 1)
        if (inObject && (index = memberName(text, index)) < 0) return false
        break
      }
      if (char !== (inObject ? CLOSE_OBJECT : CLOSE_ARRAY)) return false
      depth--
      index++
    }
  }
}

/** After `"name" :` starting at `index`, where the member's value starts; -1 if that isn't there. */
function memberName(text: string, index: number): number {
  if (text.charCodeAt(index) !== QUOTE) return -1
  const end = stringEnd(text, index)
  if (end < 0) return -1
  const colon = skipSpace(text, end)
  return text.charCodeAt(colon) === COLON ? skipSpace(text, colon + 1) : -1
}

const LITERALS = ['true', 'false', 'null']

/** The end of the string, number or literal starting at `index`, or -1 if none starts there. */
function scalarEnd(text: string, index: number): number {
  const char = text.charCodeAt(index)
  if (char === QUOTE) return stringEnd(text, index)
  if (char === MINUS || isDigit(char)) return numberEnd(text, index)
  const literal = LITERALS.find((word) => text.startsWith(word, index))
  return literal ? index + literal.length : -1
}

/** Just past the closing quote of the string opening at `index`; -1 for a bad escape, a control character or no end. */
function stringEnd(text: string, index: number): number {
  for (index++; index < text.length; index++) {
    const char = text.charCodeAt(index)
    if (char === QUOTE) return index + 1
    if (char < 0x20) return -1
    if (char !== BACKSLASH) continue
    const escaped = text.charCodeAt(++index)
    if (escaped === LOWER_U) {
      for (const end = index + 4; index < end; ) if (!isHexDigit(text.charCodeAt(++index))) return -1
    } else if (!SINGLE_ESCAPES.has(escaped)) return -1
  }
  return -1
}

/** Just past the number at `index` (`-? int frac? exp?`, no leading zeros), or -1. */
function numberEnd(text: string, index: number): number {
  if (text.charCodeAt(index) === MINUS) index++
  if (text.charCodeAt(index) === ZERO) index++
  else if ((index = digitsEnd(text, index)) < 0) return -1
  if (text.charCodeAt(index) === DOT && (index = digitsEnd(text, index + 1)) < 0) return -1
  if ((text.charCodeAt(index) | 0x20) === 0x65) {
    index++
    const sign = text.charCodeAt(index)
    if (sign === PLUS || sign === MINUS) index++
    if ((index = digitsEnd(text, index)) < 0) return -1
  }
  return index
}

/** Just past a run of at least one digit at `index`, or -1. */
function digitsEnd(text: string, index: number): number {
  const start = index
  while (isDigit(text.charCodeAt(index))) index++
  return index > start ? index : -1
}

const isDigit = (char: number) => char >= ZERO && char <= NINE
const isHexDigit = (char: number) => isDigit(char) || ((char | 0x20) >= 0x61 && (char | 0x20) <= 0x66)

/** Past JSON whitespace: space, tab, line feed, carriage return. */
function skipSpace(text: string, index: number): number {
  for (;;) {
    const char = text.charCodeAt(index)
    if (char !== 0x20 && char !== 0x09 && char !== 0x0a && char !== 0x0d) return index
    index++
  }
}
