/**
 * Puts an English error envelope into another language (README "Localized errors"): only `message`
 * and the texts in `errors` change; `error`, `code` and every other field stay as they were.
 * Validation texts come from each issue's kind and limit, never from the schema's English words.
 */
import { ERRORS, fieldOf, type ErrorBody, type StandardIssue } from '../http/errors'
import type { Catalogue, ErrorName, ValidationMessage } from './en'

/** Which kind an envelope is, by its stable `error` text (unique: test/unit/i18n-catalogues.test.ts). */
const NAME_OF_ERROR = new Map<string, ErrorName>(Object.entries(ERRORS).map(([name, kind]) => [kind.error, name as ErrorName]))

/** Issue kinds that name a type; valibot's `type` for a schema issue (https://valibot.dev/guides/issues/). */
const TYPE_MESSAGES: Readonly<Record<string, ValidationMessage>> = {
  string: 'string',
  number: 'number',
  boolean: 'boolean',
  object: 'object',
  loose_object: 'object',
  strict_object: 'unknownField',
  array: 'array',
  picklist: 'picklist',
  literal: 'picklist',
  min_length: 'minLength',
  max_length: 'maxLength',
  min_bytes: 'minBytes',
  max_bytes: 'maxBytes',
  min_value: 'minValue',
  max_value: 'maxValue',
  iso_date: 'date',
  regex: 'format',
  integer: 'format',
  email: 'format',
}
const LIMITED = new Set<ValidationMessage>(['minLength', 'maxLength', 'minBytes', 'maxBytes', 'minValue', 'maxValue'])

/** The envelope in `catalogue`'s language, or null when `body` is not an untouched envelope of ours. */
export function localizeEnvelope(body: unknown, catalogue: Catalogue, issues: readonly StandardIssue[] | undefined): ErrorBody | null {
  const name = envelopeName(body)
  if (name === null) return null
  const envelope = body as ErrorBody
  if (name === 'validationFailed' && issues !== undefined && envelope.errors !== undefined) {
    const errors = localizedFieldErrors(issues, catalogue)
    // As the Flexisip account manager does: the first field's text is the message.
    const first = Object.values(errors)[0]?.[0]
    return { ...envelope, message: first ?? catalogue.errors.validationFailed, errors }
  }
  return { ...envelope, message: catalogue.errors[name] }
}

/**
 * Field → texts in `catalogue`'s language: the same fields, in the same order, with as many texts as
 * fieldErrors() gives. Issues a schema words alike (a date's format and calendar checks) are one complaint.
 */
export function localizedFieldErrors(issues: readonly StandardIssue[], catalogue: Catalogue): Record<string, string[]> {
  const errors: Record<string, string[]> = {}
  const seen = new Set<string>()
  for (const issue of issues) {
    const field = fieldOf(issue)
    const texts = (errors[field] ??= [])
    const complaint = `${field}\n${issue.message}`
    if (seen.has(complaint)) continue
    seen.add(complaint)
    const { message, limit } = validationMessageOf(issue)
    const text = fill(catalogue.validation[message], limit === undefined ? { field } : { field, limit: String(limit) })
    if (!texts.includes(text)) texts.push(text)
  }
  return errors
}

/** The catalogue entry for an issue, and the schema's number where the entry shows one. */
export function validationMessageOf(issue: StandardIssue): { message: ValidationMessage; limit?: number } {
  const atRoot = !issue.path?.length
  if (!atRoot && issue.received === 'undefined') return { message: 'required' }
  if (atRoot && (issue.type === 'object' || issue.type === 'custom')) return { message: 'bodyObject' }
  const message = TYPE_MESSAGES[issue.type ?? ''] ?? 'invalid'
  if (!LIMITED.has(message)) return { message }
  return typeof issue.requirement === 'number' ? { message, limit: issue.requirement } : { message: 'invalid' }
}

function envelopeName(body: unknown): ErrorName | null {
  if (typeof body !== 'object' || body === null) return null
  const { success, error, message } = body as Partial<ErrorBody>
  if (success !== false || typeof error !== 'string' || message !== error) return null
  return NAME_OF_ERROR.get(error) ?? null
}

/** `{name}` → its value, in one pass, so a value that looks like a placeholder stays as it is. */
function fill(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (placeholder, name: string) => values[name] ?? placeholder)
}
