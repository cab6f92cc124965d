/**
 * JWTs from an external issuer (README "External tokens"), the `ExternalIssuer` of the bearer path.
 *
 * Signatures and the registered claims are checked by @elysiajs/jwt (jose's jwtVerify) with the
 * issuer's public keys, the allowed algorithms only, and `iss`, `aud` and `exp` required. That
 * plugin catches every error into `false` and takes whatever header jose accepts, so the rest is
 * checked here first: the serialisation (canonical base64url, one JSON object each, no duplicate
 * members, 8 KiB), the header (`crit`/`b64` refused; `jku`, `x5u`, `jwk`, `x5c` never read), the
 * claims' types, `iat` not in the future, and the user named by `external_jwt_user_claim`.
 *
 * Verification is async (WebCrypto); a verified token is remembered by its exact text, so its
 * next use is synchronous. Time claims and the user are checked again on every use.
 */
import { jwt } from '@elysiajs/jwt'
import { unixSeconds, type Clock } from '../clock'
import type { Directory } from '../directory/directory'
import { decodeSegment, MAX_TOKEN_LENGTH, TokenError, type Claims } from '../tokens/jws'
import type { AuthAttempt } from './authenticator'
import type { ExternalIssuer } from './bearer-authenticator'
import { ConfigError } from '../config/load'
import { IssuerKeyError, readIssuerKeys, type ExternalAlgorithm, type IssuerKey } from './external-jwt-keys'

export interface ExternalJwtSettings {
  issuer: string
  audience: string
  keyFile: string
  algorithms: readonly ExternalAlgorithm[]
  /** The claim whose string value is the user's name in the directory. */
  userClaim: string
  /** Seconds of skew allowed on exp, nbf and iat. */
  clockTolerance: number
}

/** As many as our own tokens' cache (tokens.ts): apps reuse one token for minutes. */
const VERIFIED_CACHE_SIZE = 10_000
const BASE64URL = /^[A-Za-z0-9_-]+$/
/** RFC 7519 §5.1 and RFC 9068 §2.1; any other `typ` is some other kind of JWS. */
const TOKEN_TYPES = new Set(['jwt', 'at+jwt', 'application/jwt', 'application/at+jwt'])
/** Longest directory name we look up; longer claims are nobody's extension. */
const MAX_USERNAME_LENGTH = 64

/** What a verified token says, kept for its next uses. */
interface ExternalClaims {
  username: string
  exp: number
  nbf?: number
  iat?: number
}

type Verify = (token: string, options: Record<string, unknown>) => Promise<Claims | false>

interface Verifier {
  algorithm: ExternalAlgorithm
  kid?: string
  verify: Verify
}

const failed = (reason: string): AuthAttempt => ({ kind: 'failed', failure: 'invalid', reason })

export class ExternalJwtIssuer implements ExternalIssuer {
  private verifiers: Verifier[] = []
  private readonly verified = new Map<string, ExternalClaims>()

  constructor(
    private readonly settings: ExternalJwtSettings,
    keys: readonly IssuerKey[],
    private readonly directory: Directory,
    private readonly clock: Clock,
  ) {
    this.replaceKeys(keys)
  }

  /** New keys (README "External tokens": SIGHUP); tokens verified with the old ones are verified again. */
  replaceKeys(keys: readonly IssuerKey[]): void {
    this.verifiers = keys.map(verifierFor)
    this.verified.clear()
  }

  /** Cheap and lenient, for every bearer token: the full checks come in authenticate(). */
  issued(token: string): boolean {
    const end = token.indexOf('.')
    if (end < 1 || end > MAX_TOKEN_LENGTH) return false
    try {
      const alg = JSON.parse(Buffer.from(token.slice(0, end), 'base64url').toString()).alg
      return (this.settings.algorithms as readonly unknown[]).includes(alg)
    } catch {
      return false
    }
  }

  authenticate(token: string): AuthAttempt | Promise<AuthAttempt> {
    const known = this.verified.get(token)
    if (known) return this.admit(known, token)
    return this.verifyAndRemember(token).then(
      (claims) => (typeof claims === 'string' ? failed(claims) : this.admit(claims, token)),
    )
  }

