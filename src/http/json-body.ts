/**
 * Strict JSON body parsers for a route: right content type, bounded size, valid JSON, else 400/413.
 * Every check takes time linear in the body's size, whatever its shape (README "Security notes and decisions").
 */
import * as v from 'valibot'
import { ERRORS, fieldErrors, HttpError } from './errors'
import { exceededLimit, isJson, type JsonShapeLimits } from './json-scan'

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

/** The shape limits are checked before the body is parsed. */
export interface JsonBodyLimits extends JsonShapeLimits {
  maxBytes: number
}

const SHAPE_ERRORS = { depth: ERRORS.bodyTooDeep, items: ERRORS.bodyTooManyFields } as const

async function readText(request: Request, maxBytes: number): Promise<string> {
  if (!JSON_TYPE.test(request.headers.get('content-type') ?? '')) throw new HttpError(ERRORS.unsupportedContentType)
  const declared = request.headers.get('content-length')
  if (Number(declared ?? 0) > maxBytes) throw new HttpError(ERRORS.payloadTooLarge)
  // With a Content-Length the server reads no more than it says; a chunked body is only as long as
  // the server's cap for every route (serve.ts, 8 MiB), so it is read no further than this route's own.
  const bytes = declared === null ? await readUpTo(request, maxBytes) : new Uint8Array(await request.arrayBuffer())
  if (bytes.byteLength > maxBytes) throw new HttpError(ERRORS.payloadTooLarge)
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw new HttpError(ERRORS.invalidJson)
  }
}

/** A body without a declared length, read until it ends or passes `maxBytes` (then 413, the rest unread). */
async function readUpTo(request: Request, maxBytes: number): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array()
  const chunks: Uint8Array[] = []
  let length = 0
  for await (const chunk of request.body) {
    length += chunk.byteLength
    if (length > maxBytes) throw new HttpError(ERRORS.payloadTooLarge)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, length)
}

/**
 * The parsed body, valid for `schema`, becomes the route's body. Validated here, not only by the route's
 * `body` option: Elysia's ValidationError serialises the whole value, pretty-printed and once per issue,
 * which made a refused 8 KiB body cost several times a parsed one (bench/hostile-bodies.ts).
 */
export function parseJsonBody(limits: JsonBodyLimits, schema: v.GenericSchema) {
  return async ({ request }: { request: Request }): Promise<unknown> => {
    const text = await readText(request, limits.maxBytes)
    // JSON.parse pays far more per byte for deep nesting, and for many distinct names, than for flat text.
    const exceeded = exceededLimit(text, limits)
    if (exceeded) throw new HttpError(SHAPE_ERRORS[exceeded])
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      throw new HttpError(ERRORS.invalidJson)
    }
    const result = v.safeParse(schema, value)
    if (!result.success) throw new HttpError(ERRORS.validationFailed, { errors: fieldErrors(result.issues) }, result.issues)
    return result.output
  }
}

/** The body stays text, checked to be JSON without being parsed: for routes that pass it on verbatim. */
export function parseJsonText(maxBytes: number) {
  return async ({ request }: { request: Request }): Promise<{ text: string }> => {
    const text = await readText(request, maxBytes)
    if (!isJson(text)) throw new HttpError(ERRORS.invalidJson)
    return { text }
  }
}
