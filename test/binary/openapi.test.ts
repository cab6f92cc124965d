/**
 * The compiled binary's OpenAPI document (README "OpenAPI") against its own answers: each request
 * of the README walkthrough is checked against the document's schema for that route and status,
 * with no key the schema doesn't name (test/json-schema-check.ts).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { responseSchema, schemaErrors } from '../json-schema-check'
import { BINARY, ServerProcess } from './server-process'

const PASSWORD = 'Pw-201-openapi'
let server: ServerProcess
let document: Record<string, unknown>

beforeAll(async () => {
  expect(existsSync(BINARY)).toBe(true)
  server = new ServerProcess()
  await server.addUser('201', PASSWORD, ['--name', 'Alice'])
  await server.start()
})
afterAll(() => server.cleanup())

/** Sends one request and returns its JSON after checking it against the document. */
async function documented(method: string, path: string, expectedStatus: number, init: { token?: string; body?: unknown } = {}) {
  const response = await fetch(`${server.baseUrl}${path}`, {
    method,
    headers: {
      ...(init.token && { authorization: `Bearer ${init.token}` }),
      ...(init.body !== undefined && { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })
  expect(response.status).toBe(expectedStatus)
  const body = await response.json()
  expect(schemaErrors(body, responseSchema(document, path, method, response.status), document, { closed: true })).toEqual([])
  return body
}

test('the README walkthrough answers as the served document says', async () => {
  const served = await fetch(`${server.baseUrl}/openapi.json`)
  expect(served.status).toBe(200)
  document = await served.json()
  expect(document).toMatchObject({ openapi: '3.1.0', servers: [{ url: '/pbxcore/api/module-softphone-backend/v1' }] })

  await documented('GET', '/health', 200)
  const login = await documented('POST', '/auth/login', 200, { body: { username: '201', password: PASSWORD } })
  await documented('GET', '/profile', 200, { token: login.access_token })
  const refreshed = await documented('POST', '/auth/refresh', 200, { token: login.refresh_token })
  await documented('GET', '/sessions', 200, { token: refreshed.access_token })
  await documented('GET', '/check-media-access', 200, { token: refreshed.access_token })
  await documented('POST', '/auth/refresh', 403, { token: refreshed.access_token })
  await documented('POST', '/auth/logout', 200, { token: refreshed.access_token })
  await documented('GET', '/profile', 401, { token: refreshed.access_token })
  await documented('POST', '/auth/login', 401, { body: { username: '201', password: 'wrong' } })
})
