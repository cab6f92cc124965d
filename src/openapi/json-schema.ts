/** valibot schemas as JSON Schema 2020-12, the dialect of OpenAPI 3.1 (README "OpenAPI"). */
import { toJsonSchema, toJsonSchemaDefs, type ConversionConfig } from '@valibot/to-json-schema'
import type { GenericSchema } from 'valibot'
import { ErrorEnvelope } from '../http/envelope-schema'

export type JsonSchema = Record<string, unknown>

/** Written once into `components.schemas`; every use is a `$ref` there. */
const SHARED_SCHEMAS = { ErrorEnvelope }

/**
 * `input`: what a client sends (a query's `limit` is text, before its transform); `output`: what a
 * route works with or answers.
 */
export function jsonSchemaOf(schema: GenericSchema, typeMode: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, $defs: _shared, ...converted } = toJsonSchema(schema, conversion(typeMode)) as JsonSchema
  return converted
}

/** `#/components/schemas/<name>` for a schema written there once, else undefined. */
export function sharedSchemaRef(schema: GenericSchema): string | undefined {
  const name = Object.entries(SHARED_SCHEMAS).find(([, shared]) => shared === schema)?.[0]
  return name === undefined ? undefined : `#/components/schemas/${name}`
}

/** `components.schemas` of the document. */
export function sharedJsonSchemas() {
  return toJsonSchemaDefs(SHARED_SCHEMAS, conversion('output'))
}

function conversion(typeMode: 'input' | 'output'): ConversionConfig {
  return {
    target: 'draft-2020-12',
    typeMode,
    definitions: SHARED_SCHEMAS,
    overrideRef: ({ valibotSchema }) => sharedSchemaRef(valibotSchema),
    overrideAction: describeUnexpressed,
  }
}

/**
 * An action JSON Schema has no word for (`check`, `max_bytes`) adds its message to `description`:
 * the rule stays the server's, the reader still learns it. Any other conversion error throws.
 */
const describeUnexpressed: NonNullable<ConversionConfig['overrideAction']> = ({ valibotAction, jsonSchema, errors }) => {
  const message = (valibotAction as { message?: unknown }).message
  if (!errors || typeof message !== 'string') return undefined
  return { ...jsonSchema, description: [jsonSchema.description, message].filter(Boolean).join('; ') }
}
