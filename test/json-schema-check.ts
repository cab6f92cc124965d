/**
 * Checks a JSON value against a schema of the served OpenAPI document (README "OpenAPI"): the JSON
 * Schema keywords @valibot/to-json-schema writes, and `$ref`s into the document. Any other keyword
 * throws, so nothing passes unchecked. `closed`: an object may hold only the keys its schema names,
 * so an answer that grew a field the document doesn't list fails too.
 */
type Schema = Record<string, unknown>

const ANNOTATIONS = new Set(['description', 'title', 'format', 'examples'])

export function schemaErrors(value: unknown, schema: Schema, document: Schema, options: { closed?: boolean } = {}, at = '$'): string[] {
  const check = (item: unknown, sub: Schema, where: string) => schemaErrors(item, sub, document, options, where)
  const errors: string[] = []
  const object = isObject(value) ? value : null
  for (const [keyword, expected] of Object.entries(schema)) {
    switch (keyword) {
      case '$ref':
        errors.push(...check(value, resolve(document, expected as string), at))
        break
      case 'type':
        if (![expected].flat().some((type) => hasType(value, type as string))) errors.push(`${at}: not of type ${expected}`)
        break
      case 'const':
        if (value !== expected) errors.push(`${at}: not ${JSON.stringify(expected)}`)
        break
      case 'enum':
        if (!(expected as unknown[]).includes(value)) errors.push(`${at}: not one of ${JSON.stringify(expected)}`)
        break
      case 'anyOf':
        if (!(expected as Schema[]).some((option) => check(value, option, at).length === 0)) errors.push(`${at}: matches no anyOf option`)
        break
      case 'properties':
        for (const [name, sub] of Object.entries(expected as Record<string, Schema>)) if (object && name in object) errors.push(...check(object[name], sub, `${at}.${name}`))
        if (object && options.closed && !('additionalProperties' in schema)) {
          for (const name of Object.keys(object)) if (!(name in (expected as Schema))) errors.push(`${at}.${name}: not in the schema`)
        }
        break
      case 'required':
        for (const name of expected as string[]) if (object && !(name in object)) errors.push(`${at}.${name}: missing`)
        break
      case 'additionalProperties':
        for (const [name, item] of Object.entries(object ?? {})) {
          if (name in ((schema.properties as Schema | undefined) ?? {})) continue
          errors.push(...(expected === false ? [`${at}.${name}: not allowed`] : check(item, expected as Schema, `${at}.${name}`)))
        }
        break
      case 'propertyNames':
        for (const name of Object.keys(object ?? {})) errors.push(...check(name, expected as Schema, `${at}[key ${name}]`))
        break
      case 'items':
        if (Array.isArray(value)) value.forEach((item, index) => errors.push(...check(item, expected as Schema, `${at}[${index}]`)))
        break
      case 'pattern':
        if (typeof value === 'string' && !new RegExp(expected as string, 'u').test(value)) errors.push(`${at}: does not match ${expected}`)
        break
      case 'maxLength':
        if (typeof value === 'string' && [...value].length > (expected as number)) errors.push(`${at}: longer than ${expected}`)
        break
      default:
        if (!ANNOTATIONS.has(keyword)) throw new Error(`${at}: the keyword "${keyword}" is not checked here`)
    }
  }
  return errors
}

function resolve(document: Schema, ref: string): Schema {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are checked here, not ${ref}`)
  return ref
    .slice(2)
    .split('/')
    .reduce<unknown>((node, part) => (node as Schema)[part], document) as Schema
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return isObject(value)
    case 'array':
      return Array.isArray(value)
    case 'null':
      return value === null
    case 'integer':
      return Number.isInteger(value)
    default:
      return typeof value === type
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The document's JSON schema for one answer of one route, or a failure naming what is missing. */
export function responseSchema(document: Schema, path: string, method: string, status: number): Schema {
  const paths = document.paths as Record<string, Record<string, { responses?: Record<string, { content?: Record<string, { schema: Schema }> }> }>>
  const schema = paths[path]?.[method.toLowerCase()]?.responses?.[status]?.content?.['application/json']?.schema
  if (!schema) throw new Error(`the document has no JSON answer ${status} for ${method} ${path}`)
  return schema
}
