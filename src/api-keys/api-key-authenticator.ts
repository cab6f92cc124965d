/**
 * API keys as a credential (README "API keys"): the `x-api-key` header or cookie. Never the query
 * string: URLs end up in logs, so a key there is refused without being looked at.
 */
import { ABSENT, type AuthAttempt, type Authenticator, type CredentialKind, type CredentialRequest } from '../auth/authenticator'
import type { ApiKeyService } from './api-key-service'

const API_KEY_HEADER = 'x-api-key'
const API_KEY_COOKIE = 'x-api-key'
/** Parameter names that would carry a key in a URL, matched as sent (as auth/credentials.ts does). */
const QUERY_NAMES = ['x-api-key', 'api_key']

const MALFORMED = (reason: string): AuthAttempt => ({ kind: 'failed', failure: 'malformed', reason })

type Found = { kind: 'key'; text: string } | AuthAttempt

export class ApiKeyAuthenticator implements Authenticator {
  readonly kinds: readonly CredentialKind[] = ['api_key']

  constructor(private readonly keys: ApiKeyService) {}

  authenticate(request: CredentialRequest): AuthAttempt {
    const found = findApiKey(request)
    if (found.kind !== 'key') return found
    const checked = this.keys.check(found.text, request.clientIp())
    if (!checked.ok) return { kind: 'failed', failure: 'invalid', reason: checked.reason }
    return { kind: 'ok', principal: { user: checked.user, via: 'api_key', credential: found.text } }
  }
}

/** The one key a request carries, or why it carries none or a malformed one. The key is never in a reason. */
function findApiKey(request: CredentialRequest): Found {
  if (hasQueryKey(request.target)) return MALFORMED('api key in the query string')
  const header = request.headers.get(API_KEY_HEADER)
  const cookie = cookieValue(request.headers.get('cookie'))
  if (cookie === REPEATED) return MALFORMED('api key cookie repeated')
  if (header !== null && cookie !== null && header !== cookie) return MALFORMED('different api keys in header and cookie')
  const text = header ?? cookie
  return text === null ? ABSENT : { kind: 'key', text }
}

function hasQueryKey(target: string): boolean {
  const start = target.indexOf('?')
  if (start === -1) return false
  return target
    .slice(start + 1)
    .split('&')
    .some((pair) => QUERY_NAMES.includes(pair.split('=', 1)[0]!))
}

const REPEATED = Symbol('repeated')

function cookieValue(header: string | null): string | null | typeof REPEATED {
  if (header === null) return null
  let value: string | null = null
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1 || pair.slice(0, eq).trim() !== API_KEY_COOKIE) continue
    if (value !== null) return REPEATED
    value = pair.slice(eq + 1).trim()
  }
  return value
}
