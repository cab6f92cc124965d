/**
 * Who may call a route, declared next to its schema as `{ auth: <RouteAccess> }` (auth-plugin.ts)
 * and listed in the OpenAPI document as `x-access` (README "Who may call what"). The access matrix
 * test (test/unit/access-matrix.test.ts) walks every route of the app by this declaration.
 */
import { ROLES, type Role } from '../directory/directory'
import type { CredentialKind } from './authenticator'

export type RouteAccess = 'public' | 'refresh' | 'token' | Role

/** Every credential that stands for a user on an ordinary route. */
const USER_CREDENTIALS: readonly CredentialKind[] = ['access_token', 'api_key', 'digest', 'external_jwt']

export interface AccessRule {
  /** Null: public, nothing is checked. */
  role: Role | null
  credentials: readonly CredentialKind[]
}

export const ACCESS_RULES: Record<RouteAccess, AccessRule> = {
  public: { role: null, credentials: [] },
  /** `auth/refresh`: a refresh token and nothing else. */
  refresh: { role: 'user', credentials: ['refresh_token'] },
  /** Routes that act on the token itself: logout revokes it, streams re-check it every second. */
  token: { role: 'user', credentials: ['access_token'] },
  user: { role: 'user', credentials: USER_CREDENTIALS },
  admin: { role: 'admin', credentials: USER_CREDENTIALS },
  superadmin: { role: 'superadmin', credentials: USER_CREDENTIALS },
}

/** `user` < `admin` < `superadmin`. */
export function roleAtLeast(role: Role, minimum: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(minimum)
}

/** The route's OpenAPI `detail` additions: its access level and the security schemes it takes. */
export function accessDetail(access: RouteAccess): { 'x-access': RouteAccess; security: Array<Record<string, string[]>> } {
  const schemes = ACCESS_RULES[access].credentials.flatMap((kind) => SECURITY_SCHEMES[kind])
  return { 'x-access': access, security: schemes.map((scheme) => ({ [scheme]: [] })) }
}

/** OpenAPI security scheme names per credential kind (README "Who may call what"). */
export const SECURITY_SCHEMES: Record<CredentialKind, readonly string[]> = {
  access_token: ['bearer'],
  refresh_token: ['bearerRefresh'],
  api_key: ['apiKeyHeader', 'apiKeyCookie'],
  digest: ['digest'],
  external_jwt: ['externalJwt'],
}
