/**
 * Hostile login bodies of every shape, each just under the 8 KiB limit, with the answer each must get.
 * Shared by the route test (status and envelope) and bench/hostile-bodies.ts (cost against `flat`).
 */

/** Bytes available to a body: the limit less a little room for the wrappers' closing brackets. */
const ROOM = 8 * 1024 - 24

const fill = (unit: string, room: number) => unit.repeat(Math.floor(room / unit.length))

/** `open` … `inner` … `close`, nested as often as fits in `room`. */
function nest(open: string, inner: string, close: string, room: number): string {
  const times = Math.floor((room - inner.length) / (open.length + close.length))
  return open.repeat(times) + inner + close.repeat(times)
}

/** `"k0":value,"k1":value,…` */
const distinctKeys = (count: number, value: string) => Array.from({ length: count }, (_, i) => `"k${i}":${value}`).join(',')

export interface HostileBody {
  name: string
  body: string
  status: number
  code: string
  /** For validation failures: the field messages the envelope carries. */
  errors?: Readonly<Record<string, readonly string[]>>
}

const tooDeep = { status: 400, code: 'body_too_deep' } as const
const tooManyFields = { status: 400, code: 'body_too_many_fields' } as const
const missing = { status: 400, code: 'credentials_missing' } as const
const notAString = { status: 400, code: 'validation_failed', errors: { username: ['must be a string'] } } as const
const tooLong = { status: 400, code: 'validation_failed', errors: { username: ['must be at most 64 characters'] } } as const

/** The reference: a flat object of scalars that is refused before any password work, as every hostile one is. */
export const FLAT: HostileBody = { name: 'flat', body: `{"username":"201","pad":"${fill('y', ROOM - 30)}"}`, ...missing }

export const HOSTILE_BODIES: HostileBody[] = [
  { name: 'deep arrays', body: nest('[', '', ']', ROOM), ...tooDeep },
  { name: 'deep objects', body: nest('{"a":', '1', '}', ROOM), ...tooDeep },
  { name: 'deep in a field', body: `{"username":${nest('[', '', ']', ROOM - 14)}}`, ...tooDeep },
  { name: 'deep, mixed', body: nest('[{"a":', '1', '}]', ROOM), ...tooDeep },
  { name: 'deep, unclosed', body: fill('[', ROOM), ...tooDeep },
  // A scanner that took `\\"` for an escaped quote would read the brackets as string contents.
  { name: 'deep after \\\\', body: `{"pad":"\\\\","username":${nest('[', '', ']', ROOM - 30)}}`, ...tooDeep },
  { name: 'wide field', body: `{"username":[${fill('1,', ROOM - 20)}1]}`, ...tooManyFields },
  { name: 'top-level array', body: `[${fill('1,', ROOM)}1]`, ...tooManyFields },
  { name: 'many keys', body: `{${fill('"k":0,', ROOM - 10)}"z":0}`, ...tooManyFields },
  { name: 'many distinct keys', body: `{${distinctKeys(900, '0')}}`, ...tooManyFields },
  // At the limit: parsed and validated, so each value is long to fill the 8 KiB.
  { name: '64 fields, distinct keys', body: `{"username":1,${distinctKeys(63, `"${fill('v', 118)}"`)}}`, ...notAString },
  { name: '64 fields, an array', body: `{"username":[${`"${fill('v', 126)}",`.repeat(62)}1]}`, ...notAString },
  { name: 'long string', body: `{"username":"${fill('x', ROOM - 20)}"}`, ...tooLong },
  { name: 'brackets in a string', body: `{"username":"${fill('[{', ROOM - 20)}"}`, ...tooLong },
  { name: 'escaped quotes', body: `{"username":"${fill('\\"[', ROOM - 20)}"}`, ...tooLong },
  { name: 'unicode escapes', body: `{"username":"${fill('\\u00e9', ROOM - 20)}"}`, ...tooLong },
  { name: 'huge integer', body: `{"username":${fill('9', ROOM - 20)}}`, ...notAString },
  { name: 'huge fraction', body: `{"username":0.${fill('1', ROOM - 20)}e-99999}`, ...notAString },
  { name: 'whitespace', body: `${fill(' ', ROOM)}{}`, ...missing },
]
