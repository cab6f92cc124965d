/**
 * The error envelope of errors.ts as a valibot schema, for the OpenAPI document (README "OpenAPI").
 * Documentation only: no route validates its answers against it.
 */
import * as v from 'valibot'

export const ErrorEnvelope = v.object({
  success: v.literal(false),
  /** Stable English text. */
  error: v.string(),
  /** For machines: `invalid_token`, `validation_failed`, … */
  code: v.string(),
  message: v.string(),
  timestamp: v.number(),
  /** Validation failures: field → messages. */
  errors: v.optional(v.record(v.string(), v.array(v.string()))),
  /** 500s: the id of the log line. */
  request_id: v.optional(v.string()),
})
