/** Issues and checks our access and refresh tokens (SPEC §5): claims, type, revocation. */
import { randomBytes } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import type { Role } from '../directory/directory'
import { checkTimeClaims, signHs256, TokenClaimError, TokenError, verifyHs256, type Claims } from './jws'
import type { Revocations } from './revocations'

export type TokenType = 'access' | 'refresh'

/** Allowed clock skew between the PBX and whoever minted the token; SPEC §5 caps it at 60 s. */
export const CLOCK_TOLERANCE_SECONDS = 30
/** Apps reuse one access token for minutes; remembering recent verifications skips HMAC and JSON work. */
const VERIFIED_CACHE_SIZE = 10_000

export class TokenTypeError extends TokenError {
  override name = 'TokenTypeError'
}
export class TokenRevokedError extends TokenError {
  override name = 'TokenRevokedError'
}

export interface TokenSubject {
  id: number
  username: string
  role: Role
}

export interface VerifiedToken {
  type: TokenType
  username: string
  issuedAt: number
  expiresAt: number
  notBefore?: number
  /** Absent only on legacy tokens from ModuleSoftphoneBackend. */
  jti?: string
  sid?: string
}

export interface TokenSettings {
  accessTtl: number
  refreshTtl: number
  acceptLegacyTokens: boolean
}

export interface IssuedPair {
  accessToken: string
  refreshToken: string
  sid: string
}

export class TokenService {
  /**
   * Exact token text → its verified claims. Keyed by the full text, so a malleated variant of a
   * token misses and goes through full verification. Time, revocation and type are checked on
   * every use, hit or miss.
   */
  private readonly verified = new Map<string, VerifiedToken>()

  constructor(
    private readonly key: Uint8Array,
    private readonly clock: Clock,
    private readonly revocations: Revocations,
    readonly settings: TokenSettings,
  ) {}

  issuePair(subject: TokenSubject): IssuedPair {
    const sid = randomId()
    return {
      accessToken: this.issue(subject, 'access', sid),
      refreshToken: this.issue(subject, 'refresh', sid),
      sid,
    }
  }

  /** A new access token in the refresh token's session; a legacy refresh token starts one. */
  issueAccessFor(subject: TokenSubject, refresh: VerifiedToken): string {
    return this.issue(subject, 'access', refresh.sid ?? randomId())
  }

  private issue(subject: TokenSubject, type: TokenType, sid: string): string {
    const iat = unixSeconds(this.clock)
    const ttl = type === 'access' ? this.settings.accessTtl : this.settings.refreshTtl
    return signHs256(
      { sub: String(subject.id), username: subject.username, role: subject.role, type, iat, exp: iat + ttl, jti: randomId(), sid },
      this.key,
    )
  }

  /** Throws a TokenError subclass; TokenTypeError means "valid, but not for this route". */
  verify(token: string, expected: TokenType): VerifiedToken {
    const now = unixSeconds(this.clock)
    const verified = this.verified.get(token) ?? this.verifyAndRemember(token, now)
    checkTimeClaims({ exp: verified.expiresAt, iat: verified.issuedAt, nbf: verified.notBefore }, { now, tolerance: CLOCK_TOLERANCE_SECONDS })
    if (this.isRevoked(verified)) throw new TokenRevokedError('revoked')
    if (verified.type !== expected) throw new TokenTypeError(`${expected} token required`)
    return verified
  }

  /** Durable before it returns. Legacy tokens have no id, so they are cut off by issue time. */
  revoke(token: VerifiedToken): void {
    if (token.jti) this.revocations.revokeTokenId(token.jti, token.expiresAt)
    else this.revocations.revokeLegacyTokensIssuedBy(token.username, unixSeconds(this.clock))
  }

  private verifyAndRemember(token: string, now: number): VerifiedToken {
    const verified = this.readClaims(verifyHs256(token, this.key, { now, tolerance: CLOCK_TOLERANCE_SECONDS }))
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!)
    this.verified.set(token, verified)
    return verified
  }

  private isRevoked(token: VerifiedToken): boolean {
    return token.jti
      ? this.revocations.isTokenIdRevoked(token.jti)
      : this.revocations.isLegacyTokenRevoked(token.username, token.issuedAt)
  }

  private readClaims(claims: Claims): VerifiedToken {
    const { type, username, sub, jti, sid } = claims
    if (type !== 'access' && type !== 'refresh') throw new TokenClaimError('type must be access or refresh')
    if (typeof username !== 'string' || username.length === 0) throw new TokenClaimError('username required')
    // The PHP module wrote sub as the number 1; RFC 7519 says string. Both carry no meaning here.
    if (typeof sub !== 'string' && typeof sub !== 'number') throw new TokenClaimError('sub required')
    const token: VerifiedToken = {
      type,
      username,
      issuedAt: claims.iat as number,
      expiresAt: claims.exp as number,
      notBefore: claims.nbf as number | undefined,
    }
    if (jti === undefined && sid === undefined) {
      if (!this.settings.acceptLegacyTokens) throw new TokenClaimError('jti and sid required')
      return token
    }
    if (typeof jti !== 'string' || jti.length === 0) throw new TokenClaimError('jti must be a string')
    if (typeof sid !== 'string' || sid.length === 0) throw new TokenClaimError('sid must be a string')
    return { ...token, jti, sid }
  }
}

/** 128 random bits, base64url. */
function randomId(): string {
  return randomBytes(16).toString('base64url')
}
