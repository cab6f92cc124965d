/**
 * The attack battery on the external issuer's path (README "External tokens"): algorithm
 * confusion, header parameters that name keys, malleated signatures and serialisations, huge
 * tokens, and claims of the wrong type. Every place a token is checked must refuse each.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import { ExternalJwtIssuer } from '../../../src/auth/external-jwt'
import { parseIssuerKeys } from '../../../src/auth/external-jwt-keys'
import { ALGORITHMS, AUDIENCE, encode, externalGround, ISSUER, keyPair, settingsFor, signAs, type ExternalGround } from '../../external-jwt-fixture'
import { BASE, bearer, createHarness } from '../../helpers'
import { expectRefused } from './battery'

let ground: ExternalGround
let listener: ReturnType<typeof Bun.serve>
let hits = 0
beforeAll(async () => {
  ground = await externalGround()
  // A key server an attacker would love us to consult: it must never be contacted.
  listener = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => (hits++, Response.json({ keys: [] })) })
})
afterAll(() => {
  listener.stop(true)
  ground.h.close()
})

const refused = (token: string, label = '') => expectRefused(ground.h, token, label)
const profileStatus = async (token: string) => (await ground.h.request(`${BASE}/profile`, { headers: bearer(token) })).status
/** A correct signature by the issuer's key of `algorithm` over whatever header and payload. */
const signed = (algorithm: (typeof ALGORITHMS)[number], header: unknown, payload: unknown = ground.claims()) => signAs(algorithm, ground.pairs[algorithm].privateKey, header, payload)

test('control: a token signed raw, as forged below, is accepted for each algorithm', async () => {
  for (const algorithm of ALGORITHMS) expect(await profileStatus(signed(algorithm, { alg: algorithm, typ: 'JWT' }))).toBe(200)
})

describe('the algorithm', () => {
  test('HS256 HMAC-signed with the issuer\'s public key (PEM text, DER, JWK) never reaches the issuer', async () => {
    const before = ground.calls.authenticate
    for (const algorithm of ALGORITHMS) {
      const { publicKey, pem } = ground.pairs[algorithm]
      for (const secret of [pem, pem.trim(), publicKey.export({ type: 'spki', format: 'der' }), JSON.stringify(publicKey.export({ format: 'jwk' }))]) {
        for (const [alg, hash] of [['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']] as const) {
          const input = `${encode({ alg, typ: 'JWT' })}.${encode(ground.claims())}`
          await refused(`${input}.${createHmac(hash, secret).update(input).digest('base64url')}`, `${alg} over ${algorithm} key`)
        }
      }
    }
    expect(ground.calls.authenticate).toBe(before)
  })

  test('an allowed alg in the header over an HMAC made with the public key', async () => {
    for (const algorithm of ALGORITHMS) {
      const input = `${encode({ alg: algorithm, typ: 'JWT' })}.${encode(ground.claims())}`
      await refused(`${input}.${createHmac('sha256', ground.pairs[algorithm].pem).update(input).digest('base64url')}`, algorithm)
    }
  })

  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    test(`alg ${alg}, without and with a signature, never reaches the issuer`, async () => {
      const before = ground.calls.authenticate
      await refused(`${encode({ alg, typ: 'JWT' })}.${encode(ground.claims())}.`, alg)
      await refused(`${encode({ alg, typ: 'JWT' })}.${encode(ground.claims())}.${signed('RS256', { alg: 'RS256' }).split('.')[2]}`, alg)
      expect(ground.calls.authenticate).toBe(before)
    })
  }

  test('an algorithm the issuer is not allowed, or spelled otherwise, over a real signature', async () => {
    for (const alg of ['PS256', 'RS384', 'RS512', 'ES384', 'ES256K', 'Ed25519', 'rs256', 'RS256 ', 'HS256']) {
      await refused(signed('RS256', { alg, typ: 'JWT' }), alg)
      await refused(signed('EdDSA', { alg, typ: 'JWT' }), alg)
    }
  })

  test('one key\'s signature under another algorithm\'s name', async () => {
    await refused(signed('ES256', { alg: 'RS256', typ: 'JWT' }), 'ES256 as RS256')
    await refused(signed('RS256', { alg: 'ES256', typ: 'JWT' }), 'RS256 as ES256')
    await refused(signed('EdDSA', { alg: 'ES256', typ: 'JWT' }), 'EdDSA as ES256')
  })

  test('an issuer allowed RS256 only refuses ES256 and EdDSA tokens signed by keys it was never given', async () => {
    const narrow = await externalGround({ algorithms: ['RS256'] })
    try {
      for (const algorithm of ['ES256', 'EdDSA'] as const) await expectRefused(narrow.h, await narrow.token(algorithm), algorithm)
      expect((await narrow.h.request(`${BASE}/profile`, { headers: bearer(await narrow.token('RS256')) })).status).toBe(200)
    } finally {
      narrow.h.close()
    }
  })
})

