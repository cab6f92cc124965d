/**
 * Bearer tokens (RFC 6750): ours, HS256 (tokens/tokens.ts), or, when `external_jwt` is set, an
 * external issuer's, told apart by the algorithm their header names. Ours is always HS256, an
 * issuer's never is, so a token can't choose which key checks it (README "Who may call what").
 */
import type { Directory } from '../directory/directory'
import { StoreUnavailableError } from '../store/outage'
import { TokenError } from '../tokens/jws'
import { TokenTypeError, type TokenService, type TokenType, type VerifiedToken } from '../tokens/tokens'
import { ABSENT, type AuthAttempt, type Authenticator, type CredentialKind, type CredentialRequest } from './authenticator'
import { findBearerToken } from './credentials'
import { isDigestAuthorization } from './digest-header'

/** The external issuer's side of the bearer path (README "Who may call what"). */
export interface ExternalIssuer {
  /** True when `token` is a JWS whose header names one of the issuer's allowed algorithms. */
  issued(token: string): boolean
  authenticate(token: string): AuthAttempt | Promise<AuthAttempt>
}

const KIND: Record<TokenType, CredentialKind> = { access: 'access_token', refresh: 'refresh_token' }

export class BearerAuthenticator implements Authenticator {
  readonly kinds: readonly CredentialKind[]

  constructor(
    private readonly tokens: TokenService,
    private readonly directory: Directory,
    private readonly external: ExternalIssuer | null = null,
  ) {
    this.kinds = external ? ['access_token', 'refresh_token', 'external_jwt'] : ['access_token', 'refresh_token']
  }

  authenticate(request: CredentialRequest): AuthAttempt | Promise<AuthAttempt> {
    const found = findBearer(request)
    if (found.kind !== 'token') return found
    if (this.external?.issued(found.token)) return this.external.authenticate(found.token)
    return this.checkToken(found.token)
  }

  /** Our own token of `type` and nothing else; an external issuer's is invalid here. */
  ownToken(request: CredentialRequest, type: TokenType): AuthAttempt {
    const found = findBearer(request)
    return found.kind === 'token' ? this.checkToken(found.token, type) : found
  }

  /**
   * For a token already in hand, of either type: a stream re-checks its own every second
   * (README "Presence: publish and subscribe").
   */
  checkToken(text: string, expected?: TokenType): AuthAttempt {
    let token: VerifiedToken
    try {
      token = this.tokens.verify(text, expected)
    } catch (error) {
      if (error instanceof TokenTypeError) return { kind: 'failed', failure: 'wrong_type', reason: 'wrong token type' }
      if (error instanceof TokenError) return { kind: 'failed', failure: 'invalid', reason: error.name }
      if (error instanceof StoreUnavailableError) return { kind: 'failed', failure: 'unavailable', reason: error.message, retryAfter: STALE_RETRY_AFTER }
      throw error
    }
    // A user disabled or removed in the directory loses access at the next request
    // (README "Sessions and refresh rotation").
    const user = this.directory.findByUsername(token.username)
    if (!user || user.disabled) return { kind: 'failed', failure: 'invalid', reason: 'unknown or disabled user' }
    return { kind: 'ok', principal: { user, via: KIND[token.type], token, credential: text } }
  }
}

/** Seconds a client waits when the revocation copy is stale: the store reconnects within a few. */
const STALE_RETRY_AFTER = 5

const MALFORMED: AuthAttempt = { kind: 'failed', failure: 'malformed', reason: 'malformed credentials' }

function findBearer(request: CredentialRequest): AuthAttempt | { kind: 'token'; token: string } {
  const headers = request.headers
  const found = findBearerToken({ authorization: bearerHeader(headers.get('authorization')), query: request.tokenQuery, cookie: headers.get('cookie') })
  if (found.kind === 'none') return ABSENT
  return found.kind === 'malformed' ? MALFORMED : found
}

/** `Authorization: Digest …` is the Digest authenticator's (digest-authenticator.ts); any other header is judged here. */
function bearerHeader(header: string | null): string | null {
  return header !== null && isDigestAuthorization(header) ? null : header
}
