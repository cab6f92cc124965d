/**
 * HTTP Digest (RFC 7616) as one credential kind of the access model (README "HTTP Digest"): claims
 * `Authorization: Digest …`, verifies it with digest.ts against the directory's HA1, and offers
 * Digest challenges to a request without credentials whose `From: sip:<user>@<domain>` names a user.
 * Wrong responses count toward the login throttle, as wrong passwords do (README "Login throttling").
 */
import { createHmac } from 'node:crypto'
import type { Clock } from '../clock'
import type { Directory, DirectoryUser } from '../directory/directory'
import type { SecurityLogSink } from '../security-log/security-log'
import type { AttemptOutcome, LoginThrottle } from '../throttle/throttle-rule'
import type { KeyRing } from '../tokens/key-ring'
import { ABSENT, type AuthAttempt, type Authenticator, type AuthFailure, type AuthRefusal, type CredentialKind, type CredentialRequest } from './authenticator'
import { DigestVerifier } from './digest'
import {
  DigestError,
  DigestFromHeaderError,
  DigestInvalidNonceError,
  DigestInvalidResponseError,
  DigestMalformedError,
  DigestRealmMismatchError,
  DigestReplayError,
  DigestStaleNonceError,
  DigestUnsupportedError,
  DigestUriMismatchError,
  DigestUserMismatchError,
} from './digest-errors'
import { isDigestAuthorization, parseDigestAuthorization, parseSipFrom, type DigestCredentials } from './digest-header'

/** The nonce key's label: HMAC(signing key, label), so Digest needs no secret of its own. */
export const NONCE_KEY_LABEL = 'digest-nonce-v1'

/**
 * How each failure is answered (README "HTTP Digest"):
 * - `answer`: 'none' is a 400 without challenges (a new nonce would get the same request again),
 *   'fresh' a 401 with new challenges, 'stale' the same with `stale=true`;
 * - `counts`: spends the login throttle's budget; only a checked response tests a password;
 * - `logged`: an AUTH_FAILED line (fail2ban counts them), for guesses and replays only.
 */
interface FailureRule {
  failure: AuthFailure
  answer: 'none' | 'fresh' | 'stale'
  counts: boolean
  logged: boolean
}

const RULES: ReadonlyArray<[new (...args: never[]) => DigestError, FailureRule]> = [
  [DigestMalformedError, { failure: 'malformed', answer: 'none', counts: false, logged: false }],
  [DigestUnsupportedError, { failure: 'bad_request', answer: 'none', counts: false, logged: false }],
  [DigestFromHeaderError, { failure: 'bad_request', answer: 'none', counts: false, logged: false }],
  [DigestUserMismatchError, { failure: 'bad_request', answer: 'none', counts: false, logged: false }],
  [DigestUriMismatchError, { failure: 'bad_request', answer: 'none', counts: false, logged: false }],
  [DigestRealmMismatchError, { failure: 'invalid', answer: 'fresh', counts: false, logged: false }],
  [DigestInvalidNonceError, { failure: 'invalid', answer: 'fresh', counts: false, logged: false }],
  [DigestStaleNonceError, { failure: 'invalid', answer: 'stale', counts: false, logged: false }],
  [DigestReplayError, { failure: 'invalid', answer: 'fresh', counts: false, logged: true }],
  [DigestInvalidResponseError, { failure: 'invalid', answer: 'fresh', counts: true, logged: true }],
]

export interface DigestAuthenticatorDeps {
  /** `digest_realm`. */
  realm: string
  /** The token signing keys: the nonce key derives from the current one. */
  keys: Pick<KeyRing, 'signing'>
  clock: Clock
  directory: Directory
  throttle: Pick<LoginThrottle, 'begin' | 'finish'>
  securityLog: SecurityLogSink
}

interface DigestRefusal {
  attempt: AuthAttempt
  counts: boolean
  /** What the security log says, or null when the rule logs nothing. */
  logged: string | null
}

export class DigestAuthenticator implements Authenticator {
  readonly kinds: readonly CredentialKind[] = ['digest']
  private readonly verifier: DigestVerifier
  /** The signing key's id the nonce key was derived from; undefined is the legacy key. */
  private keyId: string | undefined

  constructor(private readonly deps: DigestAuthenticatorDeps) {
    const signing = deps.keys.signing()
    this.keyId = signing.kid
    const { directory } = deps
    this.verifier = new DigestVerifier({
      realm: deps.realm,
      key: nonceKey(signing.key),
      clock: deps.clock,
      ha1: (username, realm, algorithm) => directory.digestHa1?.(username, realm, algorithm) ?? null,
    })
  }

