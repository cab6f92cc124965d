/** `/metrics` and `health` (README "Metrics"): who may read them, what they say after real requests, and the deep check. */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { EventLoopLag } from '../../src/metrics/event-loop-lag'
import { CounterFamily, exposition, EXPOSITION_CONTENT_TYPE, HistogramFamily } from '../../src/metrics/exposition'
import { VERSION } from '../../src/version'
import { BASE, bearer, createHarness, type Harness, type HarnessOptions } from '../helpers'
import { FakePbxState } from '../pbx-fake'

let h: Harness
async function start(options: HarnessOptions = {}) {
  h = await createHarness(options)
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
}
afterEach(() => h.close())

const scrape = async (): Promise<string> => {
  const response = await h.request('/metrics')
  expect(response.status).toBe(200)
  return response.text()
}
/** The value of one exact series line, or undefined when the series is absent. */
const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}
const route = (path: string) => `route="${BASE}${path}"`

describe('who may read /metrics', () => {
  beforeEach(() => start())

  test('loopback peers without proxy headers, IPv4, IPv6 and IPv4-mapped', async () => {
    for (const peer of ['127.0.0.1', '127.3.2.1', '::1', '::ffff:127.0.0.1']) {
      const response = await h.request('/metrics', { peer })
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe(EXPOSITION_CONTENT_TYPE)
      expect(await response.text()).toContain('# TYPE softphone_http_requests_total counter')
    }
  })

  test('another peer, or anything nginx forwarded, gets the 403 envelope', async () => {
    const refusals: Array<RequestInit & { peer: string }> = [
      { peer: '10.0.0.1' },
      { peer: '::ffff:192.0.2.1' },
      { peer: '127.0.0.1', headers: { 'x-real-ip': '203.0.113.9' } },
      { peer: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.1' } },
      { peer: '127.0.0.1', headers: { forwarded: 'for=127.0.0.1' } },
    ]
    for (const init of refusals) {
      const response = await h.request('/metrics', init)
      expect(response.status).toBe(403)
      expect(await response.json()).toEqual({
        success: false,
        error: 'Metrics are served to the local host only',
        code: 'metrics_forbidden',
        message: 'Metrics are served to the local host only',
        timestamp: h.clock.seconds,
      })
    }
  })

  test('never under the base path', async () => {
    expect((await h.request(`${BASE}/metrics`)).status).toBe(404)
  })
})

test('with metrics_port set, the main listener answers 404 for /metrics', async () => {
  await start({ metricsOnMainListener: false })
  const response = await h.request('/metrics')
  expect(response.status).toBe(404)
  expect((await response.json()).code).toBe('not_found')
})

describe('what /metrics says', () => {
  test('requests by route pattern and status, never the raw path; latency histograms for the timed routes', async () => {
    await start()
    const { access_token } = await h.login()
    await h.request(`${BASE}/check-media-access`, { headers: bearer(access_token) })
    await h.request(`${BASE}/check-media-access`, { headers: bearer(access_token) })
    await h.request(`${BASE}/check-media-access`, { headers: bearer('not-a-token') })
    await h.request(`${BASE}/no/such/route-4711`)
    await h.request(`${BASE}/health`, { method: 'DELETE' })
    await h.request(`${BASE}/sub/users-state`, { headers: { accept: 'text/event-stream' } })
    const text = await scrape()
    expect(sample(text, `softphone_http_requests_total{${route('/auth/login')},status="200"}`)).toBe(1)
    expect(sample(text, `softphone_http_requests_total{${route('/check-media-access')},status="200"}`)).toBe(2)
    expect(sample(text, `softphone_http_requests_total{${route('/check-media-access')},status="401"}`)).toBe(1)
    expect(sample(text, `softphone_http_requests_total{${route('/sub/:channel')},status="401"}`)).toBe(1)
    expect(sample(text, 'softphone_http_requests_total{route="unmatched",status="404"}')).toBe(1)
    expect(sample(text, 'softphone_http_requests_total{route="unmatched",status="405"}')).toBe(1)
    expect(text).not.toContain('4711')
    expect(text).toContain('# TYPE softphone_http_request_duration_seconds histogram')
    expect(sample(text, `softphone_http_request_duration_seconds_count{${route('/check-media-access')}}`)).toBe(3)
    expect(sample(text, `softphone_http_request_duration_seconds_bucket{${route('/check-media-access')},le="+Inf"}`)).toBe(3)
    expect(sample(text, `softphone_http_request_duration_seconds_count{${route('/auth/login')}}`)).toBe(1)
    expect(sample(text, `softphone_http_request_duration_seconds_count{${route('/auth/refresh')}}`)).toBe(0)
    expect(sample(text, `softphone_http_request_duration_seconds_count{${route('/health')}}`)).toBeUndefined()
  })

  test('logins by outcome, delayed keys, active sessions and revoked ids', async () => {
    await start()
    const { access_token } = await h.login()
    const bad = () => h.json(`${BASE}/auth/login`, { username: '201', password: 'wrong' })
    // Five free failures, a sixth that starts the delay (README "Login throttling"), then 429.
    for (let i = 0; i < 6; i++) expect((await bad()).status).toBe(401)
    expect((await bad()).status).toBe(429)
    let text = await scrape()
    expect(sample(text, 'softphone_logins_total{outcome="ok"}')).toBe(1)
    expect(sample(text, 'softphone_logins_total{outcome="invalid"}')).toBe(6)
    expect(sample(text, 'softphone_logins_total{outcome="throttled"}')).toBe(1)
    expect(sample(text, 'softphone_logins_total{outcome="busy"}')).toBe(0)
    expect(sample(text, 'softphone_login_delayed_keys')).toBe(1)
    expect(sample(text, 'softphone_sessions_active')).toBe(1)
    expect(sample(text, 'softphone_revoked_token_ids')).toBe(0)
    expect((await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access_token) })).status).toBe(200)
    text = await scrape()
    expect(sample(text, 'softphone_sessions_active')).toBe(0)
    expect(sample(text, 'softphone_revoked_token_ids')).toBe(1)
  })

  test('store outages by kind, from the 503s the error handler gives', async () => {
    await start()
    const { access_token } = await h.login()
    h.db.run('PRAGMA query_only = ON')
    expect((await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access_token) })).status).toBe(503)
    h.db.run('PRAGMA query_only = OFF')
    const text = await scrape()
    expect(sample(text, 'softphone_store_errors_total{kind="unavailable"}')).toBe(1)
    expect(sample(text, 'softphone_store_errors_total{kind="busy"}')).toBe(0)
    expect(sample(text, `softphone_http_requests_total{${route('/auth/logout')},status="503"}`)).toBe(1)
  })

  test('presence: subscribers by channel and transport, messages published and dropped', async () => {
    await start()
    const { access_token } = await h.login()
    const stream = await h.request(`${BASE}/sub/extra-news?token=${access_token}`, { headers: { accept: 'text/event-stream' } })
    expect(stream.status).toBe(200)
    let text = await scrape()
    expect(sample(text, 'softphone_presence_subscribers{channel="extra-news",transport="eventsource"}')).toBe(1)
    expect(sample(text, 'softphone_presence_subscribers{channel="extra-news",transport="websocket"}')).toBe(0)
    expect(sample(text, 'softphone_presence_subscribers{channel="contacts",transport="longpoll"}')).toBe(0)
    const poll = h.request(`${BASE}/sub/contacts?authorization=${access_token}`)
    expect(sample(await scrape(), 'softphone_presence_subscribers{channel="contacts",transport="longpoll"}')).toBe(1)
    expect((await h.json(`${BASE}/pub/contacts`, { n: 0 })).status).toBe(200)
    expect((await poll).status).toBe(200)
    expect(sample(await scrape(), 'softphone_presence_subscribers{channel="contacts",transport="longpoll"}')).toBe(0)
    // Nobody reads the stream: past its queue limit (256 unread messages) the subscriber is dropped.
    const publish = () => h.json(`${BASE}/pub/extra-news`, { n: 1 })
    for (let i = 0; i < 300; i++) expect((await publish()).status).toBe(200)
    text = await scrape()
    expect(sample(text, 'softphone_presence_messages_published_total{channel="extra-news"}')).toBe(300)
    expect(sample(text, 'softphone_presence_messages_dropped_total{channel="extra-news"}')).toBe(1)
    expect(sample(text, 'softphone_presence_subscribers{channel="extra-news",transport="eventsource"}')).toBe(0)
    expect(sample(text, 'softphone_presence_messages_published_total{channel="contacts"}')).toBe(1)
  })

  test('AMI state as 1 up, 0 down, -1 off, and the events received', async () => {
    await start()
    expect(sample(await scrape(), 'softphone_ami_up')).toBe(-1)
    h.close()
    const pbx = Object.assign(new FakePbxState(), { counters: { eventsReceived: 42 } })
    await start({ pbx })
    expect(sample(await scrape(), 'softphone_ami_up')).toBe(1)
    expect(sample(await scrape(), 'softphone_ami_events_received_total')).toBe(42)
    pbx.ami = 'down'
    expect(sample(await scrape(), 'softphone_ami_up')).toBe(0)
  })

  test('a gauge whose source fails is left out; the rest is served', async () => {
    await start()
    h.db.close()
    const text = await scrape()
    expect(text).toContain('# TYPE softphone_sessions_active gauge\n# HELP softphone_revoked_token_ids')
    expect(sample(text, 'softphone_sessions_active')).toBeUndefined()
    expect(sample(text, 'softphone_revoked_token_ids')).toBe(0)
  })

  test('process RSS and event-loop lag', async () => {
    await start()
    h.eventLoopLag.seconds = 0.25
    const text = await scrape()
    expect(sample(text, 'softphone_process_resident_memory_bytes')).toBeGreaterThan(1024 * 1024)
    expect(sample(text, 'softphone_event_loop_lag_seconds')).toBe(0.25)
  })
})

