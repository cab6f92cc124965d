/**
 * Issues and checks our access and refresh tokens: claims, type, revocation
 * (README "Security notes and decisions").
 */
import { createHmac, randomBytes } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import type { Role } from '../directory/directory'
import { checkTimeClaims, signHs256, TokenClaimError, TokenError, TokenKeyError, verifyJws, type VerifiedJws } from './jws'
import type { KeyRing } from './key-ring'
import { StoreUnavailableError } from '../store/outage'
import type { Revocations } from './revocations'

export type TokenType = 'access' | 'refresh'

/** Allowed clock skew between the PBX and whoever minted the token; open streams outlive `exp` by it too. */
export const CLOCK_TOLERANCE_SECONDS = 30
/** Apps reuse one access token for minutes; remembering recent verifications skips HMAC and JSON work. */
const VERIFIED_CACHE_SIZE = 10_000

export class TokenTypeError extends TokenError {
  override name = 'TokenTypeError'
}
class TokenRevokedError extends TokenError {
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
  /** The ring key that signed it; absent for the legacy key (README "Key rotation"). */
  kid?: string
}

export interface TokenSettings {
  accessTtl: number
  refreshTtl: number
  acceptLegacyTokens: boolean
}

/** What a refresh token says beyond the subject; sessions keep these to re-mint the same token. */
export interface RefreshClaims {
  sid: string
  jti: string
  iat: number
  exp: number
}

export class TokenService {
  /**
   * Exact token text → its verified claims. Keyed by the full text, so a malleated variant of a
   * token misses and goes through full verification. Time, revocation and type are checked on
   * every use, hit or miss.
   */
  private readonly verified = new Map<string, VerifiedToken>()

  constructor(
    private readonly keys: KeyRing,
    private readonly clock: Clock,
    private readonly revocations: Revocations,
    readonly settings: TokenSettings,
  ) {}

  mintAccess(subject: TokenSubject, sid: string): string {
    const iat = unixSeconds(this.clock)
    return this.mint(subject, { type: 'access', iat, exp: iat + this.settings.accessTtl, jti: randomId(), sid })
  }

  /** Deterministic: the same subject and claims give the same text, which the rotation grace relies on. */
  mintRefresh(subject: TokenSubject, claims: RefreshClaims): string {
    return this.mint(subject, { type: 'refresh', iat: claims.iat, exp: claims.exp, jti: claims.jti, sid: claims.sid })
  }

  /** Claims for a new refresh token issued now, with the given id. */
  refreshClaimsNow(sid: string, jti: string = randomId()): RefreshClaims {
    const iat = unixSeconds(this.clock)
    return { sid, jti, iat, exp: iat + this.settings.refreshTtl }
  }

  /**
   * The id of the refresh token that follows `jti` in a rotation. Keyed with the key that signed
   * `jti`'s token (`kid`), so nobody without it can predict the next id, the store never needs the
   * id itself, and a key rotation between a refresh and its repeat changes nothing.
   */
  successorId(jti: string, kid: string | undefined): string {
    const key = this.keys.keyFor(kid, unixSeconds(this.clock)) ?? this.keys.signing().key
    return createHmac('sha256', key).update(`refresh-successor:${jti}`).digest().subarray(0, 16).toString('base64url')
  }

  /**
   * A stable identity for a legacy (PHP) token, which has no jti: its claims identify it, since
   * the module signed deterministically. Used as session id and token id of its tracked session.
   */
  legacyTokenId(token: VerifiedToken): string {
    const input = `legacy:${token.username}:${token.type}:${token.issuedAt}:${token.expiresAt}`
    return createHmac('sha256', this.keys.legacyKey).update(input).digest().subarray(0, 16).toString('base64url')
  }

  private mint(subject: TokenSubject, claims: { type: TokenType; iat: number; exp: number; jti: string; sid: string }): string {
    const { type, iat, exp, jti, sid } = claims
    const { kid, key } = this.keys.signing()
    return signHs256({ sub: String(subject.id), username: subject.username, role: subject.role, type, iat, exp, jti, sid }, key, kid)
  }

  /** Throws a TokenError subclass; TokenTypeError means "valid, but not for this route". Either type without `expected`. */
  verify(token: string, expected?: TokenType): VerifiedToken {
    const now = unixSeconds(this.clock)
    const verified = this.verified.get(token) ?? this.verifyAndRemember(token, now)
    checkTimeClaims({ exp: verified.expiresAt, iat: verified.issuedAt, nbf: verified.notBefore }, { now, tolerance: CLOCK_TOLERANCE_SECONDS })
    // A remembered token whose key retired since (README "Key rotation").
    if (!this.keys.isLive(verified.kid, now)) throw new TokenKeyError('signing key retired')
    // Fails closed: a copy that may lack revocations made on other nodes decides nothing (README "Several nodes").
    if (!this.revocations.usable()) throw new StoreUnavailableError('revocations not current')
    if (this.isRevoked(verified)) throw new TokenRevokedError('revoked')
    if (expected !== undefined && verified.type !== expected) throw new TokenTypeError(`${expected} token required`)
    return verified
  }

  private verifyAndRemember(token: string, now: number): VerifiedToken {
    const verified = this.readClaims(verifyJws(token, (kid) => this.keys.keyFor(kid, now), { now, tolerance: CLOCK_TOLERANCE_SECONDS }))
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!)
    this.verified.set(token, verified)
    return verified
  }

  private isRevoked(token: VerifiedToken): boolean {
    if (!token.jti) return this.revocations.isLegacyTokenRevoked(token.username, token.issuedAt)
    return this.revocations.isTokenIdRevoked(token.jti) || this.revocations.isSessionRevoked(token.sid!)
  }

  private readClaims({ claims, kid }: VerifiedJws): VerifiedToken {
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
      // The PHP module never wrote a kid: a legacy-shaped token with one was not made by anyone we trust.
      if (kid !== undefined) throw new TokenClaimError('a legacy token carries no kid')
      return token
    }
    if (typeof jti !== 'string' || jti.length === 0) throw new TokenClaimError('jti must be a string')
    if (typeof sid !== 'string' || sid.length === 0) throw new TokenClaimError('sid must be a string')
    return kid === undefined ? { ...token, jti, sid } : { ...token, jti, sid, kid }
  }
}

/** 128 random bits, base64url. */
export function randomId(): string {
  return randomBytes(16).toString('base64url')
}
