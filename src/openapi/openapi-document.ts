/**
 * The OpenAPI 3.1 document served at `BASE/openapi.json` (README "OpenAPI"), built from the app's
 * routes: each operation is the route's `detail` (`x-access` and `security` come from the `auth`
 * macro, auth/route-access.ts) plus its valibot schemas as JSON Schema. @elysiajs/openapi was tried:
 * it leaves out the body of every route with its own parse hook (login's and publish's), so the
 * few lines here do the walk themselves.
 */
import type { GenericSchema } from 'valibot'
import { VERSION } from '../version'
import { jsonSchemaOf, sharedJsonSchemas, type JsonSchema } from './json-schema'

/** What the document reads of one of Elysia's `app.routes`. */
export interface DocumentedRoute {
  method: string
  path: string
  hooks: { detail?: Record<string, unknown>; params?: unknown; query?: unknown; body?: unknown }
}

/** Keyed by the names route-access.ts gives each credential kind (`SECURITY_SCHEMES`). */
export const SECURITY_SCHEME_OBJECTS: Record<string, Record<string, string>> = {
  bearer: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'An access token from auth/login or auth/refresh; also accepted as the `access_token` cookie.',
  },
  bearerRefresh: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A refresh token from auth/login; for auth/refresh only.' },
  apiKeyHeader: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'An API key.' },
  apiKeyCookie: { type: 'apiKey', in: 'cookie', name: 'x-api-key', description: 'An API key, as a cookie.' },
  digest: { type: 'http', scheme: 'digest', description: 'HTTP Digest (RFC 7616) with the user\'s password.' },
  externalJwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT of a configured external issuer.' },
}

export function openApiDocument(routes: readonly DocumentedRoute[], basePath: string) {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    if (!route.path.startsWith(`${basePath}/`)) continue
    const path = route.path.slice(basePath.length).replace(/:([^/]+)/g, '{$1}')
    ;(paths[path] ??= {})[route.method.toLowerCase()] = operationOf(route)
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'softphone-backend',
      version: VERSION,
      description: 'REST backend for SIP softphone apps. `x-access` is each route\'s access level: public, refresh, token, user, admin or superadmin.',
    },
    servers: [{ url: basePath }],
    paths,
    components: { schemas: sharedJsonSchemas(), securitySchemes: SECURITY_SCHEME_OBJECTS },
  }
}

function operationOf({ path, hooks }: DocumentedRoute): Record<string, unknown> {
  const detail = hooks.detail ?? {}
  const parameters = [...pathParameters(path, hooks.params), ...queryParameters(hooks.query)]
  return {
    ...detail,
    ...(parameters.length > 0 && { parameters }),
    // Our parse hooks take JSON only (http/json-body.ts). A route whose body travels in another
    // shape than its parse hook hands on (publish keeps the text) declares `requestBody` itself.
    ...(hooks.body !== undefined && !detail.requestBody && { requestBody: { required: true, content: { 'application/json': { schema: jsonSchemaOf(hooks.body as GenericSchema, 'output') } } } }),
  }
}

/** Path parameters from the route's schema, else as plain strings from the path itself. */
function pathParameters(path: string, schema: unknown) {
  const properties = schema === undefined ? null : (jsonSchemaOf(schema as GenericSchema, 'input').properties as Record<string, JsonSchema>)
  return [...path.matchAll(/:([^/]+)/g)].map(([, name]) => ({
    name: name!,
    in: 'path',
    required: true,
    schema: properties?.[name!] ?? { type: 'string' },
  }))
}

function queryParameters(schema: unknown) {
  if (schema === undefined) return []
  const { properties = {}, required = [] } = jsonSchemaOf(schema as GenericSchema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] }
  return Object.entries(properties).map(([name, property]) => ({ name, in: 'query', required: required.includes(name), schema: property }))
}
