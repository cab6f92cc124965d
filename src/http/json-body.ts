/** A strict JSON body parser for one route: right content type, bounded size, valid JSON, else 400/413. */
import { ERRORS, HttpError } from './errors'

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i

export function parseJsonBody(maxBytes: number) {
  return async ({ request }: { request: Request }): Promise<unknown> => {
    if (!JSON_TYPE.test(request.headers.get('content-type') ?? '')) throw new HttpError(ERRORS.unsupportedContentType)
    const declared = Number(request.headers.get('content-length') ?? 0)
    if (declared > maxBytes) throw new HttpError(ERRORS.payloadTooLarge)
    const bytes = await request.arrayBuffer()
    if (bytes.byteLength > maxBytes) throw new HttpError(ERRORS.payloadTooLarge)
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
    } catch {
      throw new HttpError(ERRORS.invalidJson)
    }
  }
}
