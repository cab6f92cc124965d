/**
 * An external JWT issuer for tests (README "External tokens"): key pairs made here for RS256,
 * ES256 and EdDSA, a harness that accepts them, and raw signing of any header and payload text so
 * the attack battery can forge what jose would refuse to produce.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { SignJWT } from 'jose'
import type { AuthAttempt } from '../src/auth/authenticator'
import type { ExternalIssuer } from '../src/auth/bearer-authenticator'
import { ExternalJwtIssuer, type ExternalJwtSettings } from '../src/auth/external-jwt'
import { parseIssuerKeys, type ExternalAlgorithm } from '../src/auth/external-jwt-keys'
import { createHarness, type Harness, type HarnessOptions } from './helpers'

export const ISSUER = 'https://idp.example.test/realms/pbx'
export const AUDIENCE = 'softphone-backend'

export interface KeyPair {
  publicKey: KeyObject
  privateKey: KeyObject
  pem: string
}

export function keyPair(algorithm: ExternalAlgorithm): KeyPair {
  const pair =
    algorithm === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : algorithm === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('ed25519')
  return { ...pair, pem: pair.publicKey.export({ type: 'spki', format: 'pem' }) as string }
}

export const ALGORITHMS: readonly ExternalAlgorithm[] = ['RS256', 'ES256', 'EdDSA']

export const settingsFor = (extra: Partial<ExternalJwtSettings> = {}): ExternalJwtSettings => ({
  issuer: ISSUER,
  audience: AUDIENCE,
  keyFile: '/unused/in/unit/tests',
  algorithms: ALGORITHMS,
  userClaim: 'sub',
  clockTolerance: 30,
  ...extra,
})

export interface ExternalGround {
  h: Harness
  pairs: Record<ExternalAlgorithm, KeyPair>
  issuer: ExternalJwtIssuer
  /** How many tokens reached the issuer's authenticate(), i.e. its verification. */
  calls: { authenticate: number }
  /** A correct token for `claims` over the defaults, signed by jose (the oracle). */
  token(algorithm: ExternalAlgorithm, claims?: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>
  /** The claims of a valid token for user 201 at the harness's clock. */
  claims(extra?: Record<string, unknown>): Record<string, unknown>
}

/** A harness whose issuer trusts one fresh key per algorithm, with users 201 and (disabled) 203. */
export async function externalGround(extra: Partial<ExternalJwtSettings> = {}, options: HarnessOptions = {}): Promise<ExternalGround> {
  const pairs = { RS256: keyPair('RS256'), ES256: keyPair('ES256'), EdDSA: keyPair('EdDSA') }
  const keys = parseIssuerKeys(Object.values(pairs).map((pair) => pair.pem).join('\n'))
  const calls = { authenticate: 0 }
  let issuer!: ExternalJwtIssuer
  const h = await createHarness({
    ...options,
    externalIssuer: (directory, clock) => {
      issuer = new ExternalJwtIssuer(settingsFor(extra), keys, directory, clock)
      return counting(issuer, calls)
    },
  })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
  await h.directory.add({ username: '203', password: 'secret-203', displayName: 'Carol', role: 'user', mobile: '' })
  h.directory.setDisabled('203', true)
  const claims = (more: Record<string, unknown> = {}) => ({ iss: ISSUER, aud: AUDIENCE, sub: '201', iat: h.clock.seconds, exp: h.clock.seconds + 300, ...more })
  return {
    h,
    pairs,
    issuer,
    calls,
    claims,
    token: (algorithm, more = {}, header = {}) => new SignJWT(claims(more)).setProtectedHeader({ alg: algorithm, typ: 'JWT', ...header }).sign(pairs[algorithm].privateKey),
  }
}

function counting(issuer: ExternalIssuer, calls: { authenticate: number }): ExternalIssuer {
  return {
    issued: (token) => issuer.issued(token),
    authenticate: (token): AuthAttempt | Promise<AuthAttempt> => {
      calls.authenticate++
      return issuer.authenticate(token)
    },
  }
}

export const encode = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** Signs header and payload (objects or raw JSON text) as `algorithm` would, whatever the header says. */
export function signAs(algorithm: ExternalAlgorithm, privateKey: KeyObject, header: unknown, payload: unknown): string {
  const input = `${encode(header)}.${encode(payload)}`
  const data = Buffer.from(input)
  const signature =
    algorithm === 'RS256'
      ? sign('sha256', data, privateKey)
      : algorithm === 'ES256'
        ? sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : sign(null, data, privateKey)
  return `${input}.${signature.toString('base64url')}`
}