describe('health', () => {
  test('the legacy fields, then ami, version, the database and the shared store', async () => {
    await start()
    const text = await (await h.request(`${BASE}/health`)).text()
    expect(text).toBe(`{"success":true,"status":"ok","timestamp":${h.clock.seconds},"ami":"off","version":"${VERSION}","db":"ok","store":"ok"}`)
  })

  test('a degraded shared store (Redis unreachable) makes status "degraded" and stays 200: tokens are still verified from memory', async () => {
    let store: 'ok' | 'degraded' = 'degraded'
    await start({ storeHealth: () => store })
    const response = await h.request(`${BASE}/health`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ success: true, status: 'degraded', timestamp: h.clock.seconds, ami: 'off', version: VERSION, db: 'ok', store: 'degraded' })
    store = 'ok'
    expect(await (await h.request(`${BASE}/health`)).json()).toMatchObject({ status: 'ok', store: 'ok' })
  })

  test('deep=1 with readable stores but a degraded shared store: 200 "degraded"', async () => {
    await start({ storeHealth: () => 'degraded', deepChecks: [{ name: 'db', run: () => {} }] })
    const response = await h.request(`${BASE}/health?deep=1`)
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ success: true, status: 'degraded', db: 'ok', store: 'degraded', checks: { db: 'ok' } })
  })

  test('db is "error" for a minute after a request met a store outage, and "ok" again after a deep check reads it', async () => {
    await start()
    const { access_token } = await h.login()
    h.db.run('PRAGMA query_only = ON')
    expect((await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access_token) })).status).toBe(503)
    h.db.run('PRAGMA query_only = OFF')
    const health = async (query = '') => (await h.request(`${BASE}/health${query}`)).json()
    expect(await health()).toMatchObject({ success: true, status: 'ok', db: 'error' })
    h.clock.advance(59)
    expect((await health()).db).toBe('error')
    h.clock.advance(1)
    expect((await health()).db).toBe('ok')
    h.db.run('PRAGMA query_only = ON')
    expect((await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access_token) })).status).toBe(503)
    h.db.run('PRAGMA query_only = OFF')
    expect(await health('?deep=1')).toMatchObject({ status: 'ok', db: 'ok', checks: { db: 'ok' } })
    expect((await health()).db).toBe('ok')
  })

  test('deep=1 reads every store: all readable is 200 "ok"', async () => {
    await start({ deepChecks: [{ name: 'db', run: () => {} }, { name: 'mikopbx', run: () => {} }] })
    const response = await h.request(`${BASE}/health?deep=1`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      success: true,
      status: 'ok',
      timestamp: h.clock.seconds,
      ami: 'off',
      version: VERSION,
      db: 'ok',
      store: 'ok',
      checks: { db: 'ok', mikopbx: 'ok' },
    })
  })

  test('deep=1 with a store that fails to read: 503 "degraded", each check reported', async () => {
    const broken = () => {
      throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_READ' })
    }
    await start({ deepChecks: [{ name: 'db', run: broken }, { name: 'mikopbx', run: () => {} }] })
    const response = await h.request(`${BASE}/health?deep=1`)
    expect(response.status).toBe(503)
    expect(await response.json()).toMatchObject({ success: false, status: 'degraded', db: 'error', checks: { db: 'error', mikopbx: 'ok' } })
  })

  test('deep=1 on a closed database: 503, and the shallow health stays 200', async () => {
    await start()
    h.db.close()
    expect((await h.request(`${BASE}/health?deep=1`)).status).toBe(503)
    expect((await h.request(`${BASE}/health`)).status).toBe(200)
  })

  test('deep=1 is for the local host: another peer or a proxied request gets 403', async () => {
    await start()
    const refusals: Array<RequestInit & { peer: string }> = [{ peer: '192.0.2.7' }, { peer: '127.0.0.1', headers: { 'x-real-ip': '192.0.2.7' } }]
    for (const init of refusals) {
      const response = await h.request(`${BASE}/health?deep=1`, init)
      expect(response.status).toBe(403)
      expect((await response.json()).code).toBe('deep_health_forbidden')
    }
  })
})

