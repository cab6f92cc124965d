/**
 * Bodies of the core API's two POST routes, read without throwing: MikoPBX's core answers a bad
 * body in its own error form, not the module's envelope (README "MikoPBX core-compatible API").
 */
import { exceededLimit } from '../http/json-scan'

export const CORE_BODY_LIMITS = { maxBytes: 8 * 1024, maxDepth: 4, maxItems: 64 } as const

const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(?:;|$)/i

/** The body as text, or null when it is larger than the limit or not UTF-8. */
export async function readBodyText(request: Request, maxBytes: number = CORE_BODY_LIMITS.maxBytes): Promise<{ text: string | null }> {
  if (Number(request.headers.get('content-length') ?? 0) > maxBytes) return { text: null }
  const bytes = await request.arrayBuffer()
  if (bytes.byteLength > maxBytes) return { text: null }
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) }
  } catch {
    return { text: null }
  }
}

export const isForm = (request: Request): boolean => FORM_TYPE.test(request.headers.get('content-type') ?? '')

export type BodyFields = { ok: true; fields: Record<string, unknown> } | { ok: false; problem: string }

/**
 * A JSON object, whatever the Content-Type (MikoPBX's core decodes the raw body, and its own curl
 * example posts JSON as a form), else form fields when the request says it is a form.
 */
export function bodyFields(text: string | null | undefined, form: boolean): BodyFields {
  if (text === null) return { ok: false, problem: 'Request body is too large or not UTF-8' }
  const trimmed = (text ?? '').trim()
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) return jsonFields(trimmed)
  if (form) return formFields(trimmed)
  return { ok: false, problem: trimmed === '' ? 'Request body is empty' : 'Request body is not valid JSON' }
}

function jsonFields(text: string): BodyFields {
  if (exceededLimit(text, CORE_BODY_LIMITS)) return { ok: false, problem: 'Request body is nested too deeply or has too many fields' }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, problem: 'Request body is not valid JSON' }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, problem: 'Request body must be a JSON object' }
  return { ok: true, fields: value as Record<string, unknown> }
}

/** A repeated field is refused rather than guessed at. */
export function formFields(text: string): BodyFields {
  const params = new URLSearchParams(text)
  const fields: Record<string, unknown> = {}
  for (const name of new Set(params.keys())) {
    const values = params.getAll(name)
    if (values.length > 1) return { ok: false, problem: 'Request body repeats a field' }
    fields[name] = values[0]
  }
  return { ok: true, fields }
}
