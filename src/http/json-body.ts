/** Strict JSON body parsers for a route: right content type, bounded size, valid JSON, else 400/413. */
import { ERRORS, HttpError } from './errors'

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

export interface JsonText {
  /** The body exactly as sent. */
  text: string
  value: unknown
}

async function readJson(request: Request, maxBytes: number): Promise<JsonText> {
  if (!JSON_TYPE.test(request.headers.get('content-type') ?? '')) throw new HttpError(ERRORS.unsupportedContentType)
  const declared = Number(request.headers.get('content-length') ?? 0)
  if (declared > maxBytes) throw new HttpError(ERRORS.payloadTooLarge)
  const bytes = await request.arrayBuffer()
  if (bytes.byteLength > maxBytes) throw new HttpError(ERRORS.payloadTooLarge)
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    return { text, value: JSON.parse(text) }
  } catch {
    throw new HttpError(ERRORS.invalidJson)
  }
}

/** The parsed value becomes the route's body. */
export function parseJsonBody(maxBytes: number) {
  return async ({ request }: { request: Request }): Promise<unknown> => (await readJson(request, maxBytes)).value
}

/** The body stays text, checked to be JSON: for routes that pass it on verbatim. */
export function parseJsonText(maxBytes: number) {
  return ({ request }: { request: Request }): Promise<JsonText> => readJson(request, maxBytes)
}
