import { describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import {
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
} from '../../src/auth/digest-errors'
import { parseDigestAuthorization, parseSipFrom, type DigestAlgorithm } from '../../src/auth/digest-header'
import { NonceCounts } from '../../src/auth/digest-nonce'
import { DigestVerifier, digestHa1, digestResponse, type DigestRequest } from '../../src/auth/digest'
import { ManualClock } from '../helpers'

/** RFC 7616 §3.9.1. */
const RFC = {
  username: 'Mufasa',
  password: 'Circle of Life',
  realm: 'http-auth@example.org',
  uri: '/dir/index.html',
  method: 'GET',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
  nc: '00000001',
  opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS',
  responses: {
    MD5: '8ca523f5e9506fed4657c9700eebdbec',
    'SHA-256': '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
  } satisfies Record<DigestAlgorithm, string>,
}

/** The RFC's Authorization header for `algorithm`, as its example sends it. */
function rfcHeader(algorithm: DigestAlgorithm): string {
  return (
    `Digest username="${RFC.username}", realm="${RFC.realm}", uri="${RFC.uri}", algorithm=${algorithm}, ` +
    `nonce="${RFC.nonce}", nc=${RFC.nc}, cnonce="${RFC.cnonce}", qop=auth, response="${RFC.responses[algorithm]}", opaque="${RFC.opaque}"`
  )
}

describe('RFC 7616 §3.9.1 vectors', () => {
  for (const algorithm of ['MD5', 'SHA-256'] as const) {
    test(`the ${algorithm} response is computed byte for byte`, () => {
      const ha1 = digestHa1(algorithm, RFC.username, RFC.realm, RFC.password)
      expect(digestResponse(algorithm, ha1, RFC)).toBe(RFC.responses[algorithm])
    })

    test(`the RFC's ${algorithm} header parses to its fields`, () => {
      expect(parseDigestAuthorization(rfcHeader(algorithm))).toEqual({
        username: RFC.username,
        realm: RFC.realm,
        uri: RFC.uri,
        algorithm,
        nonce: RFC.nonce,
        opaque: RFC.opaque,
        cnonce: RFC.cnonce,
        nc: RFC.nc,
        qop: 'auth',
        response: RFC.responses[algorithm],
      })
    })
  }
})

const REALM = 'softphone'
const PASSWORDS: Record<string, string> = { '201': 'pw-201-alice', '202': 'pw-202-bob' }
const ADDRESS = '192.0.2.10'

function setup(options: { maxTrackedNonces?: number } = {}) {
  const clock = new ManualClock()
  const lookups: string[] = []
  const digest = new DigestVerifier({
    realm: REALM,
    key: randomBytes(32),
    clock,
    ha1: (username, realm, algorithm) => {
      lookups.push(`${username} ${realm} ${algorithm}`)
      const password = PASSWORDS[username]
      return password === undefined ? null : digestHa1(algorithm, username, realm, password)
    },
    ...options,
  })
  return { clock, digest, lookups }
}

/** What a client answers to `challenge`, like curl: every field from the challenge, its own cnonce. */
function answer(
  challenge: string,
  overrides: { username?: string; password?: string; uri?: string; nc?: string; method?: string; realm?: string } = {},
): string {
  const field = (name: string) => challenge.match(new RegExp(`${name}="?([^",]+)"?`))![1]!
  const algorithm = field('algorithm') as DigestAlgorithm
  const username = overrides.username ?? '201'
  const realm = overrides.realm ?? field('realm')
  const uri = overrides.uri ?? '/v1/profile?x=1'
  const nc = overrides.nc ?? '00000001'
  const cnonce = 'Y2xpZW50LW5vbmNl'
  const nonce = field('nonce')
  const ha1 = digestHa1(algorithm, username, realm, overrides.password ?? PASSWORDS[username] ?? 'none')
  const response = digestResponse(algorithm, ha1, { method: overrides.method ?? 'GET', uri, nonce, nc, cnonce })
  return `Digest username="${username}", realm="${realm}", uri="${uri}", algorithm=${algorithm}, nonce="${nonce}", nc=${nc}, cnonce="${cnonce}", qop=auth, response="${response}", opaque="${field('opaque')}"`
}

function request(authorization: string, overrides: Partial<DigestRequest> = {}): DigestRequest {
  return { authorization, from: 'sip:201@pbx.example.org', method: 'GET', target: '/v1/profile?x=1', address: ADDRESS, ...overrides }
}

describe('challenges', () => {
  test('one per algorithm, SHA-256 first, each with realm, qop, algorithm, its own nonce and the address\'s opaque', () => {
    const { digest } = setup()
    const [sha256, md5] = digest.challenges(ADDRESS)
    const shape = /^Digest realm="softphone", qop="auth", algorithm=(SHA-256|MD5), nonce="([A-Za-z0-9_-]{64})", opaque="([A-Za-z0-9_-]{32})"$/
    expect(sha256).toMatch(shape)
    expect(md5).toMatch(shape)
    expect(sha256!.match(shape)![1]).toBe('SHA-256')
    expect(md5!.match(shape)![1]).toBe('MD5')
    expect(sha256!.match(shape)![2]).not.toBe(md5!.match(shape)![2])
    expect(sha256!.match(shape)![3]).toBe(md5!.match(shape)![3]!)
    expect(digest.challenges('192.0.2.11')[0]!.match(shape)![3]).not.toBe(sha256!.match(shape)![3]!)
  })

  test('stale=true is added when asked for', () => {
    const { digest } = setup()
    for (const challenge of digest.challenges(ADDRESS, { stale: true })) expect(challenge).toEndWith('", stale=true')
  })
})

describe('verify', () => {
  for (const index of [0, 1]) {
    test(`accepts a correct answer to the ${index === 0 ? 'SHA-256' : 'MD5'} challenge and names the user`, () => {
      const { digest, lookups } = setup()
      const challenge = digest.challenges(ADDRESS)[index]!
      const algorithm = index === 0 ? 'SHA-256' : 'MD5'
      expect(digest.verify(request(answer(challenge)))).toEqual({ username: '201', domain: 'pbx.example.org', algorithm })
      expect(lookups).toEqual([`201 softphone ${algorithm}`])
    })
  }

  test('a wrong password, an unknown user and a wrong method are invalid responses', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    expect(() => digest.verify(request(answer(challenge!, { password: 'wrong-password' })))).toThrow(DigestInvalidResponseError)
    expect(() => digest.verify(request(answer(challenge!, { username: '299' }), { from: 'sip:299@pbx.example.org' }))).toThrow(DigestInvalidResponseError)
    expect(() => digest.verify(request(answer(challenge!), { method: 'POST' }))).toThrow(DigestInvalidResponseError)
  })

  test('a correct answer after the nonce lifetime is stale; one second before, it is accepted', () => {
    const { digest, clock } = setup()
    const [first] = digest.challenges(ADDRESS)
    clock.advance(299)
    expect(digest.verify(request(answer(first!))).username).toBe('201')
    const [second] = digest.challenges(ADDRESS)
    clock.advance(300)
    expect(() => digest.verify(request(answer(second!)))).toThrow(DigestStaleNonceError)
    expect(() => digest.verify(request(answer(second!, { password: 'wrong-password' })))).toThrow(DigestInvalidResponseError)
  })

  test('a nonce or an opaque from another address is invalid', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    expect(() => digest.verify(request(answer(challenge!), { address: '192.0.2.99' }))).toThrow(DigestInvalidNonceError)
    const [other] = digest.challenges('192.0.2.99')
    const opaqueOfOther = other!.match(/opaque="([^"]+)"/)![1]!
    const swapped = answer(challenge!).replace(/opaque="[^"]+"/, `opaque="${opaqueOfOther}"`)
    expect(() => digest.verify(request(swapped))).toThrow(DigestInvalidNonceError)
  })

  test('a nonce from another key, the RFC\'s own, or a tampered one is invalid', () => {
    const { digest } = setup()
    const foreign = setup().digest.challenges(ADDRESS)[0]!
    expect(() => digest.verify(request(answer(foreign)))).toThrow(DigestInvalidNonceError)
    const [challenge] = digest.challenges(ADDRESS)
    const rfcNonce = answer(challenge!).replace(/nonce="[^"]+"/, `nonce="${RFC.nonce}"`)
    expect(() => digest.verify(request(rfcNonce))).toThrow(DigestInvalidNonceError)
    const nonce = challenge!.match(/nonce="([^"]+)"/)![1]!
    const tampered = nonce.slice(0, 10) + (nonce[10] === 'A' ? 'B' : 'A') + nonce.slice(11)
    expect(() => digest.verify(request(answer(challenge!.replace(nonce, tampered))))).toThrow(DigestInvalidNonceError)
  })

  test('the nonce count must strictly increase: the same or a lower count is a replay', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    expect(digest.verify(request(answer(challenge!, { nc: '00000002' }))).username).toBe('201')
    expect(() => digest.verify(request(answer(challenge!, { nc: '00000002' })))).toThrow(DigestReplayError)
    expect(() => digest.verify(request(answer(challenge!, { nc: '00000001' })))).toThrow(DigestReplayError)
    expect(digest.verify(request(answer(challenge!, { nc: '0000000a' }))).username).toBe('201')
    expect(() => digest.verify(request(answer(challenge!, { nc: '00000009' })))).toThrow(DigestReplayError)
  })

  test('a wrong response does not use up a nonce count', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    expect(() => digest.verify(request(answer(challenge!, { nc: '00000005', password: 'wrong-password' })))).toThrow(DigestInvalidResponseError)
    expect(digest.verify(request(answer(challenge!, { nc: '00000001' }))).username).toBe('201')
  })

  test('count 0 is never accepted', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    expect(() => digest.verify(request(answer(challenge!, { nc: '00000000' })))).toThrow(DigestReplayError)
  })

  test('a uri other than the request target as received is its own error', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    for (const target of ['/v1/profile', '/v1/profile?x=2', '/v1/Profile?x=1', '/v1/profile?x=%31']) {
      expect(() => digest.verify(request(answer(challenge!), { target }))).toThrow(DigestUriMismatchError)
    }
  })

  test('username must be the From user; a missing or malformed From is its own error', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    expect(() => digest.verify(request(answer(challenge!), { from: 'sip:202@pbx.example.org' }))).toThrow(DigestUserMismatchError)
    for (const from of [null, undefined, '', '201', 'sip:201', 'sip:@pbx', 'tel:201@pbx', '<sip:201@pbx>', 'sip:201@pbx;tag=1', ' sip:201@pbx', 'sip:201@pbx\r\nX: y', 'sip:2%301@pbx', 'sip:201@-pbx', `sip:${'2'.repeat(600)}@pbx`]) {
      expect(() => digest.verify(request(answer(challenge!), { from }))).toThrow(DigestFromHeaderError)
    }
  })

  test('another realm is its own error', () => {
    const { digest } = setup()
    const [challenge] = digest.challenges(ADDRESS)
    expect(() => digest.verify(request(answer(challenge!, { realm: 'elsewhere' })))).toThrow(DigestRealmMismatchError)
  })

  test('the nonce-count table stays bounded: expired nonces are pruned first, then the oldest live ones become stale', () => {
    const counts = new NonceCounts(300, 10)
    for (let i = 0; i < 10; i++) expect(counts.accept(`old-${i}`, 1000, 1, 1000)).toBe(true)
    expect(counts.accept('new-0', 1400, 1, 1400)).toBe(true)
    expect(counts.size).toBe(1)
    expect(counts.forgotten('old-0', 1000)).toBe(false)
    for (let i = 1; i < 10; i++) counts.accept(`new-${i}`, 1400 + i, 1, 1410)
    expect(counts.accept('newest', 1420, 1, 1420)).toBe(true)
    expect(counts.size).toBe(10)
    expect(counts.forgotten('new-0', 1400)).toBe(true)
    expect(counts.forgotten('new-1', 1401)).toBe(false)
    expect(counts.accept('new-1', 1401, 1, 1420)).toBe(false)
  })

  test('a nonce dropped from a full table is answered as stale, never replayable', () => {
    const { digest } = setup({ maxTrackedNonces: 2 })
    const [first] = digest.challenges(ADDRESS)
    expect(digest.verify(request(answer(first!))).username).toBe('201')
    for (let i = 0; i < 2; i++) digest.verify(request(answer(digest.challenges(ADDRESS)[1]!)))
    expect(() => digest.verify(request(answer(first!, { nc: '00000001' })))).toThrow(DigestStaleNonceError)
  })
})