  /** The claims, or why the token is refused. */
  private async verifyAndRemember(token: string): Promise<ExternalClaims | string> {
    const candidates = this.screen(token)
    if (typeof candidates === 'string') return candidates
    const payload = await this.verifyWithAny(token, candidates)
    if (!payload) return 'external token: bad signature, issuer, audience or time'
    const claims = this.readClaims(payload)
    if (typeof claims === 'string') return claims
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!)
    this.verified.set(token, claims)
    return claims
  }

  /**
   * Everything the plugin leaves to us, before any key is used: the serialisation, the header, and
   * which of our keys may verify it (the `kid` only picks among them). The verifiers, or a reason.
   */
  private screen(token: string): Verifier[] | string {
    if (token.length > MAX_TOKEN_LENGTH) return 'external token: too long'
    const segments = token.split('.')
    if (segments.length !== 3 || !segments.every((segment) => BASE64URL.test(segment))) return 'external token: not a compact JWS'
    let header: Claims
    try {
      header = decodeSegment(segments[0]!)
      decodeSegment(segments[1]!)
      if (Buffer.from(segments[2]!, 'base64url').toString('base64url') !== segments[2]) return 'external token: non-canonical signature'
    } catch (error) {
      if (error instanceof TokenError) return `external token: ${error.message}`
      throw error
    }
    return this.headerProblem(header) ?? this.verifiersFor(header)
  }

  private headerProblem(header: Claims): string | null {
    if (!(this.settings.algorithms as readonly unknown[]).includes(header.alg)) return 'external token: algorithm not allowed'
    // We understand no extension, so a critical one can't be honoured (RFC 7515 §4.1.11).
    if ('crit' in header || 'b64' in header) return 'external token: crit or b64 header'
    if (header.typ !== undefined && (typeof header.typ !== 'string' || !TOKEN_TYPES.has(header.typ.toLowerCase()))) return 'external token: not a JWT typ'
    if (header.kid !== undefined && typeof header.kid !== 'string') return 'external token: kid not a string'
    return null
  }

  private verifiersFor(header: Claims): Verifier[] | string {
    const matching = this.verifiers.filter((each) => each.algorithm === header.alg && (header.kid === undefined || each.kid === undefined || each.kid === header.kid))
    return matching.length > 0 ? matching : 'external token: no key for its alg and kid'
  }

  private async verifyWithAny(token: string, verifiers: readonly Verifier[]): Promise<Claims | false> {
    const options = {
      algorithms: [...new Set(verifiers.map((each) => each.algorithm))],
      issuer: this.settings.issuer,
      audience: this.settings.audience,
      requiredClaims: ['exp', 'iss', 'aud'],
      clockTolerance: this.settings.clockTolerance,
      currentDate: new Date(this.clock.now()),
    }
    for (const { verify } of verifiers) {
      const payload = await verify(token, options)
      if (payload) return payload
    }
    return false
  }

  /** The claims jose doesn't type-check or bound, and the user. */
  private readClaims(payload: Claims): ExternalClaims | string {
    const { exp, nbf, iat } = payload
    if (!isNumericDate(exp)) return 'external token: exp not a number'
    if (nbf !== undefined && !isNumericDate(nbf)) return 'external token: nbf not a number'
    if (iat !== undefined && !isNumericDate(iat)) return 'external token: iat not a number'
    const username = payload[this.settings.userClaim]
    if (typeof username !== 'string' || username.length === 0 || username.length > MAX_USERNAME_LENGTH) return 'external token: no user claim'
    return { username, exp, nbf, iat }
  }

  /** On every use, cached or not: time moves, users get disabled. */
  private admit(claims: ExternalClaims, token: string): AuthAttempt {
    const now = unixSeconds(this.clock)
    const tolerance = this.settings.clockTolerance
    if (now - tolerance >= claims.exp) return failed('external token: expired')
    if ((claims.nbf ?? -Infinity) > now + tolerance || (claims.iat ?? -Infinity) > now + tolerance) return failed('external token: not yet valid')
    const user = this.directory.findByUsername(claims.username)
    if (!user || user.disabled) return failed('unknown or disabled user')
    return { kind: 'ok', principal: { user, via: 'external_jwt', credential: token } }
  }
}

const isNumericDate = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

/** One @elysiajs/jwt instance per key, used for its `verify` only. */
function verifierFor({ algorithm, key, kid }: IssuerKey): Verifier {
  const plugin = jwt({ name: 'externalJwt', secret: key })
  const { verify } = plugin.decorator.externalJwt as unknown as { verify: Verify }
  return kid === undefined ? { algorithm, verify } : { algorithm, kid, verify }
}

/** At start: a key file that is missing or unusable stops the start with one line, exit 78. */
export function readKeysAtStart(settings: ExternalJwtSettings): IssuerKey[] {
  try {
    return readIssuerKeys(settings.keyFile, settings.algorithms)
  } catch (error) {
    if (!(error instanceof IssuerKeyError)) throw error
    throw new ConfigError(`config error: external_jwt_key_file ${settings.keyFile} ${error.message}`)
  }
}

/**
 * On SIGHUP: the key file again, so an issuer's key rollover needs no restart. A file that can't
 * be used keeps the keys in use and says why; one line either way, for the journal.
 */
export function reloadExternalKeys(issuer: ExternalJwtIssuer, settings: ExternalJwtSettings): string {
  try {
    const keys = readIssuerKeys(settings.keyFile, settings.algorithms)
    issuer.replaceKeys(keys)
    return `external JWT keys reloaded: ${keys.length} from ${settings.keyFile}`
  } catch (error) {
    if (!(error instanceof IssuerKeyError)) throw error
    return `external JWT keys kept: ${settings.keyFile} ${error.message}`
  }
}
