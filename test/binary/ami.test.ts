/**
 * Live PBX state through the compiled binary against the AMI simulator (test/ami-simulator.ts) over
 * real sockets (README "Live PBX state"): a call between 201 and 202 over EventSource and
 * WebSocket, state across an Asterisk restart, AMI absent at start, a refused login, and the
 * MikoPBX core-compatible routes with the seed's curl commands.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { AmiSimulator, SIM_SECRET, SIM_USERNAME } from '../ami-simulator'
import { followStream, ServerProcess } from './server-process'

const PASSWORD = 'Pw-ami-test'
const ADMIN_PASSWORD = 'Pw-ami-admin'
const BOUND_MS = 5000

/** Polls until `check` holds; the engine publishes within 100 ms of an event, so this is generous. */
async function within(ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await Bun.sleep(20)
  }
}

interface Envelope {
  schemaVersion: number
  instanceId: string
  sequence: number
  generatedAt: number
}

const amiEnv = (port: number, secret = SIM_SECRET) => ({
  SOFTPHONE_AMI: 'on',
  SOFTPHONE_AMI_PORT: String(port),
  SOFTPHONE_AMI_USERNAME: SIM_USERNAME,
  SOFTPHONE_AMI_SECRET: secret,
})

function pbxWithTwoPhones(simulator: AmiSimulator): void {
  const contact = (extension: string) => ({
    uri: `sip:${extension}@192.0.2.${extension.slice(-1)}:5060`,
    status: 'Reachable' as const,
    userAgent: 'Softphone/1.0',
    regExpire: 1_795_438_800,
    viaAddress: `192.0.2.${extension.slice(-1)}:5060`,
    callId: `call-id-${extension}`,
    roundtripUsec: 12_345,
  })
  simulator.addEndpoint({ name: '201', contacts: [contact('201')] })
  simulator.addEndpoint({ name: '202', contacts: [contact('202')] })
  simulator.addEndpoint({ name: 'SIP-PROVIDER-1', contacts: [] })
}