describe('the Authorization header parser', () => {
  const good = rfcHeader('SHA-256')
  const cases: Array<[string, string, typeof DigestMalformedError | typeof DigestUnsupportedError]> = [
    ['another scheme', good.replace('Digest ', 'Basic '), DigestMalformedError],
    ['no space after the scheme', good.replace('Digest ', 'Digest'), DigestMalformedError],
    ['a repeated parameter', `${good}, nc=00000002`, DigestMalformedError],
    ['a repeated parameter, differently cased', `${good}, NC=00000001`, DigestMalformedError],
    ['username unquoted', good.replace(`username="${RFC.username}"`, `username=${RFC.username}`), DigestMalformedError],
    ['realm unquoted', good.replace(`realm="${RFC.realm}"`, `realm=${RFC.realm}`), DigestMalformedError],
    ['uri unquoted', good.replace(`uri="${RFC.uri}"`, `uri=${RFC.uri}`), DigestMalformedError],
    ['response unquoted', good.replace(/response="(\w+)"/, 'response=$1'), DigestMalformedError],
    ['nonce unquoted', good.replace(/nonce="([^"]+)"/, 'nonce=$1'), DigestMalformedError],
    ['opaque unquoted', good.replace(/opaque="([^"]+)"/, 'opaque=$1'), DigestMalformedError],
    ['cnonce unquoted', good.replace(/cnonce="([^"]+)"/, 'cnonce=$1'), DigestMalformedError],
    ['algorithm quoted', good.replace('algorithm=SHA-256', 'algorithm="SHA-256"'), DigestMalformedError],
    ['qop quoted', good.replace('qop=auth', 'qop="auth"'), DigestMalformedError],
    ['nc quoted', good.replace('nc=00000001', 'nc="00000001"'), DigestMalformedError],
    ['nc of 7 digits', good.replace('nc=00000001', 'nc=0000001'), DigestMalformedError],
    ['nc of 9 digits', good.replace('nc=00000001', 'nc=000000001'), DigestMalformedError],
    ['nc not hex', good.replace('nc=00000001', 'nc=0000000g'), DigestMalformedError],
    ['nc missing', good.replace('nc=00000001, ', ''), DigestMalformedError],
    ['cnonce missing', good.replace(/cnonce="[^"]+", /, ''), DigestMalformedError],
    ['opaque missing', good.replace(/, opaque="[^"]+"/, ''), DigestMalformedError],
    ['qop missing (RFC 2069 style)', good.replace('qop=auth, ', ''), DigestMalformedError],
    ['a response of the wrong length', good.replace(/response="\w+"/, `response="${RFC.responses.MD5}"`), DigestMalformedError],
    ['an unterminated quoted string', good.slice(0, -1), DigestMalformedError],
    ['a trailing comma', `${good},`, DigestMalformedError],
    ['no comma between parameters', good.replace(', qop=auth', ' qop=auth'), DigestMalformedError],
    ['a control character in a quoted string', good.replace(RFC.username, 'Mu\u0001fasa'), DigestMalformedError],
    ['a header over 4 KiB', `${good}, pad="${'x'.repeat(4096)}"`, DigestMalformedError],
    ['a 100 KB header', `${good}, pad="${'x'.repeat(100_000)}"`, DigestMalformedError],
    ['algorithm SHA-512-256', good.replace('algorithm=SHA-256', 'algorithm=SHA-512-256'), DigestUnsupportedError],
    ['algorithm SHA-512', good.replace('algorithm=SHA-256', 'algorithm=SHA-512'), DigestUnsupportedError],
    ['algorithm MD5-sess', good.replace('algorithm=SHA-256', 'algorithm=MD5-sess').replace(/response="\w+"/, `response="${RFC.responses.MD5}"`), DigestUnsupportedError],
    ['algorithm SHA-256-sess', good.replace('algorithm=SHA-256', 'algorithm=SHA-256-sess'), DigestUnsupportedError],
    ['qop auth-int', good.replace('qop=auth', 'qop=auth-int'), DigestUnsupportedError],
    ['userhash=true', `${good}, userhash=true`, DigestUnsupportedError],
    ['username*', `${good}, username*=UTF-8''J%C3%A4s%C3%B8n`, DigestUnsupportedError],
  ]
  for (const [what, header, error] of cases) {
    test(`${what}: ${error.name}`, () => {
      expect(() => parseDigestAuthorization(header)).toThrow(error)
    })
  }

  test('accepts what RFC 7616 allows: any scheme case, quoted-pairs, userhash=false, unknown parameters, no algorithm (MD5), uppercase hex', () => {
    const lenient = rfcHeader('MD5')
      .replace('Digest ', 'DIGEST ')
      .replace('algorithm=MD5, ', '')
      .replace(RFC.responses.MD5, RFC.responses.MD5.toUpperCase())
      .replace(`username="${RFC.username}"`, 'username="Mu\\fa\\"sa"')
    const parsed = parseDigestAuthorization(`${lenient}, userhash=false, domain-hint=x, other="y"`)
    expect(parsed).toMatchObject({ username: 'Mufa"sa', algorithm: 'MD5', response: RFC.responses.MD5 })
  })
})

describe('the From header parser', () => {
  test('takes the user and domain of sip:<user>@<domain>', () => {
    expect(parseSipFrom('sip:201@pbx.example.org')).toEqual({ user: '201', domain: 'pbx.example.org' })
    expect(parseSipFrom('SIP:alice.smith@192.0.2.1:5060')).toEqual({ user: 'alice.smith', domain: '192.0.2.1:5060' })
    expect(parseSipFrom('sip:201@[2001:db8::1]')).toEqual({ user: '201', domain: '[2001:db8::1]' })
  })
})

/**
 * curl against a server that challenges and verifies with this module. Bun joins repeated
 * WWW-Authenticate values into one comma-separated field (only Set-Cookie stays on separate
 * lines); curl 7.88 reads that field as one challenge whose later parameters overwrite earlier
 * ones, so it answers with the last algorithm and nonce: MD5 (README "HTTP Digest").
 */
describe.skipIf(!Bun.which('curl'))('curl --digest', () => {
  async function curlAgainst(offer: (challenges: string[]) => string[]) {
    const { digest } = setup()
    const answered: string[] = []
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req, srv) {
        const address = srv.requestIP(req)!.address
        const authorization = req.headers.get('authorization')
        if (!authorization) {
          const headers = new Headers()
          for (const challenge of offer(digest.challenges(address))) headers.append('WWW-Authenticate', challenge)
          return new Response(null, { status: 401, headers })
        }
        const url = new URL(req.url)
        const identity = digest.verify({ authorization, from: req.headers.get('from'), method: req.method, target: url.pathname + url.search, address })
        answered.push(identity.algorithm)
        return Response.json(identity)
      },
    })
    try {
      const curl = Bun.spawn(['curl', '-s', '--digest', '-u', '201:pw-201-alice', '-H', 'From: sip:201@pbx.example.org', `http://127.0.0.1:${server.port}/v1/profile?x=1`])
      const body = await new Response(curl.stdout).text()
      await curl.exited
      return { body, answered }
    } finally {
      server.stop(true)
    }
  }

  test('offered SHA-256 then MD5 in Bun\'s single field, curl answers the last challenge, MD5, and is verified', async () => {
    const { body, answered } = await curlAgainst((challenges) => challenges)
    expect(JSON.parse(body)).toEqual({ username: '201', domain: 'pbx.example.org', algorithm: 'MD5' })
    expect(answered).toEqual(['MD5'])
  })

  test('offered SHA-256 alone, curl answers with SHA-256 and is verified', async () => {
    const { body } = await curlAgainst((challenges) => challenges.slice(0, 1))
    expect(JSON.parse(body)).toEqual({ username: '201', domain: 'pbx.example.org', algorithm: 'SHA-256' })
  })
})