describe('header parameters that name keys', () => {
  test('jku, x5u, jwk and x5c naming an attacker\'s key: refused, nothing fetched', async () => {
    const attacker = keyPair('RS256')
    const url = `http://127.0.0.1:${listener.port}/keys`
    const jwk = attacker.publicKey.export({ format: 'jwk' })
    for (const extra of [{ jku: url }, { x5u: url }, { jwk }, { x5c: ['MIIB'] }, { jku: url, kid: 'attacker' }]) {
      await refused(signAs('RS256', attacker.privateKey, { alg: 'RS256', typ: 'JWT', ...extra }, ground.claims()), Object.keys(extra).join())
    }
    await Bun.sleep(50)
    expect(hits).toBe(0)
  })

  test('the same parameters on a token the issuer signed are ignored, and nothing is fetched', async () => {
    const url = `http://127.0.0.1:${listener.port}/keys`
    const jwk = keyPair('ES256').publicKey.export({ format: 'jwk' })
    for (const extra of [{ jku: url }, { x5u: url }, { jwk }]) {
      expect(await profileStatus(await ground.token('ES256', {}, extra))).toBe(200)
    }
    await Bun.sleep(50)
    expect(hits).toBe(0)
  })

  test('a kid never locates a key: paths, URLs, other types', async () => {
    const attacker = keyPair('ES256')
    for (const kid of ['../../../dev/null', '/etc/passwd', `http://127.0.0.1:${listener.port}/k`, '', 'x'.repeat(500)]) {
      await refused(signAs('ES256', attacker.privateKey, { alg: 'ES256', typ: 'JWT', kid }, ground.claims()), `kid=${kid.slice(0, 20)}`)
    }
    for (const kid of [7, null, ['a'], { a: 1 }]) await refused(signed('ES256', { alg: 'ES256', typ: 'JWT', kid }), `kid ${JSON.stringify(kid)}`)
  })

  test('crit and b64 are refused even when the issuer signed them', async () => {
    for (const extra of [{ crit: ['exp'] }, { crit: ['x-unknown'], 'x-unknown': 1 }, { crit: [] }, { b64: true }, { b64: false, crit: ['b64'] }]) {
      await refused(signed('EdDSA', { alg: 'EdDSA', typ: 'JWT', ...extra }), JSON.stringify(extra))
    }
  })

  test('a typ of another kind of JWS', async () => {
    for (const typ of ['JWE', 'dpop+jwt', 'logout+jwt', 7]) await refused(signed('ES256', { alg: 'ES256', typ }), String(typ))
  })
})

describe('a JWKS with kids', () => {
  test('a kid picks among the file\'s keys only; an unknown kid is refused', async () => {
    const [first, second] = [keyPair('ES256'), keyPair('ES256')]
    const jwks = JSON.stringify({ keys: [{ ...first.publicKey.export({ format: 'jwk' }), kid: 'one' }, { ...second.publicKey.export({ format: 'jwk' }), kid: 'two' }] })
    const h = await createHarness({
      externalIssuer: (directory, clock) => new ExternalJwtIssuer(settingsFor(), parseIssuerKeys(jwks), directory, clock),
    })
    try {
      await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
      const claims = { iss: ISSUER, aud: AUDIENCE, sub: '201', exp: h.clock.seconds + 300 }
      const status = async (token: string) => (await h.request(`${BASE}/profile`, { headers: bearer(token) })).status
      expect(await status(signAs('ES256', second.privateKey, { alg: 'ES256', kid: 'two' }, claims))).toBe(200)
      expect(await status(signAs('ES256', second.privateKey, { alg: 'ES256' }, claims))).toBe(200)
      await expectRefused(h, signAs('ES256', second.privateKey, { alg: 'ES256', kid: 'one' }, claims), 'kid of the other key')
      await expectRefused(h, signAs('ES256', second.privateKey, { alg: 'ES256', kid: 'three' }, claims), 'unknown kid')
    } finally {
      h.close()
    }
  })
})