describe('a call between 201 and 202', () => {
  let simulator: AmiSimulator
  let server: ServerProcess
  let token: string
  beforeAll(async () => {
    simulator = await AmiSimulator.start()
    pbxWithTwoPhones(simulator)
    server = new ServerProcess()
    await server.addUser('201', PASSWORD, ['--name', 'Alice'])
    await server.addUser('202', PASSWORD, ['--name', 'Bob'])
    await server.addUser('admin', ADMIN_PASSWORD, ['--role', 'admin'])
    await server.start(['--core-api', 'on'], amiEnv(simulator.port))
    token = (await server.login('201', PASSWORD)).access_token
  })
  afterAll(async () => {
    await server.cleanup()
    await simulator.stop()
  })

  const health = async () => (await (await fetch(`${server.baseUrl}/health`)).json()) as { ami: string }
  const get = (path: string) => fetch(`${server.baseUrl}/${path}`, { headers: { authorization: `Bearer ${token}` } })
  /** The body without its envelope, as a version 1 client reads it; the envelope is checked apart. */
  const bodyOf = <T>({ schemaVersion, instanceId, sequence, generatedAt, ...body }: Envelope & T) => body as T
  const lastSnapshot = async <T>(kind: string) => {
    const response = await fetch(`${server.baseUrl}/sub/${kind}?authorization=${token}`)
    return response.status === 200 ? ((await response.json()) as Envelope & T) : null
  }
  const lastUsersState = async () => {
    const snapshot = await lastSnapshot<{ states: Record<string, { name: string; state: string; channels: Record<string, Record<string, unknown>> }> }>('users-state')
    return snapshot && bodyOf(snapshot)
  }
  const lastCalls = async () => {
    const snapshot = await lastSnapshot<{ calls: Array<Record<string, unknown>> }>('active-calls')
    return snapshot && bodyOf(snapshot)
  }

  test('the engine logs in, loads the endpoints and publishes users-state with the directory names', async () => {
    await within(BOUND_MS, async () => (await health()).ami === 'up')
    await within(BOUND_MS, async () => (await lastUsersState())?.states['202']?.state === 'Idle')
    expect(await lastUsersState()).toEqual({ states: { '201': { name: 'Alice', state: 'Idle', channels: {} }, '202': { name: 'Bob', state: 'Idle', channels: {} } } })
    const envelope = (await lastSnapshot<object>('users-state'))!
    expect([envelope.schemaVersion, typeof envelope.sequence, typeof envelope.generatedAt]).toEqual([2, 'number', 'number'])
    expect(envelope.instanceId).toMatch(/^[0-9a-f-]{36}$/)
    const calls = (await lastSnapshot<object>('active-calls'))!
    expect(calls.instanceId).toBe(envelope.instanceId)
    expect(calls.sequence).not.toBe(envelope.sequence)
    const peers = await (await get('peers')).json()
    expect(peers).toMatchObject({ success: true, ami: 'up', stale: false })
    expect(server.stdout).toContain('AMI: connecting to 127.0.0.1')
    // The provider endpoint is no user: never in users-state.
    expect(JSON.stringify(await lastUsersState())).not.toContain('SIP-PROVIDER')
  })

  test('ringing, answered and hung up reach an EventSource and a WebSocket subscriber', async () => {
    const events = await fetch(`${server.baseUrl}/sub/users-state?authorization=${token}`, { headers: { accept: 'text/event-stream' } })
    expect(events.status).toBe(200)
    const stream = followStream(events)
    const socket = new WebSocket(`${server.baseUrl.replace('http', 'ws')}/sub/active-calls?authorization=${token}`)
    const frames: string[] = []
    socket.onmessage = (event) => frames.push(String(event.data))
    await new Promise((resolve) => (socket.onopen = resolve))

    const call = simulator.startCall('201', '202', { '201': 'Alice', '202': 'Bob' })
    await within(BOUND_MS, () => stream.text().includes('"Ringing"'))
    await within(BOUND_MS, () => frames.some((frame) => frame.includes('"typeCall":"inner"')))
    const ringing = JSON.parse(frames.findLast((frame) => frame.includes('"calls":[{'))!) as { calls: Array<Record<string, unknown>> }
    expect(ringing.calls[0]).toMatchObject({ typeCall: 'inner', src_num: '201', src_chan: call.call.caller.channel })
    expect(ringing.calls[0]!.calledChannels).toEqual([
      { channel: call.call.callee.channel, number: '202', uniqueid: call.call.callee.uniqueid, channelId: call.call.callee.channel.slice(-8), answerState: 'ringing' },
    ])

    call.answer()
    // 201 is Up from its Dial on (a user dialing out is busy); the call is set up once both are bridged.
    const bothBridged = (states: Awaited<ReturnType<typeof lastUsersState>>) =>
      ['201', '202'].every((ext) => Object.values(states?.states[ext]?.channels ?? {}).some((channel) => channel.answerState === 'bridged'))
    await within(BOUND_MS, async () => bothBridged(await lastUsersState()))
    const up = (await lastUsersState())!
    expect(up.states['201']!.state).toBe('Up')
    expect(up.states['202']!.state).toBe('Up')
    const { caller, callee } = call.call
    const linkedid = caller.uniqueid
    expect(up.states['201']!.channels).toEqual({
      [caller.channel]: { channel: callee.channel, number: '202', direction: 'outgoing', linkedid, uniqueid: caller.uniqueid, channelId: caller.channel.slice(-8), answerState: 'bridged', pickupAvailable: false },
    })
    expect(up.states['202']!.channels).toEqual({
      [callee.channel]: { channel: caller.channel, number: '201', direction: 'incoming', linkedid, uniqueid: callee.uniqueid, channelId: callee.channel.slice(-8), answerState: 'bridged', pickupAvailable: false },
    })
    await within(BOUND_MS, async () => ((await lastCalls())?.calls[0]?.bridgeChannels as unknown[] | undefined)?.length === 2)

    call.hangup()
    await within(BOUND_MS, async () => (await lastCalls())?.calls.length === 0)
    await within(BOUND_MS, () => stream.text().includes('"Idle"') && (JSON.parse(frames.at(-1)!) as { calls: unknown[] }).calls.length === 0)
    expect(await lastUsersState()).toEqual({ states: { '201': { name: 'Alice', state: 'Idle', channels: {} }, '202': { name: 'Bob', state: 'Idle', channels: {} } } })
    socket.close()
    await stream.stop()
  })

  test('an external publish to a channel the engine produces is refused with 409', async () => {
    const response = await fetch(`${server.baseUrl}/pub/users-state`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"states":{}}' })
    expect(response.status).toBe(409)
    expect(((await response.json()) as { code: string }).code).toBe('channel_produced_here')
  })

  test('an Asterisk restart: stale while down, then reloaded; a call in progress at reconnect is found by the load', async () => {
    await simulator.stop()
    await within(BOUND_MS, async () => (await health()).ami === 'down')
    expect(await (await get('peers')).json()).toMatchObject({ ami: 'down', stale: true })
    // The last state is still served while AMI is away.
    expect((await lastUsersState())?.states['201']?.state).toBe('Idle')

    simulator.startCall('202', '201', { '201': 'Alice', '202': 'Bob' }).answer()
    await simulator.restart()
    await within(35_000, async () => (await health()).ami === 'up')
    await within(BOUND_MS, async () => (await lastUsersState())?.states['202']?.state === 'Up')
    expect(await (await get('peers')).json()).toMatchObject({ ami: 'up', stale: false })
  }, 60_000)

  test("the seed's curl commands, verbatim, from loopback", async () => {
    const curl = async (...args: string[]) => {
      const child = Bun.spawn(['curl', '-s', ...args], { stdout: 'pipe' })
      return JSON.parse(await new Response(child.stdout).text()) as Record<string, unknown>
    }
    const base = `http://127.0.0.1:${server.port}`
    const statuses = await curl(`${base}/pbxcore/api/sip/getPeersStatuses`)
    expect(statuses).toMatchObject({ jsonapi: { version: '1.0' }, result: true, messages: [], function: 'getPeersStatuses' })
    expect(statuses.data).toContainEqual({ id: '201', state: 'OK' })
    const peer = await curl('-X', 'POST', `${base}/pbxcore/api/sip/getSipPeer`, '-H', 'Content-Type: application/json', '-d', '{"peer":"201"}')
    expect(peer).toMatchObject({ result: true, function: 'getSipPeer', data: { state: 'OK', URI: 'sip:201@192.0.2.1:5060' } })
    const registry = await curl(`${base}/pbxcore/api/sip/getRegistry`)
    expect(registry).toMatchObject({ result: true, function: 'getRegistry' })
    expect((registry.meta as { hash: string }).hash).toMatch(/^[0-9a-f]{40}$/)
  })

  test('the admin cookie login, then the same route with the cookie through a proxy address', async () => {
    const base = `http://127.0.0.1:${server.port}`
    const login = await fetch(`${base}/admin-cabinet/session/start`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-real-ip': '192.0.2.50' },
      body: `login=admin&password=${ADMIN_PASSWORD}`,
    })
    expect(await login.json()).toEqual({ success: true, reload: 'index/index', message: [] })
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!
    const withCookie = await fetch(`${base}/pbxcore/api/sip/getPeersStatuses`, { headers: { cookie, 'x-real-ip': '192.0.2.50' } })
    expect(withCookie.status).toBe(200)
    const without = await fetch(`${base}/pbxcore/api/sip/getPeersStatuses`, { headers: { 'x-real-ip': '192.0.2.50' } })
    expect(without.status).toBe(401)
    const elsewhere = await fetch(`${base}/pbxcore/api/sip/getPeersStatuses`, { headers: { cookie, 'x-real-ip': '192.0.2.51' } })
    expect(elsewhere.status).toBe(401)
    expect(server.stdout + server.stderr).not.toContain(ADMIN_PASSWORD)
    expect(server.stdout + server.stderr).not.toContain(SIM_SECRET)
  })
})

