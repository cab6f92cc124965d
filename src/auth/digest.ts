/**
 * HTTP Digest access authentication (RFC 7616) with MD5 and SHA-256, `qop=auth` only
 * (README "HTTP Digest"). Independent of HTTP: the caller passes what the request carried and maps
 * each DigestError (digest-errors.ts) to its answer, with `challenges()` on every 401; the access
 * model's side is digest-authenticator.ts.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { unixSeconds, type Clock } from '../clock'
import {
  DigestInvalidResponseError,
  DigestRealmMismatchError,
  DigestReplayError,
  DigestStaleNonceError,
  DigestUriMismatchError,
  DigestUserMismatchError,
} from './digest-errors'
import { DIGEST_ALGORITHMS, parseDigestAuthorization, parseSipFrom, type DigestAlgorithm, type DigestCredentials } from './digest-header'
import { DEFAULT_NONCE_LIFETIME_SECONDS, DigestNonces, NonceCounts } from './digest-nonce'

export type { DigestAlgorithm } from './digest-header'

/** `digest_realm`'s default: a fixed name, since changing the realm invalidates every stored HA1. */
export const DEFAULT_DIGEST_REALM = 'softphone'

/** The directory's answer: the user's HA1 for that realm and algorithm as lowercase hex, or null (unknown, disabled, none stored). */
export type Ha1Lookup = (username: string, realm: string, algorithm: DigestAlgorithm) => string | null

const NODE_HASH: Record<DigestAlgorithm, string> = { 'SHA-256': 'sha256', MD5: 'md5' }

/** H(data) of RFC 7616 §3.4.2: lowercase hex of the hash of the UTF-8 bytes. */
export function digestHash(algorithm: DigestAlgorithm, data: string): string {
  return createHash(NODE_HASH[algorithm]).update(data, 'utf8').digest('hex')
}

/** HA1 = H(username ":" realm ":" password), what a directory stores or derives (RFC 7616 §3.4.2). */
export function digestHa1(algorithm: DigestAlgorithm, username: string, realm: string, password: string): string {
  return digestHash(algorithm, `${username}:${realm}:${password}`)
}

/** response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" H(method ":" uri)), RFC 7616 §3.4.1 with qop=auth. */
export function digestResponse(
  algorithm: DigestAlgorithm,
  ha1: string,
  fields: { method: string; uri: string; nonce: string; nc: string; cnonce: string },
): string {
  const ha2 = digestHash(algorithm, `${fields.method}:${fields.uri}`)
  return digestHash(algorithm, `${ha1}:${fields.nonce}:${fields.nc}:${fields.cnonce}:auth:${ha2}`)
}

/** What a Digest request carried; `address` is the client address as the access guard resolves it. */
export interface DigestRequest {
  authorization: string
  from: string | null | undefined
  method: string
  /** Path and query exactly as received. */
  target: string
  address: string
}

export interface DigestIdentity {
  username: string
  domain: string
  algorithm: DigestAlgorithm
}

export interface DigestOptions {
  realm: string
  /** At least 32 random bytes; nonces and opaques from another key are invalid. */
  key: Uint8Array
  clock: Clock
  ha1: Ha1Lookup
  nonceLifetimeSeconds?: number
  maxTrackedNonces?: number
}

export class DigestVerifier {
  readonly realm: string
  private readonly nonces: DigestNonces
  private readonly counts: NonceCounts
  private readonly clock: Clock
  private readonly lookup: Ha1Lookup
  /** Compared against for users without an HA1, so they cost the same as a wrong response. */
  private readonly dummyHa1 = randomBytes(32).toString('hex')

  constructor(options: DigestOptions) {
    const lifetime = options.nonceLifetimeSeconds ?? DEFAULT_NONCE_LIFETIME_SECONDS
    this.realm = options.realm
    this.clock = options.clock
    this.lookup = options.ha1
    this.nonces = new DigestNonces(options.key, options.clock, lifetime)
    this.counts = new NonceCounts(lifetime, options.maxTrackedNonces)
  }

  /**
   * `WWW-Authenticate` values, SHA-256 first: RFC 7616 §3.7 has clients use the first challenge
   * they support, in order of the server's preference. Each carries its own nonce.
   */
  challenges(address: string, options: { stale?: boolean } = {}): string[] {
    const opaque = this.nonces.opaque(address)
    const stale = options.stale ? ', stale=true' : ''
    return DIGEST_ALGORITHMS.map(
      (algorithm) => `Digest realm="${this.realm}", qop="auth", algorithm=${algorithm}, nonce="${this.nonces.issue(address)}", opaque="${opaque}"${stale}`,
    )
  }

  /**
   * A new nonce key, after the signing key rotated: nonces of the one before are still recognised
   * for a correct response, and answered as stale (README "HTTP Digest").
   */
  rotateKey(key: Uint8Array): void {
    this.nonces.rotate(key)
  }

  verify(request: DigestRequest): DigestIdentity {
    return this.verifyCredentials(parseDigestAuthorization(request.authorization), request)
  }

  /**
   * For credentials already parsed (the caller throttles by their username first). The checks run
   * cheapest and least revealing first; the nonce count is recorded only for a correct response,
   * so wrong guesses can't use up a client's counts.
   */
  verifyCredentials(credentials: DigestCredentials, request: Omit<DigestRequest, 'authorization'>): DigestIdentity {
    const from = parseSipFrom(request.from)
    if (credentials.username !== from.user) throw new DigestUserMismatchError('username is not the From user')
    if (credentials.realm !== this.realm) throw new DigestRealmMismatchError('another realm')
    if (credentials.uri !== request.target) throw new DigestUriMismatchError('uri is not the request target')
    const nonce = this.nonces.check(credentials.nonce, credentials.opaque, request.address)
    this.checkResponse(credentials, request.method)
    if (nonce.expired || this.counts.forgotten(credentials.nonce, nonce.issuedAt)) throw new DigestStaleNonceError('nonce expired')
    const count = Number.parseInt(credentials.nc, 16)
    if (!this.counts.accept(credentials.nonce, nonce.issuedAt, count, unixSeconds(this.clock))) throw new DigestReplayError('nonce count reused')
    return { username: credentials.username, domain: from.domain, algorithm: credentials.algorithm }
  }

  private checkResponse(credentials: DigestCredentials, method: string): void {
    const stored = this.lookup(credentials.username, credentials.realm, credentials.algorithm)
    const expected = digestResponse(credentials.algorithm, stored ?? this.dummyHa1, { method, ...credentials })
    const matches = timingSafeEqual(Buffer.from(expected, 'latin1'), Buffer.from(credentials.response, 'latin1'))
    if (stored === null || !matches) throw new DigestInvalidResponseError('wrong response')
  }
}
