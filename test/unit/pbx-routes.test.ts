/** `peers`, `peers/<ext>`, `registry` and health's `ami` (README "Live PBX state"), read from a fake state cache. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import * as v from 'valibot'
import { PbxFileError } from '../../src/directory/mikopbx-file'
import { OUTAGE_MEMORY_SECONDS } from '../../src/health/store-status'
import { VERSION } from '../../src/version'
import { mergedPeers, type Provider } from '../../src/pbx/peer-state'
import { betterState, userStateOfDevice } from '../../src/pbx/device-state'
import { PeerContactsResponse, PeersResponse, RegistryResponse } from '../../src/pbx/pbx-schemas'
import { BASE, bearer, createHarness, type Harness } from '../helpers'
import { contact, FakePbxState } from '../pbx-fake'

const pbx = new FakePbxState()
let providers: Provider[] = []
let providersFail = false
let h: Harness
let userToken: string
let adminToken: string

beforeAll(async () => {
  h = await createHarness({
    pbx,
    providers: {
      list: () => {
        if (providersFail) throw new PbxFileError('locked', 'SQLITE_BUSY')
        return providers
      },
    },
  })
  const add = (username: string, role: 'user' | 'admin', displayName: string) =>
    h.directory.add({ username, password: `secret-${username}`, displayName, role, mobile: '' })
  await add('201', 'user', 'Alice')
  await add('202', 'user', 'Bob')
  await add('203', 'user', 'Carol')
  await add('900', 'admin', 'Admin')
  h.directory.setDisabled('203', true)
  userToken = (await h.login('201', 'secret-201')).access_token
  adminToken = (await h.login('900', 'secret-900')).access_token
  pbx
    .endpoint('201', 'Not in use', [contact('201', 'sip:201@192.0.2.10:5060')])
    .endpoint('201-WS', 'In use', [contact('201-WS', 'sip:201-ws@192.0.2.11:443;transport=ws', { RoundtripUsec: 'N/A', RegExpire: '0' })])
    .endpoint('202', 'Unavailable', [contact('202', '', { Status: 'Unknown' })])
    .endpoint('203', 'Not in use')
    .endpoint('999', 'Ringing')
    .endpoint('anonymous', 'Unavailable')
    .endpoint('SIP-1700000000', 'Not in use')
    .registration('REG-SIP-1700000000', 'Registered', 'sip:sip.provider.test:5060', 'sip:account-1@sip.provider.test')
})
afterAll(() => h.close())

const get = (path: string, token?: string) => h.request(`${BASE}${path}`, { headers: token ? bearer(token) : {} })

describe('peers', () => {
  test('every extension the directory knows, -WS folded in, raw and mapped state, with freshness', async () => {
    const response = await get('/peers', userToken)
    expect(response.status).toBe(200)
    const body = await response.json()
    expect(body).toEqual({
      success: true,
      ami: 'up',
      stale: false,
      peers: [
        // 201-WS is in a call: the busier device speaks for 201.
        { extension: '201', display_name: 'Alice', state: 'Up', device_state: 'In use', registered: true },
        { extension: '202', display_name: 'Bob', state: 'Unavailable', device_state: 'Unavailable', registered: false },
      ],
    })
    expect(v.is(PeersResponse, body)).toBe(true)
  })

  test('says when AMI is down and the state may be old', async () => {
    pbx.ami = 'down'
    pbx.stale = true
    try {
      expect(await (await get('/peers', userToken)).json()).toMatchObject({ ami: 'down', stale: true })
    } finally {
      pbx.ami = 'up'
      pbx.stale = false
    }
  })

  test('without an access token → 401 with the Bearer challenge', async () => {
    const response = await get('/peers')
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    expect((await response.json()).error).toBe('Unauthorized. Token required')
  })
})

describe('the -WS merge', () => {
  test('picks the same device as users-state does, for every pair of device states', () => {
    const texts = ['Not in use', 'In use', 'Busy', 'Ringing', 'Ring+Inuse', 'On Hold', 'Unavailable', 'Unknown']
    for (const plain of texts) {
      for (const webrtc of texts) {
        const [peer] = mergedPeers([
          { name: '201', deviceState: plain, contacts: [] },
          { name: '201-WS', deviceState: webrtc, contacts: [] },
        ])
        expect({ plain, webrtc, state: peer!.state }).toEqual({ plain, webrtc, state: betterState(userStateOfDevice(plain), userStateOfDevice(webrtc)) })
      }
    }
    // Ringing beats a call on the other device, as in users-state: the incoming call shows.
    expect(mergedPeers([{ name: '201', deviceState: 'Ringing', contacts: [] }, { name: '201-WS', deviceState: 'In use', contacts: [] }])[0]).toMatchObject({ state: 'Ringing', deviceState: 'Ringing' })
  })
})

describe('peers/<ext>', () => {
  test("the extension's contacts with an address, the WebRTC twin's first", async () => {
    const response = await get('/peers/201', userToken)
    expect(response.status).toBe(200)
    const body = await response.json()
    expect(body).toEqual({
      success: true,
      ami: 'up',
      stale: false,
      extension: '201',
      contacts: [
        { endpoint: '201-WS', uri: 'sip:201-ws@192.0.2.11:443;transport=ws', user_agent: 'TestPhone/2.0', status: 'Reachable', rtt_usec: null, expires: null },
        { endpoint: '201', uri: 'sip:201@192.0.2.10:5060', user_agent: 'TestPhone/2.0', status: 'Reachable', rtt_usec: 12345, expires: 1795435800 },
      ],
    })
    expect(v.is(PeerContactsResponse, body)).toBe(true)
  })

  test('a known extension without contacts → an empty list', async () => {
    expect(await (await get('/peers/202', userToken)).json()).toMatchObject({ extension: '202', contacts: [] })
  })

  test('unknown, disabled, -WS, provider and anonymous names → 404 envelope', async () => {
    for (const name of ['999', '203', '201-WS', 'SIP-1700000000', 'anonymous', '0201']) {
      const response = await get(`/peers/${name}`, userToken)
      expect(response.status).toBe(404)
      expect(await response.json()).toEqual({ success: false, error: 'Not found', code: 'not_found', message: 'Not found', timestamp: h.clock.seconds })
    }
  })

  test('path tricks → 400 or 404 JSON, never 500', async () => {
    for (const path of ['/peers/%2e%2e%2fprofile', '/peers/..%2F201', '/peers/201%00', '/peers/%', '/peers/201/extra', `/peers/${'9'.repeat(5000)}`, '/peers/%C0%AE']) {
      const response = await get(path, userToken)
      expect([400, 404]).toContain(response.status)
      expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
      expect((await response.json()).success).toBe(false)
    }
  })
})

describe('registry', () => {
  test('a user → 403 insufficient_scope', async () => {
    const response = await get('/registry', userToken)
    expect(response.status).toBe(403)
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="insufficient_scope"')
    expect(await response.json()).toEqual({
      success: false,
      error: 'Administrator role required',
      code: 'insufficient_scope',
      message: 'Administrator role required',
      timestamp: h.clock.seconds,
    })
  })

  test('an admin: registrations, then disabled and inbound/none providers', async () => {
    providers = [
      { uniqid: 'SIP-1700000000', disabled: false, host: 'sip.provider.test', username: 'account-1', registrationType: 'outbound' },
      { uniqid: 'SIP-1', disabled: true, host: 'old.test', username: 'old', registrationType: 'outbound' },
      { uniqid: 'SIP-2', disabled: false, host: 'in.test', username: 'in', registrationType: 'inbound' },
    ]
    try {
      const response = await get('/registry', adminToken)
      expect(response.status).toBe(200)
      const body = await response.json()
      expect(body).toEqual({
        success: true,
        ami: 'up',
        stale: false,
        providers: [
          { id: 'SIP-1700000000', state: 'REGISTERED', host: 'sip.provider.test', username: 'account-1' },
          { id: 'SIP-1', state: 'OFF', host: 'old.test', username: 'old' },
          { id: 'SIP-2', state: 'UNKNOWN', host: 'in.test', username: 'in' },
        ],
      })
      expect(v.is(RegistryResponse, body)).toBe(true)
    } finally {
      providers = []
    }
  })

  test("MikoPBX's database locked → 503, never 500", async () => {
    providersFail = true
    try {
      const response = await get('/registry', adminToken)
      expect(response.status).toBe(503)
      expect(response.headers.get('retry-after')).toBe('1')
    } finally {
      providersFail = false
    }
  })
})

describe('health', () => {
  test("carries the AMI link's state after the legacy fields", async () => {
    // The registry test above met MikoPBX's locked database; health reports it for a minute.
    h.clock.advance(OUTAGE_MEMORY_SECONDS)
    for (const state of ['up', 'down'] as const) {
      pbx.ami = state
      const text = await (await h.request(`${BASE}/health`)).text()
      expect(text).toBe(`{"success":true,"status":"ok","timestamp":${h.clock.seconds},"ami":"${state}","version":"${VERSION}","db":"ok","store":"ok"}`)
    }
    pbx.ami = 'up'
  })
})

test('without a state cache (AMI off): empty lists, ami "off"', async () => {
  const bare = await createHarness()
  try {
    await bare.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
    const { access_token } = await bare.login()
    const headers = bearer(access_token)
    expect(await (await bare.request(`${BASE}/peers`, { headers })).json()).toEqual({ success: true, ami: 'off', stale: false, peers: [] })
    expect(await (await bare.request(`${BASE}/peers/201`, { headers })).json()).toEqual({ success: true, ami: 'off', stale: false, extension: '201', contacts: [] })
  } finally {
    bare.close()
  }
})
