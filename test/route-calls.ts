/**
 * How to call each route under the base path once it lets the caller in, and who may: the access
 * matrix's own record (test/unit/access-matrix.test.ts), which every route's declared access
 * must match. Keyed by method and path relative to the base path.
 */
import type { Role } from '../src/directory/directory'
import { BASE } from './helpers'

export type Access = 'public' | 'refresh' | 'token' | Role

export interface Call {
  /** Who may call it: the matrix's own record, which the route's declaration must match. */
  access: Access
  /** The path with its parameters filled in, relative to the base path. */
  path?: string
  body?: unknown
  headers?: Record<string, string>
  /** What the route answers once access is granted. */
  ok: number
}

/** How to call each route once it lets the caller in; keyed by method and path relative to the base path. */
export const CALLS: Record<string, Call> = {
  'POST /auth/login': { access: 'public', body: { username: 'matrix-user', password: 'Matrix-password-1' }, ok: 200 },
  'POST /auth/refresh': { access: 'refresh', ok: 200 },
  'POST /auth/logout': { access: 'token', ok: 200 },
  'GET /sessions': { access: 'user', ok: 200 },
  'DELETE /sessions/:sid': { access: 'user', path: '/sessions/AAAAAAAAAAAAAAAAAAAAAA', ok: 404 },
  'POST /auth/logout-all': { access: 'user', ok: 200 },
  'GET /profile': { access: 'user', ok: 200 },
  'GET /users': { access: 'user', ok: 200 },
  'GET /history': { access: 'user', ok: 200 },
  'GET /calls': { access: 'user', ok: 200 },
  // Without X-Original-URI only the credential is checked.
  'GET /check-media-access': { access: 'user', ok: 200 },
  'GET /health': { access: 'public', ok: 200 },
  'POST /pub/:channel': { access: 'public', path: '/pub/contacts', body: { event: 'matrix' }, ok: 200 },
  // A message is buffered first (beforeAll), so the long-poll answers at once.
  'GET /sub/:channel': { access: 'token', path: '/sub/contacts', ok: 200 },
  // Snapshots are published first (beforeAll): a new subscriber gets its personalised one at once.
  'GET /sub/me/users-state': { access: 'token', ok: 200 },
  'GET /sub/me/active-calls': { access: 'token', ok: 200 },
  'GET /peers': { access: 'user', ok: 200 },
  'GET /peers/:ext': { access: 'user', path: '/peers/nobody', ok: 404 },
  'GET /registry': { access: 'admin', ok: 200 },
  'POST /accounts/me/api_key': { access: 'user', ok: 200 },
  'GET /admin/api_keys': { access: 'admin', ok: 200 },
  'POST /admin/api_keys': { access: 'admin', body: { user: 'matrix-user' }, ok: 200 },
  'DELETE /admin/api_keys/:id': { access: 'admin', path: '/admin/api_keys/999999', ok: 404 },
  'GET /admin/spaces': { access: 'superadmin', ok: 200 },
  'POST /admin/spaces': { access: 'superadmin', body: { domain: 'default' }, ok: 409 },
  'PATCH /admin/spaces/:domain': { access: 'superadmin', path: '/admin/spaces/nowhere.example', body: { expire_at: null }, ok: 404 },
  'DELETE /admin/spaces/:domain': { access: 'superadmin', path: '/admin/spaces/nowhere.example', ok: 404 },
  'GET /admin/users': { access: 'admin', ok: 200 },
  'GET /admin/users/:username': { access: 'admin', path: '/admin/users/nobody', ok: 404 },
  // The user exists already: the matrix changes nothing it relies on.
  'POST /admin/users': { access: 'admin', body: { username: 'matrix-user', password: 'Matrix-password-1' }, ok: 409 },
  'PATCH /admin/users/:username': { access: 'admin', path: '/admin/users/nobody', body: { display_name: 'x' }, ok: 404 },
  'POST /admin/users/:username/disable': { access: 'admin', path: '/admin/users/nobody/disable', ok: 404 },
  'POST /admin/users/:username/enable': { access: 'admin', path: '/admin/users/nobody/enable', ok: 404 },
  'DELETE /admin/users/:username': { access: 'admin', path: '/admin/users/nobody', ok: 404 },
  'GET /admin/users/:username/sessions': { access: 'admin', path: '/admin/users/nobody/sessions', ok: 404 },
  'DELETE /admin/users/:username/sessions/:sid': { access: 'admin', path: '/admin/users/nobody/sessions/AAAAAAAAAAAAAAAAAAAAAA', ok: 404 },
  'DELETE /admin/users/:username/sessions': { access: 'admin', path: '/admin/users/nobody/sessions', ok: 404 },
  'GET /admin/security-log': { access: 'admin', ok: 200 },
  'GET /openapi.json': { access: 'public', ok: 200 },
}

/** The request for route `key` (method and path relative to the base path) with `credentials` added. */
export function requestFor(key: string, method: string, credentials: Record<string, string>): [string, RequestInit] {
  const call = CALLS[key]!
  const headers: Record<string, string> = { ...credentials, ...call.headers }
  const init: RequestInit = { method, headers }
  if (call.body !== undefined) {
    init.body = JSON.stringify(call.body)
    headers['content-type'] = 'application/json'
  }
  return [`${BASE}${call.path ?? key.slice(key.indexOf(' ') + 1)}`, init]
}