describe('malleated signatures and serialisations', () => {
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const sibling = (segment: string) => `${segment.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(segment.at(-1)!) ^ 1]}`

  for (const algorithm of ALGORITHMS) {
    test(`${algorithm}: truncated, extended, zeroed, sibling-spelled, padded or borrowed signatures`, async () => {
      const token = signed(algorithm, { alg: algorithm, typ: 'JWT' })
      const [header, payload, signature] = token.split('.') as [string, string, string]
      const other = signed(algorithm, { alg: algorithm, typ: 'JWT' }, ground.claims({ sub: '202' })).split('.')[2]!
      for (const forged of [signature.slice(0, -2), `${signature}AA`, 'A'.repeat(signature.length), sibling(signature), `${signature}=`, '', other]) {
        await refused(`${header}.${payload}.${forged}`, `${algorithm} ${forged.slice(0, 12)}`)
      }
      await refused(`${sibling(header)}.${payload}.${signature}`, 'sibling header')
    })
  }

  test('ES256 as a DER signature instead of r||s', async () => {
    const { sign } = await import('node:crypto')
    const input = `${encode({ alg: 'ES256', typ: 'JWT' })}.${encode(ground.claims())}`
    await refused(`${input}.${sign('sha256', Buffer.from(input), ground.pairs.ES256.privateKey).toString('base64url')}`)
  })

  test('ES256 (r, n−s), the twin ECDSA allows, is the same claims for the same user and nothing more', async () => {
    // Issuers don't normalise s, so refusing the twin would refuse half of their tokens; the only
    // thing keyed by token text here is the verified cache, which the twin merely occupies twice.
    const token = signed('ES256', { alg: 'ES256', typ: 'JWT' })
    const [header, payload, signature] = token.split('.') as [string, string, string]
    const bytes = Buffer.from(signature, 'base64url')
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551')
    const twinS = (n - BigInt(`0x${bytes.subarray(32).toString('hex')}`)).toString(16).padStart(64, '0')
    const twin = `${header}.${payload}.${Buffer.concat([bytes.subarray(0, 32), Buffer.from(twinS, 'hex')]).toString('base64url')}`
    const response = await ground.h.request(`${BASE}/profile`, { headers: bearer(twin) })
    expect(response.status).toBe(200)
    expect((await response.json()).user.username).toBe('201')
  })

  test('2, 4 and 5 segments; JSON serialisation', async () => {
    const token = signed('RS256', { alg: 'RS256', typ: 'JWT' })
    const [header, payload, signature] = token.split('.') as [string, string, string]
    for (const forged of [`${header}.${payload}`, `${token}.${signature}`, `${token}.${signature}.${signature}`, `${header}..${signature}`]) await refused(forged)
    await refused(JSON.stringify({ payload, signatures: [{ protected: header, signature }] }))
  })

  test('a non-canonical payload spelling, signed by the issuer', async () => {
    let pad = ''
    while (encode(ground.claims({ pad })).length % 4 === 0) pad += 'x'
    const payload = sibling(encode(ground.claims({ pad })))
    const { sign } = await import('node:crypto')
    const input = `${encode({ alg: 'EdDSA', typ: 'JWT' })}.${payload}`
    await refused(`${input}.${sign(null, Buffer.from(input), ground.pairs.EdDSA.privateKey).toString('base64url')}`)
  })

  test('duplicate claims or header parameters, signed by the issuer', async () => {
    // JSON.parse keeps the last of two, other parsers the first: here the last would pass.
    const claims = (extra: Record<string, unknown>) => JSON.stringify(ground.claims(extra)).slice(0, -1)
    await refused(signed('RS256', { alg: 'RS256', typ: 'JWT' }, `${claims({ sub: '999' })},"sub":"201"}`), 'sub twice')
    await refused(signed('RS256', { alg: 'RS256', typ: 'JWT' }, `${claims({ aud: 'other' })},"aud":"${AUDIENCE}"}`), 'aud twice')
    await refused(signed('RS256', '{"alg":"none","alg":"RS256"}'), 'alg twice')
  })

  test('invalid UTF-8 or a non-object, signed by the issuer', async () => {
    const bad = Buffer.from([0x7b, 0x22, 0x61, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]).toString()
    await refused(signed('ES256', { alg: 'ES256' }, bad), 'bad utf-8')
    for (const payload of ['[1]', '"text"', 'null', '42']) await refused(signed('ES256', { alg: 'ES256' }, payload), payload)
  })
})

describe('huge tokens', () => {
  test('a huge header or payload signed by the issuer never reaches its verification', async () => {
    const before = ground.calls.authenticate
    await refused(signed('RS256', { alg: 'RS256', typ: 'JWT', kid: 'k'.repeat(9000) }), 'huge kid')
    expect(ground.calls.authenticate).toBe(before)
    await refused(signed('RS256', { alg: 'RS256', typ: 'JWT' }, ground.claims({ pad: 'x'.repeat(9000) })), 'huge payload')
    await refused(signed('RS256', { alg: 'RS256', typ: 'JWT' }, ground.claims({ sub: '2'.repeat(65) })), 'huge user claim')
  })
})

describe('claims of the wrong type, signed by the issuer', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['exp string', { exp: String(Date.UTC(2030, 0) / 1000) }],
    ['exp null', { exp: null }],
    ['exp true', { exp: true }],
    ['exp huge exponent', { exp: '1e400' }],
    ['nbf string', { nbf: 'now' }],
    ['iat string', { iat: '0' }],
    ['iss list', { iss: [ISSUER] }],
    ['iss other case', { iss: ISSUER.toUpperCase() }],
    ['aud number', { aud: 7 }],
    ['aud object', { aud: { aud: AUDIENCE } }],
    ['sub number', { sub: 201 }],
    ['sub empty', { sub: '' }],
    ['sub list', { sub: ['201'] }],
    ['sub object', { sub: { username: '201' } }],
    ['sub another user', { sub: '999' }],
  ]
  for (const [label, extra] of cases) {
    test(label, async () => refused(signed('ES256', { alg: 'ES256', typ: 'JWT' }, ground.claims(extra)), label))
  }

  test('a token that expires while cached is refused from then on', async () => {
    const token = signed('EdDSA', { alg: 'EdDSA', typ: 'JWT' }, ground.claims({ exp: ground.h.clock.seconds + 60 }))
    expect(await profileStatus(token)).toBe(200)
    ground.h.clock.advance(90)
    await refused(token)
    ground.h.clock.advance(-90)
  })
})