  /** Absent at once; a Digest credential is judged asynchronously, since the throttle may be in Redis. */
  authenticate(request: CredentialRequest): AuthAttempt | Promise<AuthAttempt> {
    const authorization = request.headers.get('authorization')
    if (authorization === null || !isDigestAuthorization(authorization)) return ABSENT
    return this.judge(request, authorization)
  }

  private async judge(request: CredentialRequest, authorization: string): Promise<AuthAttempt> {
    this.followKeyRotation()
    let credentials: DigestCredentials
    try {
      credentials = parseDigestAuthorization(authorization)
    } catch (error) {
      return this.logged(this.refused(error, request), request, null)
    }
    // Before any HA1 work, as a password login checks before any hashing.
    const ip = request.clientIp()
    const admission = await this.deps.throttle.begin(credentials.username, ip)
    if (!admission.allowed) {
      this.log(request, 'LOGIN_THROTTLED', credentials.username, `retry after ${admission.retryAfter}s`)
      return { kind: 'failed', failure: 'throttled', reason: 'too many failures', retryAfter: admission.retryAfter }
    }
    let outcome: AttemptOutcome = 'uncounted'
    let result: AuthAttempt | DigestRefusal
    try {
      const user = this.verified(credentials, request, ip)
      outcome = 'success'
      result = { kind: 'ok', principal: { user, via: 'digest', credential: authorization } }
    } catch (error) {
      const refusal = this.refused(error, request)
      if (refusal.counts) outcome = 'failure'
      result = refusal
    } finally {
      await this.deps.throttle.finish(credentials.username, ip, outcome)
    }
    // Logged only once the failure is counted: one that can't be is a 503, not a refusal.
    return 'kind' in result ? result : this.logged(result, request, credentials.username)
  }

  /** The user whose response this is; throws a DigestError otherwise. */
  private verified(credentials: DigestCredentials, request: CredentialRequest, ip: string): DirectoryUser {
    this.verifier.verifyCredentials(credentials, { from: request.headers.get('from'), method: request.method, target: request.target, address: ip })
    const user = this.deps.directory.findByUsername(credentials.username)
    // An HA1 answered, but the user went between the two lookups.
    if (!user || user.disabled) throw new DigestInvalidResponseError('no such user')
    return user
  }

  /** Digest challenges for a request that names its user in `From: sip:<user>@<domain>`; otherwise the Bearer 401. */
  challengeWhenMissing(request: CredentialRequest): AuthRefusal | null {
    try {
      parseSipFrom(request.headers.get('from'))
    } catch (error) {
      if (error instanceof DigestFromHeaderError) return null
      throw error
    }
    this.followKeyRotation()
    return { failure: 'missing', reason: 'no credentials', challenges: this.verifier.challenges(request.clientIp()) }
  }

  /**
   * The refusal for a DigestError, with whether it spends the throttle's budget. Any other error
   * (a store outage) is not about the request: it goes on to the app's handler.
   */
  private refused(error: unknown, request: CredentialRequest): DigestRefusal {
    const rule = error instanceof DigestError ? RULES.find(([type]) => error instanceof type)?.[1] : undefined
    if (!rule) throw error
    const challenges = rule.answer === 'none' ? [] : this.verifier.challenges(request.clientIp(), { stale: rule.answer === 'stale' })
    const attempt = { kind: 'failed', failure: rule.failure, reason: (error as DigestError).name, challenges } as const
    return { attempt, counts: rule.counts, logged: rule.logged ? (error as DigestError).message : null }
  }

  private logged(refusal: DigestRefusal, request: CredentialRequest, username: string | null): AuthAttempt {
    if (refusal.logged !== null) this.log(request, 'AUTH_FAILED', username, refusal.logged)
    return refusal.attempt
  }

  private log(request: CredentialRequest, event: 'AUTH_FAILED' | 'LOGIN_THROTTLED', username: string | null, reason: string): void {
    const ua = (request.headers.get('user-agent') ?? '').slice(0, 200)
    const client = request.client?.() ?? { ip: request.clientIp() }
    this.deps.securityLog.record({ event, ...(username !== null && { user: username }), ...client, method: 'digest', reason, ua })
  }

  /** A rotation read by the key-ring watch takes effect at the next Digest request or challenge. */
  private followKeyRotation(): void {
    const signing = this.deps.keys.signing()
    if (signing.kid === this.keyId) return
    this.keyId = signing.kid
    this.verifier.rotateKey(nonceKey(signing.key))
  }
}

export function nonceKey(signingKey: Uint8Array): Buffer {
  return createHmac('sha256', signingKey).update(NONCE_KEY_LABEL).digest()
}
