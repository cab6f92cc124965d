/**
 * A route's documented answers, `detail: { responses: jsonResponses({ 200: Schema, 401: ErrorEnvelope }) }`.
 * Not Elysia's `response` option: that validates every answer at run time, strips keys a schema
 * doesn't name, rejects pre-serialised bodies (check-media-access's) and answers a mismatch with a
 * 422 that echoes the body (README "OpenAPI").
 */
import type { DocumentDecoration } from 'elysia'
import { STATUS_CODES } from 'node:http'
import type { GenericSchema } from 'valibot'
import { jsonSchemaOf, sharedSchemaRef } from './json-schema'

export type DocumentedResponses = NonNullable<DocumentDecoration['responses']>

export function jsonResponses(schemas: Record<number, GenericSchema>): DocumentedResponses {
  const responses: DocumentedResponses = {}
  for (const [status, schema] of Object.entries(schemas)) {
    responses[status] = { description: STATUS_CODES[status] ?? status, content: { 'application/json': mediaOf(schema) } }
  }
  return responses
}

/** A shared schema is a plain `$ref`; any other is converted when the document is built, so starting the server converts nothing. */
function mediaOf(schema: GenericSchema) {
  const ref = sharedSchemaRef(schema)
  if (ref !== undefined) return { schema: { $ref: ref } }
  return {
    get schema() {
      return jsonSchemaOf(schema, 'output') as never
    },
  }
}
