/** `BASE/openapi.json` (README "OpenAPI"): every route, its access level and schemes, its schemas. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { accessDetail, SECURITY_SCHEMES, type RouteAccess } from '../../src/auth/route-access'
import { createCdrFixture, FIXTURE_DAY } from '../cdr-fixture'
import { BASE, bearer, createHarness, type Harness } from '../helpers'
import { responseSchema, schemaErrors } from '../json-schema-check'

type Operation = { 'x-access': RouteAccess; security: unknown; parameters?: Array<Record<string, unknown>>; requestBody?: any; responses?: Record<string, any> }
type Document = { openapi: string; servers: Array<{ url: string }>; paths: Record<string, Record<string, Operation>>; components: Record<string, any> }

let h: Harness
let document: Document
let tokens: { access_token: string; refresh_token: string }

beforeAll(async () => {
  h = await createHarness()
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
  tokens = await h.login()
  const response = await h.request(`${BASE}/openapi.json`)
  expect(response.status).toBe(200)
  document = await response.json()
})
afterAll(() => h.close())

const moduleRoutes = () => h.app.routes.filter((route) => route.path.startsWith(`${BASE}/`))
const operation = (path: string, method: string) => document.paths[path]?.[method]!
/** The document's answer schema for a route must accept what the route answered. */
async function expectDocumented(path: string, method: string, response: Response): Promise<Record<string, any>> {
  const body = await response.json()
  expect(schemaErrors(body, responseSchema(document, path, method, response.status), document, { closed: true })).toEqual([])
  return body
}

