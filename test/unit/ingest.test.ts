/**
 * `PUT internal/monitor-snapshot/*` (README "Ingest from an external producer"): loopback only,
 * only with presence_source = "ingest", the allowlist between the body and the sink, and a
 * sequence that only grows per producer instance.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import type { PresenceSource } from '../../src/presence/ingest-routes'
import type { SnapshotKind, SnapshotOf, SnapshotSink } from '../../src/presence/snapshot'
import { BASE, createHarness, type Harness } from '../helpers'

const PRODUCER = '3f1c8a52-7b1e-4c1a-9d3e-0a6b5c4d3e21'
const RESTARTED = '9b2d4e61-1a2b-4c3d-8e4f-5a6b7c8d9e0f'

/** Keeps what reaches the sink. */
class RecordingSink implements SnapshotSink {
  readonly received: Array<{ kind: SnapshotKind; snapshot: unknown }> = []
  full<K extends SnapshotKind>(kind: K, snapshot: SnapshotOf<K>): void {
    this.received.push({ kind, snapshot })
  }
}

const employee = (name: string, channels: Record<string, unknown> = {}) => ({ name, state: channels['PJSIP/201-000003d8'] ? 'Up' : 'Idle', channels })
const talking = {
  channel: 'PJSIP/268-000003d9',
  number: '268',
  direction: 'outgoing',
  linkedid: '1700000000.1',
  uniqueid: '1700000000.1',
  channelId: '000003d8',
  answerState: 'bridged',
  pickupAvailable: false,
}

function usersState(sequence: number, instanceId = PRODUCER, extra: Record<string, unknown> = {}) {
  return { schemaVersion: 2, kind: 'full', instanceId, sequence, generatedAt: 1_763_900_000.25, states: { '201': employee('Anna', { 'PJSIP/201-000003d8': talking }), '268': employee('Boris') }, ...extra }
}

function activeCalls(sequence: number, instanceId = PRODUCER) {
  const call = {
    start: 1_763_900_000,
    answer: '',
    typeCall: 'inner',
    src_chan: 'PJSIP/201-000003d8',
    src_num: '201',
    dst_chan: 'PJSIP/268-000003d9',
    dst_num: '268',
    did: '',
    linkedid: '1700000000.1',
    calledChannels: [{ channel: 'PJSIP/268-000003d9', number: '268' }],
    bridgeChannels: [],
  }
  return { schemaVersion: 2, kind: 'full', instanceId, sequence, generatedAt: 1_763_900_000.5, calls: [call] }
}

let h: Harness
let sink: RecordingSink
let logged: string[]

async function harness(presenceSource: PresenceSource = 'ingest') {
  sink = new RecordingSink()
  logged = []
  h = await createHarness({ presenceSource, snapshotSink: sink, log: (line) => logged.push(line) })
}
beforeEach(() => harness())
afterEach(() => h.close())

const put = (kind: string, body: unknown, init: { peer?: string; headers?: Record<string, string> } = {}) =>
  h.request(`${BASE}/internal/monitor-snapshot/${kind}`, {
    method: 'PUT',
    peer: init.peer,
    headers: { 'content-type': 'application/json', ...init.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })

async function refusal(response: Response) {
  return { status: response.status, body: (await response.json()) as { success: boolean; code: string; [field: string]: unknown } }
}

describe('accepted snapshots', () => {
  test('a users-state snapshot reaches the sink without `kind`, and the answer names it', async () => {
    const response = await put('users-state', usersState(1))
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ success: true, kind: 'users-state', instanceId: PRODUCER, sequence: 1 })
    const { kind: _full, ...snapshot } = usersState(1)
    expect(sink.received).toEqual([{ kind: 'users-state', snapshot }])
  })

  test('an active-calls snapshot reaches the sink as the active-calls kind', async () => {
    expect((await put('active-calls', activeCalls(1))).status).toBe(200)
    const { kind: _full, ...snapshot } = activeCalls(1)
    expect(sink.received).toEqual([{ kind: 'active-calls', snapshot }])
  })

  test('matching X-Producer-Instance and X-Sequence headers are accepted', async () => {
    const response = await put('users-state', usersState(7), { headers: { 'x-producer-instance': PRODUCER, 'x-sequence': '7' } })
    expect(response.status).toBe(200)
    expect(sink.received).toHaveLength(1)
  })

  test('fields outside the allowlist never reach the sink: a secret, AMI variables, a token', async () => {
    const body = structuredClone(usersState(1, PRODUCER, { secret: 'sip-secret-1', token: 'eyJhbGciOi' }))
    ;(body.states['201'] as Record<string, unknown>).secret = 'sip-secret-2'
    ;(body.states['201'].channels['PJSIP/201-000003d8'] as Record<string, unknown>).variables = { __SECRET: 'ami-variable' }
    expect((await put('users-state', body)).status).toBe(200)
    const delivered = JSON.stringify(sink.received)
    for (const leaked of ['secret', 'sip-secret', 'eyJhbGciOi', 'variables', 'ami-variable']) expect(delivered).not.toContain(leaked)
    const { kind: _full, ...snapshot } = usersState(1)
    expect(sink.received[0]!.snapshot).toEqual(snapshot)
  })
})

