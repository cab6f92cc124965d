/**
 * Ingest through the compiled binary (README "Ingest from an external producer"): with
 * presence_source = "ingest", a snapshot PUT from loopback reaches `sub/users-state` subscribers; a
 * stale sequence gets 409; a proxied request, or a peer on another address, gets 403.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { networkInterfaces } from 'node:os'
import { ServerProcess } from './server-process'

const PASSWORD = 'Pw-ingest'
const PRODUCER = '5d7f1e0a-2b3c-4d5e-8f90-a1b2c3d4e5f6'

let server: ServerProcess
let token: string

beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('201', PASSWORD)
  await server.start(['--host', '0.0.0.0', '--presence-source', 'ingest'])
  token = (await server.login('201', PASSWORD)).access_token
})
afterAll(() => server.cleanup())

function snapshot(sequence: number) {
  return {
    schemaVersion: 2,
    kind: 'full',
    instanceId: PRODUCER,
    sequence,
    generatedAt: 1_763_900_000.5,
    states: { '201': { name: 'Anna', state: 'Idle', channels: {}, secret: 'not-for-subscribers' } },
  }
}

const put = (base: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/internal/monitor-snapshot/users-state`, { method: 'PUT', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })

describe('presence_source = "ingest"', () => {
  test('the start-up output says where presence comes from', () => {
    expect(server.stdout).toContain('presence_source = "ingest"')
  })

  test('a snapshot PUT from loopback is what a sub/users-state long-poll returns, without fields outside the allowlist', async () => {
    const accepted = await put(server.baseUrl, snapshot(1), { 'x-producer-instance': PRODUCER, 'x-sequence': '1' })
    expect(accepted.status).toBe(200)
    expect(await accepted.json()).toEqual({ success: true, kind: 'users-state', instanceId: PRODUCER, sequence: 1 })
    const polled = await fetch(`${server.baseUrl}/sub/users-state?authorization=${token}`)
    expect(polled.status).toBe(200)
    expect(polled.headers.get('content-type')).toStartWith('application/json')
    const { kind: _full, ...published } = snapshot(1)
    delete (published.states['201'] as Record<string, unknown>).secret
    expect(await polled.json()).toEqual(published)
  })

  test('a stale sequence gets 409 and subscribers keep the last snapshot', async () => {
    expect((await put(server.baseUrl, snapshot(2))).status).toBe(200)
    const stale = await put(server.baseUrl, snapshot(2))
    expect(stale.status).toBe(409)
    expect(await stale.json()).toMatchObject({ success: false, code: 'stale_snapshot', lastSequence: 2 })
    const polled = await fetch(`${server.baseUrl}/sub/users-state?authorization=${token}`)
    expect(((await polled.json()) as { sequence: number }).sequence).toBe(2)
  })

  test('a snapshot of 20 000 employees, several MiB, is accepted whole', async () => {
    const states = Object.fromEntries(Array.from({ length: 20_000 }, (_, index) => [String(10_000 + index), { name: `Employee number ${index} of the big office, with a long title: ${'x'.repeat(100)}`, state: 'Idle', channels: {} }]))
    const body = { ...snapshot(3), states }
    expect(JSON.stringify(body).length).toBeGreaterThan(2 * 1024 * 1024)
    const accepted = await put(server.baseUrl, body)
    expect(accepted.status).toBe(200)
    const polled = await fetch(`${server.baseUrl}/sub/users-state?authorization=${token}`)
    expect(Object.keys(((await polled.json()) as { states: object }).states)).toHaveLength(20_000)
  })

  test('a loopback request with X-Forwarded-For, as a proxy would send it, gets 403', async () => {
    const proxied = await put(server.baseUrl, snapshot(4), { 'x-forwarded-for': '198.51.100.7' })
    expect(proxied.status).toBe(403)
    expect(await proxied.json()).toMatchObject({ success: false, code: 'publish_forbidden' })
  })

  // The host's own non-loopback address: the server sees a peer that is not 127.0.0.1.
  const external = Object.values(networkInterfaces())
    .flat()
    .find((address) => address && address.family === 'IPv4' && !address.internal)?.address
  test.skipIf(!external)('a peer on a non-loopback address gets 403', async () => {
    const refused = await put(`http://${external}:${server.port}${server.baseUrl.slice(server.url.length)}`, snapshot(4))
    expect(refused.status).toBe(403)
    expect(await refused.json()).toMatchObject({ success: false, code: 'publish_forbidden' })
  })
})