describe('the document', () => {
  test('is public JSON, OpenAPI 3.1, with paths relative to the base path', async () => {
    const response = await h.request(`${BASE}/openapi.json`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(document.openapi).toBe('3.1.0')
    expect(document.servers).toEqual([{ url: BASE }])
    expect(operation('/openapi.json', 'get')).toMatchObject({ 'x-access': 'public', security: [] })
  })

  test('lists every route under the base path with its method, x-access and security as the route declares them', () => {
    const routes = moduleRoutes()
    expect(routes.length).toBeGreaterThan(10)
    for (const route of routes) {
      const path = route.path.slice(BASE.length).replace(/:([^/]+)/g, '{$1}')
      const listed = operation(path, route.method.toLowerCase())
      expect(listed, `${route.method} ${route.path}`).toBeDefined()
      const declared = route.hooks.detail as { 'x-access'?: RouteAccess; security?: unknown }
      expect(declared['x-access'], `${route.method} ${route.path} declares no access level`).toBeDefined()
      expect(listed['x-access']).toBe(declared['x-access']!)
      expect(listed.security).toEqual(declared.security)
      expect(listed.security).toEqual(accessDetail(declared['x-access']!).security)
    }
    const listedCount = Object.values(document.paths).reduce((sum, methods) => sum + Object.keys(methods).length, 0)
    expect(listedCount).toBe(routes.length)
  })

  test('shows each route\'s minimum role as its access level', () => {
    expect(operation('/registry', 'get')).toMatchObject({ 'x-access': 'admin' })
    expect(operation('/profile', 'get')).toMatchObject({ 'x-access': 'user' })
    expect(operation('/auth/refresh', 'post')).toMatchObject({ 'x-access': 'refresh', security: [{ bearerRefresh: [] }] })
    expect(operation('/auth/logout', 'post')).toMatchObject({ 'x-access': 'token', security: [{ bearer: [] }] })
    expect(operation('/auth/login', 'post')).toMatchObject({ 'x-access': 'public', security: [] })
  })

  test('defines exactly the security schemes the routes name', () => {
    const schemes = document.components.securitySchemes
    expect(Object.keys(schemes).sort()).toEqual(Object.values(SECURITY_SCHEMES).flat().sort())
    expect(schemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    expect(schemes.bearerRefresh).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    expect(schemes.apiKeyHeader).toMatchObject({ type: 'apiKey', in: 'header', name: 'x-api-key' })
    expect(schemes.apiKeyCookie).toMatchObject({ type: 'apiKey', in: 'cookie', name: 'x-api-key' })
    expect(schemes.digest).toMatchObject({ type: 'http', scheme: 'digest' })
    expect(schemes.externalJwt).toMatchObject({ type: 'http', scheme: 'bearer' })
  })
})

describe('request schemas come from the routes\' valibot schemas', () => {
  test('login body', () => {
    const schema = operation('/auth/login', 'post').requestBody.content['application/json'].schema
    expect(schema.type).toBe('object')
    expect(schema.properties.username.anyOf).toContainEqual({ type: 'string', maxLength: 64 })
    // JSON Schema counts characters, not bytes: the rule is named instead.
    expect(schema.properties.password.anyOf).toContainEqual({ type: 'string', description: 'must be at most 1024 bytes' })
  })

  test('path parameters, and query parameters as sent', () => {
    expect(operation('/sessions/{sid}', 'delete').parameters).toEqual([
      { name: 'sid', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{22}$' } },
    ])
    expect(operation('/peers/{ext}', 'get').parameters).toEqual([{ name: 'ext', in: 'path', required: true, schema: { type: 'string' } }])
    const calls = operation('/calls', 'get').parameters!
    expect(calls.map((parameter) => [parameter.name, parameter.in, parameter.required])).toEqual([
      ['from', 'query', false],
      ['to', 'query', false],
      ['limit', 'query', false],
      ['cursor', 'query', false],
    ])
    expect(calls[2]!.schema).toEqual({ type: 'string', pattern: '^\\d{1,4}$' })
    expect(calls[0]!.schema).toMatchObject({ type: 'string', format: 'date' })
  })

  test('publish takes any JSON, not the shape its parse hook hands on', () => {
    expect(operation('/pub/{channel}', 'post').requestBody.content['application/json'].schema).toEqual({})
  })

  test('the ingest routes document the snapshot each accepts', () => {
    const schemaOf = (kind: string) => operation(`/internal/monitor-snapshot/${kind}`, 'put').requestBody.content['application/json'].schema
    expect(schemaOf('users-state')).toMatchObject({ type: 'object', required: expect.arrayContaining(['schemaVersion', 'kind', 'instanceId', 'sequence', 'generatedAt', 'states']) })
    expect(schemaOf('active-calls')).toMatchObject({ type: 'object', required: expect.arrayContaining(['schemaVersion', 'kind', 'instanceId', 'sequence', 'generatedAt', 'calls']) })
    expect(operation('/internal/monitor-snapshot/users-state', 'put')['x-access']).toBe('public')
  })
})

describe('answers', () => {
  test('every route behind the access check lists its refusals with the error envelope', () => {
    const envelope = { $ref: '#/components/schemas/ErrorEnvelope' }
    for (const path of ['/profile', '/sessions', '/auth/refresh', '/auth/logout', '/registry']) {
      const responses = Object.values(document.paths[path]!)[0]!.responses!
      for (const status of ['400', '401', '403', '429']) expect(responses[status].content['application/json'].schema).toEqual(envelope)
    }
    expect(document.components.schemas.ErrorEnvelope.required).toEqual(['success', 'error', 'code', 'message', 'timestamp'])
  })

  test('check-media-access lists only 200, 401 and 403, what nginx passes on', () => {
    expect(Object.keys(operation('/check-media-access', 'get').responses!)).toEqual(['200', '401', '403'])
  })

  test('answers of the walkthrough match their documented schemas', async () => {
    await expectDocumented('/health', 'get', await h.request(`${BASE}/health`))
    await expectDocumented('/health', 'get', await h.request(`${BASE}/health?deep=1`))
    await expectDocumented('/profile', 'get', await h.request(`${BASE}/profile`, { headers: bearer(tokens.access_token) }))
    await expectDocumented('/sessions', 'get', await h.request(`${BASE}/sessions`, { headers: bearer(tokens.access_token) }))
    await expectDocumented('/check-media-access', 'get', await h.request(`${BASE}/check-media-access`, { headers: bearer(tokens.access_token) }))
    await expectDocumented('/auth/login', 'post', await h.json(`${BASE}/auth/login`, { username: 7 }))
    await expectDocumented('/profile', 'get', await h.request(`${BASE}/profile`))
  })

  test('call history and live state answers match their documented schemas too', async () => {
    const headers = bearer(tokens.access_token)
    const cdrPath = join(h.dir, 'cdr.db')
    createCdrFixture(cdrPath)
    const withCdr = await createHarness({ cdrPath })
    try {
      await withCdr.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '0123456789' })
      const cdrHeaders = bearer((await withCdr.login()).access_token)
      const history = await expectDocumented('/history', 'get', await withCdr.request(`${BASE}/history?date=${FIXTURE_DAY}`, { headers: cdrHeaders }))
      expect(history.history.length).toBeGreaterThan(3)
      await expectDocumented('/calls', 'get', await withCdr.request(`${BASE}/calls?from=${FIXTURE_DAY}&to=${FIXTURE_DAY}&limit=2`, { headers: cdrHeaders }))
    } finally {
      withCdr.close()
    }
    await expectDocumented('/peers', 'get', await h.request(`${BASE}/peers`, { headers }))
    await expectDocumented('/peers/{ext}', 'get', await h.request(`${BASE}/peers/201`, { headers }))
    await expectDocumented('/peers/{ext}', 'get', await h.request(`${BASE}/peers/999`, { headers }))
    await expectDocumented('/registry', 'get', await h.request(`${BASE}/registry`, { headers }))
  })

  test('a schema that doesn\'t fit is caught', () => {
    const schema = responseSchema(document, '/profile', 'get', 200)
    const good = { success: true, user: { id: 1, username: '201', role: 'user', display_name: 'Alice' } }
    expect(schemaErrors(good, schema, document, { closed: true })).toEqual([])
    expect(schemaErrors({ ...good, success: false }, schema, document)).toEqual(['$.success: not true'])
    expect(schemaErrors({ ...good, user: { ...good.user, role: 'root' } }, schema, document)).toHaveLength(1)
    expect(schemaErrors({ success: true }, schema, document)).toEqual(['$.user: missing'])
    expect(schemaErrors({ ...good, extra: 1 }, schema, document, { closed: true })).toEqual(['$.extra: not in the schema'])
    expect(() => schemaErrors(1, { minimum: 0 }, document)).toThrow('not checked here')
  })
})