describe('sequence', () => {
  test('the same instance with a sequence not above the last accepted gets 409, and the sink hears nothing', async () => {
    expect((await put('users-state', usersState(5))).status).toBe(200)
    for (const sequence of [5, 4]) {
      const { status, body } = await refusal(await put('users-state', usersState(sequence)))
      expect({ status, code: body.code, lastSequence: body.lastSequence }).toEqual({ status: 409, code: 'stale_snapshot', lastSequence: 5 })
    }
    expect((await put('users-state', usersState(6))).status).toBe(200)
    expect(sink.received.map(({ snapshot }) => (snapshot as { sequence: number }).sequence)).toEqual([5, 6])
  })

  test('each kind has its own sequence', async () => {
    expect((await put('users-state', usersState(3))).status).toBe(200)
    expect((await put('active-calls', activeCalls(1))).status).toBe(200)
    expect((await put('active-calls', activeCalls(1))).status).toBe(409)
  })

  test('a new instance starts afresh at any sequence (a producer restarted), and the change is logged', async () => {
    expect((await put('users-state', usersState(40))).status).toBe(200)
    expect((await put('users-state', usersState(1, RESTARTED))).status).toBe(200)
    expect((await put('users-state', usersState(2, RESTARTED))).status).toBe(200)
    expect(sink.received).toHaveLength(3)
    expect(logged).toEqual([
      `ingest: users-state from producer instance ${PRODUCER} (before: none), sequence 40`,
      `ingest: users-state from producer instance ${RESTARTED} (before: ${PRODUCER}), sequence 1`,
    ])
  })

  test('a snapshot the sink failed on may be sent again with the same sequence', async () => {
    const full = sink.full.bind(sink)
    let failures = 1
    sink.full = (kind, snapshot) => {
      if (failures-- > 0) throw new Error('feed down')
      full(kind, snapshot)
    }
    const errors = console.error
    console.error = () => {}
    try {
      expect((await put('users-state', usersState(1))).status).toBe(500)
    } finally {
      console.error = errors
    }
    expect(logged).toEqual([])
    expect((await put('users-state', usersState(1))).status).toBe(200)
    expect(sink.received).toHaveLength(1)
  })

  test('a refused snapshot does not move the sequence', async () => {
    expect((await put('users-state', usersState(1))).status).toBe(200)
    expect((await put('users-state', { ...usersState(9), schemaVersion: 1 })).status).toBe(400)
    expect((await put('users-state', usersState(2))).status).toBe(200)
  })
})