describe('the exposition writer', () => {
  test('escapes label values and adds up histogram buckets', () => {
    const counter = new CounterFamily('c_total', 'A counter.')
    counter.series({ path: 'a"b\\c\nd' }).inc(2)
    const histogram = new HistogramFamily('h_seconds', 'A histogram.', [0.1, 1])
    const series = histogram.series({ route: 'r' })
    for (const value of [0.05, 0.5, 0.7, 3]) series.observe(value)
    expect(exposition([counter, histogram])).toBe(
      [
        '# HELP c_total A counter.',
        '# TYPE c_total counter',
        'c_total{path="a\\"b\\\\c\\nd"} 2',
        '# HELP h_seconds A histogram.',
        '# TYPE h_seconds histogram',
        'h_seconds_bucket{route="r",le="0.1"} 1',
        'h_seconds_bucket{route="r",le="1"} 3',
        'h_seconds_bucket{route="r",le="+Inf"} 4',
        'h_seconds_sum{route="r"} 4.25',
        'h_seconds_count{route="r"} 4',
        '',
      ].join('\n'),
    )
  })

  test('the event-loop probe reports how late its timer fired', () => {
    let now = 1000
    const lag = new EventLoopLag(() => now, 500)
    now = 1500
    lag.fired()
    expect(lag.lastSeconds).toBe(0)
    now = 2250
    lag.fired()
    expect(lag.lastSeconds).toBe(0.25)
  })
})
