/**
 * `/metrics` through the compiled binary (README "Metrics"): with `metrics_port` it is served on
 * 127.0.0.1:<metrics_port> only and the main listener answers 404 for it; on the main listener a
 * peer from another address gets 403; `metrics = "off"` serves nothing. And `health?deep=1` reading the real store.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { networkInterfaces } from 'node:os'
import { VERSION } from '../../src/version'
import { runCli, ServerProcess } from './server-process'

const PASSWORD = 'Pw-metrics'

/** A port free right now: bound by the kernel's choice, then released. */
function freePort(): number {
  const probe = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const port = probe.port!
  void probe.stop(true)
  return port
}

/** This machine's first non-loopback IPv4 address, to reach a listener from outside loopback. */
function externalAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && entry.family === 'IPv4' && !entry.internal)?.address
}

describe('with metrics_port', () => {
  let server: ServerProcess
  let metricsPort: number
  beforeAll(async () => {
    server = new ServerProcess()
    await server.addUser('201', PASSWORD)
    metricsPort = freePort()
    await server.start(['--metrics-port', String(metricsPort)])
  })
  afterAll(() => server.cleanup())

  test('the second listener serves /metrics, counting the main listener\'s requests; it says where at start', async () => {
    const { access_token } = await server.login('201', PASSWORD)
    expect((await fetch(`${server.baseUrl}/check-media-access`, { headers: { authorization: `Bearer ${access_token}` } })).status).toBe(200)
    expect(server.stdout).toContain(`metrics: http://127.0.0.1:${metricsPort}/metrics (metrics_port)`)
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const text = await response.text()
    expect(text).toContain('softphone_http_requests_total{route="/pbxcore/api/module-softphone-backend/v1/check-media-access",status="200"} 1\n')
    expect(text).toContain('softphone_logins_total{outcome="ok"} 1\n')
    expect(text).toContain('softphone_sessions_active 1\n')
    expect(text).toMatch(/^softphone_event_loop_lag_seconds [\d.e-]+$/m)
  })

  test('the main listener answers 404 for /metrics', async () => {
    const response = await fetch(`${server.url}/metrics`)
    expect(response.status).toBe(404)
    expect((await response.json()).code).toBe('not_found')
  })

  test('the second listener: a proxied request gets 403, other paths 404', async () => {
    const proxied = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { 'x-real-ip': '203.0.113.5' } })
    expect(proxied.status).toBe(403)
    expect((await proxied.json()).code).toBe('metrics_forbidden')
    expect((await fetch(`http://127.0.0.1:${metricsPort}/health`)).status).toBe(404)
  })

  test('the second listener is bound to loopback: another address of this machine is refused', async () => {
    const address = externalAddress()
    if (!address) return console.warn('no non-loopback IPv4 address here; skipped')
    await expect(fetch(`http://${address}:${metricsPort}/metrics`)).rejects.toThrow()
  })
})

describe('on the main listener', () => {
  let server: ServerProcess
  beforeAll(async () => {
    server = new ServerProcess()
    await server.start(['--host', '0.0.0.0'])
  })
  afterAll(() => server.cleanup())

  test('health has the version, db and store; health?deep=1 reads the store, for loopback only', async () => {
    const url = `http://127.0.0.1:${server.port}/pbxcore/api/module-softphone-backend/v1/health`
    expect(await (await fetch(url)).json()).toMatchObject({ success: true, status: 'ok', ami: 'off', version: VERSION, db: 'ok', store: 'ok' })
    const deep = await fetch(`${url}?deep=1`)
    expect(deep.status).toBe(200)
    expect(await deep.json()).toMatchObject({ success: true, status: 'ok', db: 'ok', checks: { db: 'ok' } })
    const address = externalAddress()
    if (!address) return console.warn('no non-loopback IPv4 address here; skipped')
    const remote = await fetch(`${url.replace('127.0.0.1', address)}?deep=1`)
    expect(remote.status).toBe(403)
    expect((await remote.json()).code).toBe('deep_health_forbidden')
  })

  test('loopback reads it; a peer from another address gets the 403 envelope', async () => {
    expect((await fetch(`http://127.0.0.1:${server.port}/metrics`)).status).toBe(200)
    const address = externalAddress()
    if (!address) return console.warn('no non-loopback IPv4 address here; skipped')
    const response = await fetch(`http://${address}:${server.port}/metrics`)
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ success: false, code: 'metrics_forbidden' })
  })
})

test('metrics = "off": no /metrics anywhere', async () => {
  const server = new ServerProcess()
  try {
    await server.start(['--metrics', 'off'])
    expect((await fetch(`${server.url}/metrics`)).status).toBe(404)
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200)
  } finally {
    await server.cleanup()
  }
})

test('a metrics_port already taken stops the start with exit 69, naming that address', async () => {
  const taken = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
  const server = new ServerProcess()
  try {
    const result = await runCli(['serve', '--data-dir', server.dataDir, '--port', '0', '--metrics-port', String(taken.port)])
    expect(result.exitCode).toBe(69)
    expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${taken.port}: is another instance running?`)
  } finally {
    void taken.stop(true)
    await server.cleanup()
  }
})
