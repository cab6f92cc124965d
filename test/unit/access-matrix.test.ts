/**
 * The access matrix (README "Who may call what"), generated from the route table: every route
 * under the base path × every kind of credential × every role. What each cell must answer follows
 * from the route's declared access alone (`x-access` in its detail), by the rules written out in
 * `expectedStatus` below, independently of src/auth/route-access.ts. A route added without an entry
 * in CALLS, or without a declared access, fails here.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { CREDENTIAL_KINDS, type CredentialKind } from '../../src/auth/authenticator'
import type { DirectoryUser, Role } from '../../src/directory/directory'
import { CALLS, requestFor, type Access } from '../route-calls'
import { challengesOf, digestAuthorization } from '../digest-client'
import { externalGround, type ExternalGround } from '../external-jwt-fixture'
import { BASE, bearer, type Harness } from '../helpers'

type Column = 'none' | CredentialKind

const ROLES: readonly Role[] = ['user', 'admin', 'superadmin']
const RANK: Record<Role, number> = { user: 0, admin: 1, superadmin: 2 }
/** The credential kinds this build can mint for a test user; every kind the app accepts must be here. */
const COLUMNS: readonly Column[] = ['none', 'access_token', 'refresh_token', 'api_key', 'digest', 'external_jwt']

/** The rules of README "Who may call what", restated. */
function expectedStatus(access: Access, column: Column, role: Role, ok: number): number {
  if (access === 'public') return ok
  if (column === 'none') return 401
  if (access === 'refresh') return column === 'refresh_token' ? ok : column === 'access_token' ? 403 : 401
  // A refresh token where an access token belongs is a wrong type, not a bad credential.
  if (column === 'refresh_token') return 403
  if (access === 'token') return column === 'access_token' ? ok : 401
  return RANK[role] >= RANK[access] ? ok : 403
}

const PASSWORD = 'Matrix-password-1'
let h: Harness
let external: ExternalGround
const users = new Map<Role, DirectoryUser>()

beforeAll(async () => {
  external = await externalGround()
  h = external.h
  for (const role of ROLES) users.set(role, await h.directory.add({ username: `matrix-${role}`, password: PASSWORD, displayName: role, role, mobile: '' }))
  const published = await h.json(`${BASE}/pub/contacts`, { event: 'first' })
  expect(published.status).toBe(200)
  expect((await h.json(`${BASE}/pub/users-state`, { states: {} })).status).toBe(200)
  expect((await h.json(`${BASE}/pub/active-calls`, { calls: [] })).status).toBe(200)
})
afterAll(() => h.close())

/**
 * The credential of `column` for `user`, for a request of `method` to `target`. A fresh session per
 * cell: logout and logout-all end the session they are called with.
 */
async function credentialHeaders(column: Column, user: DirectoryUser, method: string, target: string): Promise<Record<string, string>> {
  if (column === 'none') return {}
  if (column === 'digest') return digestHeaders(user, method, target)
  if (column === 'api_key') return { 'x-api-key': h.apiKeys.createStable(user, 'matrix').text }
  if (column === 'external_jwt') return bearer(await external.token('ES256', { sub: user.username }))
  const session = await h.services.sessions.start(user, { ip: '127.0.0.1', ua: 'matrix' })
  return bearer(column === 'access_token' ? session.accessToken : session.refreshToken)
}

/** Asks for a challenge, as a phone naming itself in `From` does, and answers it. */
async function digestHeaders(user: DirectoryUser, method: string, target: string): Promise<Record<string, string>> {
  const from = `sip:${user.username}@matrix.example`
  const asked = await h.request(`${BASE}/profile`, { headers: { from } })
  const [challenge] = challengesOf(asked)
  await asked.arrayBuffer()
  return { from, authorization: digestAuthorization(challenge!, { username: user.username, password: PASSWORD, uri: target, method }) }
}

const routesUnderBase = () =>
  declaredRoutes().filter((route) => route.path.startsWith(`${BASE}/`))

function declaredRoutes() {
  return h.app.routes.map((route) => ({
    method: route.method,
    path: route.path,
    access: (route.hooks as { detail?: { 'x-access'?: Access } } | undefined)?.detail?.['x-access'],
  }))
}

describe('the route table', () => {
  test('every kind of credential the app knows has a column', () => {
    expect([...COLUMNS].sort()).toEqual((['none', ...CREDENTIAL_KINDS] as Column[]).sort())
  })

  test('every route under the base path declares its access and has an entry in the matrix', () => {
    const routes = routesUnderBase()
    expect(routes.length).toBeGreaterThan(10)
    for (const route of routes) {
      const key = `${route.method} ${route.path.slice(BASE.length)}`
      expect({ key, inMatrix: key in CALLS }).toEqual({ key, inMatrix: true })
      expect({ key, declared: route.access }).toEqual({ key, declared: CALLS[key]!.access })
    }
  })

  test('every entry of the matrix is a route (no stale rows)', () => {
    const keys = new Set(routesUnderBase().map((route) => `${route.method} ${route.path.slice(BASE.length)}`))
    expect(Object.keys(CALLS).filter((key) => !keys.has(key))).toEqual([])
  })
})

describe('each cell: route × credential × role', () => {
  test('answers what the route\'s declared access says', async () => {
    const failures: string[] = []
    let cells = 0
    for (const route of routesUnderBase()) {
      const key = `${route.method} ${route.path.slice(BASE.length)}`
      const call = CALLS[key]!
      for (const column of COLUMNS) {
        for (const role of ROLES) {
          const [target, init] = requestFor(key, route.method, {})
          Object.assign(init.headers as Record<string, string>, await credentialHeaders(column, users.get(role)!, route.method, target))
          const response = await h.request(target, init)
          const want = expectedStatus(call.access, column, role, call.ok)
          cells++
          if (response.status !== want) failures.push(`${key} with ${column} as ${role}: ${response.status}, expected ${want}`)
          if (response.status === 401) {
            const challenge = response.headers.get('www-authenticate') ?? ''
            if (!/^(Bearer|Digest) realm="[^"]+"/.test(challenge)) failures.push(`${key} with ${column} as ${role}: 401 without a challenge`)
          }
          if (response.status >= 400) {
            const body = (await response.json()) as { success?: unknown; code?: unknown }
            if (body.success !== false || typeof body.code !== 'string') failures.push(`${key} with ${column} as ${role}: ${response.status} without the error envelope`)
          } else {
            await response.arrayBuffer()
          }
        }
      }
    }
    expect(failures).toEqual([])
    expect(cells).toBe(routesUnderBase().length * COLUMNS.length * ROLES.length)
  })
})
