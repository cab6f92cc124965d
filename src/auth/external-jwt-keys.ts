/**
 * An external issuer's public keys, read from `external_jwt_key_file` (README "External tokens"):
 * PEM public keys or certificates, or a JWKS JSON document. Each key is bound to the one algorithm
 * its type allows, so a token's `alg` can only pick among keys made for it; symmetric and private
 * keys are refused, and nothing is ever fetched (RFC 8725 §3.1, §3.10).
 */
import { createPublicKey, type KeyObject, type webcrypto } from 'node:crypto'
import { readFileSync } from 'node:fs'

export const EXTERNAL_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const
export type ExternalAlgorithm = (typeof EXTERNAL_ALGORITHMS)[number]

/** NIST SP 800-131A: RSA below 2048 bits is too weak to sign with. */
const MIN_RSA_BITS = 2048
/** More keys than an issuer publishes at once during a rollover: a bound on the work per token. */
const MAX_KEYS = 32
const MAX_KEY_FILE_BYTES = 1024 * 1024

export interface IssuerKey {
  algorithm: ExternalAlgorithm
  key: KeyObject
  /** The JWK's `kid`; PEM keys have none. */
  kid?: string
}

export class IssuerKeyError extends Error {
  override name = 'IssuerKeyError'
}

/** The first HMAC algorithm of a configured list, or null: refused at config load. */
export function hmacAlgorithmIn(names: readonly string[]): string | null {
  return names.find((name) => /^HS/i.test(name)) ?? null
}

/** Reads and checks the key file; throws IssuerKeyError with a one-line reason. */
export function readIssuerKeys(path: string, algorithms: readonly ExternalAlgorithm[]): IssuerKey[] {
  const keys = parseIssuerKeys(readKeyFile(path)).filter((key) => algorithms.includes(key.algorithm))
  if (keys.length === 0) throw new IssuerKeyError(`holds no key for ${algorithms.join(', ')}`)
  if (keys.length > MAX_KEYS) throw new IssuerKeyError(`holds more than ${MAX_KEYS} keys`)
  return keys
}

function readKeyFile(path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    throw new IssuerKeyError(code === 'ENOENT' ? 'does not exist' : `is unreadable (${code ?? 'error'})`)
  }
  if (text.length > MAX_KEY_FILE_BYTES) throw new IssuerKeyError('is larger than 1 MiB')
  return text
}

/** Every key of a PEM or JWKS text, whatever its algorithm; throws IssuerKeyError. */
export function parseIssuerKeys(text: string): IssuerKey[] {
  return text.trimStart().startsWith('{') ? parseJwks(text) : parsePem(text)
}

/** The JWK members read here (RFC 7517 §4); node:crypto reads the key material itself. */
interface Jwk {
  kty?: unknown
  use?: unknown
  alg?: unknown
  kid?: unknown
  d?: unknown
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g

function parsePem(text: string): IssuerKey[] {
  const blocks = [...text.matchAll(PEM_BLOCK)]
  if (blocks.length === 0) throw new IssuerKeyError('is neither PEM nor JWKS JSON')
  return blocks.map(([block, label]) => {
    if (/PRIVATE/.test(label!)) throw new IssuerKeyError('holds a private key: give the issuer\'s public key only')
    if (label !== 'PUBLIC KEY' && label !== 'CERTIFICATE' && label !== 'RSA PUBLIC KEY') throw new IssuerKeyError(`holds a PEM "${label}" block, not a public key`)
    const key = importKey(() => createPublicKey(block))
    return { algorithm: algorithmOf(key), key }
  })
}

function parseJwks(text: string): IssuerKey[] {
  let document: unknown
  try {
    document = JSON.parse(text)
  } catch {
    throw new IssuerKeyError('is not valid JSON')
  }
  const keys = (document as { keys?: unknown }).keys
  if (!Array.isArray(keys)) throw new IssuerKeyError('is JSON without a "keys" array (JWKS, RFC 7517 §5)')
  return keys.filter((jwk) => (jwk as Jwk).use !== 'enc').map((jwk) => jwkKey(jwk as Jwk))
}

function jwkKey(jwk: Jwk): IssuerKey {
  if (typeof jwk !== 'object' || jwk === null) throw new IssuerKeyError('has a JWKS entry that is not an object')
  if (jwk.kty === 'oct') throw new IssuerKeyError('holds a symmetric (oct) key: an issuer\'s key must be public')
  if ('d' in jwk) throw new IssuerKeyError('holds a private key: give the issuer\'s public key only')
  const key = importKey(() => createPublicKey({ key: jwk as webcrypto.JsonWebKey, format: 'jwk' }))
  const algorithm = algorithmOf(key)
  if (jwk.alg !== undefined && jwk.alg !== algorithm) throw new IssuerKeyError(`has a ${algorithm} key marked "alg": ${JSON.stringify(jwk.alg)}`)
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') throw new IssuerKeyError('has a "kid" that is not a string')
  return jwk.kid === undefined ? { algorithm, key } : { algorithm, key, kid: jwk.kid }
}

function importKey(create: () => KeyObject): KeyObject {
  try {
    return create()
  } catch (error) {
    throw new IssuerKeyError(`holds a key that can't be read (${(error as Error).message})`)
  }
}

/** The one algorithm a public key signs with here: RSA 2048+ RS256, P-256 ES256, Ed25519 EdDSA. */
function algorithmOf(key: KeyObject): ExternalAlgorithm {
  const type = key.asymmetricKeyType
  if (type === 'rsa') {
    if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) throw new IssuerKeyError(`holds an RSA key under ${MIN_RSA_BITS} bits`)
    return 'RS256'
  }
  if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256'
  if (type === 'ed25519') return 'EdDSA'
  const curve = key.asymmetricKeyDetails?.namedCurve
  throw new IssuerKeyError(`holds a ${type}${curve ? ` ${curve}` : ''} key; only RSA, EC P-256 and Ed25519 are accepted`)
}
