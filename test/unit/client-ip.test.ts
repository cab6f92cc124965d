/** Client addresses: one canonical IP literal per host, X-Real-IP only from trusted proxies (addresses or CIDR ranges). */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { addressMatcher, canonicalIp, clientIp, clientIpResolver, parseRange } from '../../src/http/client-ip'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

describe('canonicalIp', () => {
  test('writes every spelling of one host the same way', () => {
    for (const [text, canonical] of [
      ['192.0.2.1', '192.0.2.1'],
      ['::1', '::1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['2001:0db8::0001', '2001:db8::1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
      ['::ffff:192.0.2.1', '192.0.2.1'],
      ['::FFFF:c000:0201', '192.0.2.1'],
      ['0:0:0:0:0:ffff:c000:201', '192.0.2.1'],
      ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
      ['::', '::'],
    ]) {
      expect([text, canonicalIp(text!)]).toEqual([text, canonical])
    }
  })

  test('is the same for any padding, case and compression of an IPv6 address, and stable', () => {
    const groups = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
    fc.assert(
      fc.property(groups, fc.boolean(), fc.boolean(), (words, pad, upper) => {
        let full = words.map((word) => word.toString(16).padStart(pad ? 4 : 1, '0')).join(':')
        if (upper) full = full.toUpperCase()
        const canonical = canonicalIp(full)!
        expect(canonical).toBe(canonicalIp(words.map((word) => word.toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::'))!)
        expect(canonicalIp(canonical)).toBe(canonical)
        expect(canonical).toBe(canonical.toLowerCase())
      }),
      { numRuns: 2_000, seed: 5952 },
    )
  })

  test('refuses anything but one address literal', () => {
    for (const text of [
      '',
      'garbage',
      'garbage, 10.88.117.31',
      '10.88.117.31, 10.88.117.31',
      ' 10.0.0.1',
      '10.0.0.1 ',
      '010.0.0.1',
      '10.0.0',
      '10.0.0.256',
      '0x7f.0.0.1',
      '1.2.3.4:80',
      '[::1]',
      '::1/128',
      'fe80::1%eth0',
      '1::2::3',
      'localhost',
    ]) {
      expect([text, canonicalIp(text)]).toEqual([text, null])
    }
  })
})

describe('trusted proxy ranges', () => {
  test('addresses and CIDR ranges, IPv4 and IPv6', () => {
    const trusted = addressMatcher(['10.0.0.0/8', 'fd00::/8', '192.0.2.1', '2001:db8::1', '198.51.100.7/31'])
    for (const address of ['10.0.0.0', '10.255.255.255', 'fd00::1', 'fdff:ffff::1', '192.0.2.1', '2001:db8::1', '198.51.100.6', '198.51.100.7']) {
      expect([address, trusted(address)]).toEqual([address, true])
    }
    for (const address of ['9.255.255.255', '11.0.0.0', 'fc00::1', 'fe00::', '192.0.2.2', '2001:db8::2', '198.51.100.8', 'garbage', '']) {
      expect([address, trusted(address)]).toEqual([address, false])
    }
    expect(addressMatcher(['0.0.0.0/0'])('203.0.113.1')).toBe(true)
    expect(addressMatcher(['0.0.0.0/0'])('2001:db8::1')).toBe(false)
    expect(addressMatcher(['::/0'])('2001:db8::1')).toBe(true)
  })

  test('a range is an address, optionally with a prefix length that fits its family', () => {
    expect(parseRange('10.0.0.0/8')).toEqual({ base: '10.0.0.0', prefix: 8, family: 'ipv4' })
    expect(parseRange('FD00::/8')).toEqual({ base: 'fd00::', prefix: 8, family: 'ipv6' })
    expect(parseRange('::ffff:127.0.0.1')).toEqual({ base: '127.0.0.1', prefix: 32, family: 'ipv4' })
    expect(parseRange('::1')).toEqual({ base: '::1', prefix: 128, family: 'ipv6' })
    for (const entry of ['10.0.0.0/33', 'fd00::/129', '10.0.0.0/', '10.0.0.0/08', '10.0.0.0/-1', '10.0.0.0/8/8', '/8', 'nginx', 'fe80::1%eth0/64', '']) {
      expect([entry, parseRange(entry)]).toEqual([entry, null])
    }
  })
})

describe('clientIp', () => {
  const trusted = addressMatcher(['127.0.0.1', '::1', '10.0.0.0/8'])

  test('is the peer unless the peer is a trusted proxy', () => {
    expect(clientIp('203.0.113.9', '10.0.0.1', trusted)).toEqual({ ip: '203.0.113.9' })
    expect(clientIp('127.0.0.1', '203.0.113.9', trusted)).toEqual({ ip: '203.0.113.9' })
    expect(clientIp('::ffff:127.0.0.1', '203.0.113.9', trusted)).toEqual({ ip: '203.0.113.9' })
    expect(clientIp('::ffff:10.1.2.3', '203.0.113.9', trusted)).toEqual({ ip: '203.0.113.9' })
    expect(clientIp('::1', null, trusted)).toEqual({ ip: '::1' })
    expect(clientIp('::ffff:203.0.113.9', null, trusted)).toEqual({ ip: '203.0.113.9' })
    expect(clientIp(undefined, '1.2.3.4', trusted)).toEqual({ ip: 'unknown' })
  })

  test('a trusted X-Real-IP is canonical; one that is no single address gives the peer and a note', () => {
    expect(clientIp('127.0.0.1', '2001:DB8:0::1', trusted)).toEqual({ ip: '2001:db8::1' })
    expect(clientIp('127.0.0.1', '::ffff:198.51.100.1', trusted)).toEqual({ ip: '198.51.100.1' })
    for (const realIp of ['garbage', 'garbage, 10.88.117.31', '', 'fe80::1%eth0']) {
      expect(clientIp('10.9.9.9', realIp, trusted)).toEqual({ ip: '10.9.9.9', ipNote: 'invalid X-Real-IP' })
    }
    // From an untrusted peer the header means nothing, valid or not.
    expect(clientIp('203.0.113.9', 'garbage', trusted)).toEqual({ ip: '203.0.113.9' })
  })

  test('two X-Real-IP fields are no single address', () => {
    const resolve = clientIpResolver(['10.0.0.0/8'], () => '10.0.0.2')
    const headers = new Headers()
    headers.append('x-real-ip', 'garbage')
    headers.append('x-real-ip', '10.88.117.31')
    expect(resolve(new Request('http://localhost/', { headers }))).toEqual({ ip: '10.0.0.2', ipNote: 'invalid X-Real-IP' })
    expect(resolve(new Request('http://localhost/', { headers: { 'x-real-ip': '10.88.117.31' } }))).toEqual({ ip: '10.88.117.31' })
  })
})

describe('in the routes', () => {
  let h: Harness
  beforeAll(async () => {
    h = await createHarness({ throttle: { accountFreeFailures: 3, ipFreeFailures: 100, maxDelay: 60 } })
    await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
    await h.directory.add({ username: '202', password: 'secret-202', displayName: '', role: 'user', mobile: '' })
    await h.directory.add({ username: '203', password: 'secret-203', displayName: '', role: 'user', mobile: '' })
    await h.directory.add({ username: '204', password: 'secret-204', displayName: '', role: 'user', mobile: '' })
  })
  afterAll(() => h.close())

  const login = (username: string, password: string, realIp: string) =>
    h.json(`${BASE}/auth/login`, { username, password }, { headers: { 'x-real-ip': realIp } })

  test('every security event of a request with a bad X-Real-IP has the peer and a note, never the value', async () => {
    const headers = { 'x-real-ip': 'garbage-canary' }
    const events: Array<{ event: string; ip: unknown; ip_note: unknown }> = []
    const last = () => {
      const line = h.logLines().at(-1)!
      events.push({ event: String(line.event), ip: line.ip, ip_note: line.ip_note })
    }
    await login('202', 'wrong', 'garbage-canary')
    last()
    const success = await login('202', 'secret-202', 'garbage-canary')
    last()
    const { access_token, refresh_token } = await success.json()
    await h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: { ...bearer(refresh_token), ...headers } })
    last()
    await h.request(`${BASE}/check-media-access`, { headers })
    last()
    const { access_token: other } = await h.login('202', 'secret-202')
    await h.request(`${BASE}/auth/logout-all`, { method: 'POST', headers: { ...bearer(other), ...headers } })
    last()
    expect((await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: { ...bearer(access_token), ...headers } })).status).toBe(401)
    const note = { ip: '127.0.0.1', ip_note: 'invalid X-Real-IP' }
    expect(events).toEqual(['AUTH_FAILED', 'AUTH_SUCCESS', 'TOKEN_REFRESH', 'MEDIA_ACCESS_DENIED', 'SESSION_REVOKED'].map((event) => ({ event, ...note })))
    const line = JSON.stringify(h.logLines().find((entry) => entry.event === 'AUTH_FAILED' && entry.ip_note))
    expect(line.indexOf('"ip_note"')).toBe(line.indexOf('"ip"') + '"ip":"127.0.0.1",'.length)
    expect(JSON.stringify(h.logLines())).not.toContain('canary')
  })

  test('a logout with a bad X-Real-IP is noted too', async () => {
    const { access_token } = await h.login('204', 'secret-204')
    await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: { ...bearer(access_token), 'x-real-ip': 'nonsense' } })
    expect(h.logLines().at(-1)).toMatchObject({ event: 'LOGOUT', ip: '127.0.0.1', ip_note: 'invalid X-Real-IP' })
  })

  test('distinct invalid X-Real-IP values all count against the proxy, not as new addresses', async () => {
    const statuses = []
    for (let i = 0; i < 5; i++) statuses.push((await login('201', 'wrong', `garbage-${i}`)).status)
    expect(statuses).toEqual([401, 401, 401, 401, 429])
  })

  test('spellings of one IPv6 host are one throttle key and one logged address', async () => {
    const spellings = ['2001:DB8::7', '2001:db8:0:0:0:0:0:7', '2001:0db8::0007', '2001:db8::7']
    const statuses = []
    for (const spelling of spellings) statuses.push((await login('203', 'wrong', spelling)).status)
    statuses.push((await login('203', 'secret-203', '2001:db8::0:7')).status)
    expect(statuses).toEqual([401, 401, 401, 401, 429])
    const addresses = h.logLines().filter((line) => line.user === '203').map((line) => line.ip)
    expect(new Set(addresses)).toEqual(new Set(['2001:db8::7']))
  })
})