describe('AMI faults at start', () => {
  test('AMI absent at start: the server starts, health says down, and it connects once AMI appears', async () => {
    const simulator = await AmiSimulator.start()
    const port = simulator.port
    await simulator.stop()
    const server = new ServerProcess()
    try {
      await server.start([], amiEnv(port))
      const health = async () => ((await (await fetch(`${server.baseUrl}/health`)).json()) as { ami: string; status: string })
      expect(await health()).toMatchObject({ status: 'ok', ami: 'down' })
      await simulator.restart()
      await within(35_000, async () => (await health()).ami === 'up')
    } finally {
      await server.cleanup()
      await simulator.stop()
    }
  }, 60_000)

  test('a refused AMI login: health down, one clear line, and neither the user nor the secret in any output', async () => {
    const simulator = await AmiSimulator.start()
    simulator.faults.refuseLogin = true
    const server = new ServerProcess()
    try {
      await server.start([], amiEnv(simulator.port, 'wrong-secret-3b9f'))
      await within(BOUND_MS, () => simulator.accepted >= 1 && /AMI/.test(server.stdout + server.stderr))
      const health = (await (await fetch(`${server.baseUrl}/health`)).json()) as { ami: string }
      expect(health.ami).toBe('down')
      await Bun.sleep(1500)
      const output = server.stdout + server.stderr
      expect(output).toContain('refused')
      expect(output).not.toContain('wrong-secret-3b9f')
    } finally {
      await server.cleanup()
      await simulator.stop()
    }
  })

  test('ami = "off": health says off and pub/ stays the only source of users-state', async () => {
    const server = new ServerProcess()
    try {
      await server.start()
      expect(((await (await fetch(`${server.baseUrl}/health`)).json()) as { ami: string }).ami).toBe('off')
      const published = await fetch(`${server.baseUrl}/pub/users-state`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"states":{}}' })
      expect(published.status).toBe(200)
    } finally {
      await server.cleanup()
    }
  })
})