describe('bad bodies', () => {
  const cases: Array<[string, unknown]> = [
    ['schemaVersion 1', { ...usersState(1), schemaVersion: 1 }],
    ['no schemaVersion', { ...usersState(1), schemaVersion: undefined }],
    ['kind "delta"', { ...usersState(1), kind: 'delta' }],
    ['an instanceId that is not a UUID', usersState(1, 'producer-1')],
    ['sequence 0', usersState(0)],
    ['a fractional sequence', usersState(1.5)],
    ['calls sent as users-state', activeCalls(1)],
    ['a channel name outside the strict pattern', { ...usersState(1), states: { '201': employee('Anna', { 'SIP/201-1': talking }) } }],
    ['an unknown answerState', { ...usersState(1), states: { '201': employee('Anna', { 'PJSIP/201-000003d8': { ...talking, answerState: 'up' } }) } }],
  ]
  for (const [name, body] of cases) {
    test(`${name}: 400 validation envelope, nothing reaches the sink`, async () => {
      const { status, body: answer } = await refusal(await put('users-state', body))
      expect({ status, code: answer.code, success: answer.success }).toEqual({ status: 400, code: 'validation_failed', success: false })
      expect(answer.errors).toBeDefined()
      expect(sink.received).toEqual([])
    })
  }

  test('nested too deeply: 400 before parsing', async () => {
    const deep = `${'['.repeat(17)}${']'.repeat(17)}`
    const body = JSON.stringify(usersState(1)).replace('"generatedAt"', `"extra":${deep},"generatedAt"`)
    const { status, body: answer } = await refusal(await put('users-state', body))
    expect({ status, code: answer.code }).toEqual({ status: 400, code: 'body_too_deep' })
    expect(sink.received).toEqual([])
  })

  test('nesting within the limit in a field the allowlist drops is accepted', async () => {
    const body = JSON.stringify(usersState(1)).replace('"generatedAt"', `"extra":${'['.repeat(15)}${']'.repeat(15)},"generatedAt"`)
    expect((await put('users-state', body)).status).toBe(200)
  })

  test('over 8 MiB: 413, by Content-Length before the body is read and by size after', async () => {
    const padding = 'x'.repeat(8 * 1024 * 1024)
    const body = JSON.stringify(usersState(1, PRODUCER, { padding }))
    const { status, body: answer } = await refusal(await put('users-state', body))
    expect({ status, code: answer.code }).toEqual({ status: 413, code: 'payload_too_large' })
    const streamed = new Response(body).body!
    const chunked = await h.request(`${BASE}/internal/monitor-snapshot/users-state`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: streamed })
    expect(chunked.status).toBe(413)
    expect(sink.received).toEqual([])
  })

  test('not JSON by content type, or not JSON at all: 400 as elsewhere', async () => {
    const wrongType = await h.request(`${BASE}/internal/monitor-snapshot/users-state`, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(usersState(1)) })
    expect((await refusal(wrongType)).body.code).toBe('unsupported_content_type')
    expect(wrongType.status).toBe(400)
    const broken = await refusal(await put('users-state', '{"schemaVersion": 2,'))
    expect({ status: broken.status, code: broken.body.code }).toEqual({ status: 400, code: 'invalid_json' })
    expect(sink.received).toEqual([])
  })

  test('X-Producer-Instance or X-Sequence that differ from the body: 400, nothing reaches the sink', async () => {
    const mismatches: Array<Record<string, string>> = [{ 'x-producer-instance': RESTARTED }, { 'x-sequence': '2' }, { 'x-sequence': 'one' }, { 'x-producer-instance': PRODUCER, 'x-sequence': '01' }]
    for (const headers of mismatches) {
      const { status, body } = await refusal(await put('users-state', usersState(1), { headers }))
      expect({ headers, status, code: body.code }).toEqual({ headers, status: 400, code: 'header_mismatch' })
    }
    expect(sink.received).toEqual([])
    expect((await put('users-state', usersState(1))).status).toBe(200)
  })
})

describe('who may send', () => {
  test('loopback peers are accepted: IPv4, IPv6 and IPv4-mapped', async () => {
    let sequence = 0
    for (const peer of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) expect((await put('users-state', usersState(++sequence), { peer })).status).toBe(200)
  })

  test('another address, or any proxy header, is refused with 403 before the body is read', async () => {
    const refusals = [
      await put('users-state', usersState(1), { peer: '192.0.2.9' }),
      await put('active-calls', activeCalls(1), { peer: '::ffff:192.0.2.9' }),
      await put('users-state', usersState(1), { headers: { 'x-forwarded-for': '127.0.0.1' } }),
      await put('users-state', usersState(1), { headers: { 'x-real-ip': '127.0.0.1' } }),
      await put('users-state', usersState(1), { headers: { forwarded: 'for=127.0.0.1' } }),
      // Unread: a body that is not JSON still gets the 403.
      await put('users-state', 'not json', { peer: '192.0.2.9' }),
    ]
    for (const response of refusals) expect(await refusal(response)).toMatchObject({ status: 403, body: { success: false, code: 'publish_forbidden' } })
    expect(sink.received).toEqual([])
  })

  for (const source of ['ami', 'pub'] as const) {
    test(`with presence_source = "${source}": 409 source_mismatch naming the source, before the body is read`, async () => {
      h.close()
      await harness(source)
      for (const body of [usersState(1), 'not json']) {
        const { status, body: answer } = await refusal(await put('users-state', body))
        expect({ status, code: answer.code, source: answer.source }).toEqual({ status: 409, code: 'source_mismatch', source })
      }
      expect(sink.received).toEqual([])
    })
  }

  test('a remote peer learns nothing of the source: 403 first', async () => {
    h.close()
    await harness('ami')
    expect((await refusal(await put('users-state', usersState(1), { peer: '192.0.2.9' }))).body.code).toBe('publish_forbidden')
  })

  test('the refusals are localized like every other envelope', async () => {
    await put('users-state', usersState(2))
    const stale = await put('users-state', usersState(1), { headers: { 'accept-language': 'de' } })
    expect(await stale.json()).toMatchObject({ code: 'stale_snapshot', message: 'Der Schnappschuss ist nicht neuer als der zuletzt angenommene' })
  })
})
