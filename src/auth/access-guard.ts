/**
 * Decides whether a request's bearer token grants access, independent of HTTP. Callers map the
 * outcome to statuses and challenges, which differ per route (RFC 6750 §3.1):
 * README "Walkthrough with curl" for most routes, README "Recordings: check-media-access" for
 * nginx's subrequest.
 */
import type { Directory, DirectoryUser } from '../directory/directory'
import { TokenError } from '../tokens/jws'
import { TokenTypeError, type TokenService, type TokenType, type VerifiedToken } from '../tokens/tokens'
import { findBearerToken, type CredentialSources } from './credentials'

export interface Principal {
  user: DirectoryUser
  token: VerifiedToken
  /** The bearer token as presented: streams keep it to re-check it while they stay open. Never log it. */
  credential: string
}

export type AccessOutcome =
  | { ok: true; principal: Principal }
  | { ok: false; failure: 'missing' | 'malformed' | 'invalid' | 'wrong_type'; reason: string }

export class AccessGuard {
  constructor(
    private readonly tokens: TokenService,
    private readonly directory: Directory,
  ) {}

  check(sources: CredentialSources, type: TokenType): AccessOutcome {
    const found = findBearerToken(sources)
    if (found.kind === 'none') return { ok: false, failure: 'missing', reason: 'no token' }
    if (found.kind === 'malformed') return { ok: false, failure: 'malformed', reason: 'malformed credentials' }
    return this.checkToken(found.token, type)
  }

  /**
   * For a token already in hand: a stream re-checks its own every second
   * (README "Presence: publish and subscribe").
   */
  checkToken(text: string, type: TokenType): AccessOutcome {
    let token: VerifiedToken
    try {
      token = this.tokens.verify(text, type)
    } catch (error) {
      if (error instanceof TokenTypeError) return { ok: false, failure: 'wrong_type', reason: 'wrong token type' }
      if (error instanceof TokenError) return { ok: false, failure: 'invalid', reason: error.name }
      throw error
    }
    // A user disabled or removed in the directory loses access at the next request
    // (README "Sessions and refresh rotation").
    const user = this.directory.findByUsername(token.username)
    if (!user || user.disabled) return { ok: false, failure: 'invalid', reason: 'unknown or disabled user' }
    return { ok: true, principal: { user, token, credential: text } }
  }
}
