/** Hostile login bodies (test/hostile-bodies.ts): each gets its envelope, with no echo and no password work. Costs: bench/hostile-bodies.ts. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { BASE, createHarness, type Harness } from '../helpers'
import { FLAT, HOSTILE_BODIES } from '../hostile-bodies'

const ENVELOPE_KEYS = ['code', 'error', 'message', 'success', 'timestamp']
let h: Harness
let hashed = 0

beforeAll(async () => {
  h = await createHarness()
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
  const authenticate = h.directory.authenticate.bind(h.directory)
  h.directory.authenticate = (...args) => {
    hashed++
    return authenticate(...args)
  }
})
afterAll(() => h.close())

describe('hostile login bodies are refused before any password work, without an echo', () => {
  for (const shape of [FLAT, ...HOSTILE_BODIES]) {
    test(shape.name, async () => {
      expect(Buffer.byteLength(shape.body)).toBeGreaterThan(7900)
      expect(Buffer.byteLength(shape.body)).toBeLessThanOrEqual(8192)
      const before = hashed
      const response = await h.json(`${BASE}/auth/login`, shape.body)
      const text = await response.text()
      expect(response.status).toBe(shape.status)
      const body = JSON.parse(text)
      expect(body).toMatchObject({ success: false, code: shape.code, timestamp: h.clock.seconds })
      expect(Object.keys(body).sort()).toEqual(shape.errors ? [...ENVELOPE_KEYS, 'errors'].sort() : ENVELOPE_KEYS)
      if (shape.errors) expect(body.errors).toEqual(shape.errors)
      expect(text.length).toBeLessThan(300)
      expect(hashed).toBe(before)
    })
  }

  test('the envelope texts of the two shape limits', async () => {
    const deep = await (await h.json(`${BASE}/auth/login`, '{"username":[[1]]}')).json()
    const wide = await (await h.json(`${BASE}/auth/login`, `[${'0,'.repeat(64)}0]`)).json()
    expect(deep).toMatchObject({ error: 'Request body is nested too deeply', message: 'Request body is nested too deeply', code: 'body_too_deep' })
    expect(wide).toMatchObject({ error: 'Request body has too many fields', message: 'Request body has too many fields', code: 'body_too_many_fields' })
  })

  test('at the limits a body is still parsed: one level inside a field, 64 fields', async () => {
    const fields = Object.fromEntries(Array.from({ length: 62 }, (_, i) => [`k${i}`, i]))
    const atLimit = await h.json(`${BASE}/auth/login`, { username: '201', password: 'secret-201', ...fields })
    expect(atLimit.status).toBe(200)
    const oneLevel = await h.json(`${BASE}/auth/login`, { username: '201', password: ['secret-echo'] })
    expect(oneLevel.status).toBe(400)
    expect((await oneLevel.json()).errors).toEqual({ password: ['must be a string'] })
  })
})

describe('a body without Content-Length (chunked)', () => {
  /** An endless JSON string in 1 KiB chunks, counting what was pulled from it. */
  function endless() {
    const pulled = { bytes: 0, cancelled: false }
    const chunk = new TextEncoder().encode('x'.repeat(1024))
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(new TextEncoder().encode('{"username":"')),
      pull: (controller) => {
        pulled.bytes += chunk.byteLength
        controller.enqueue(chunk)
      },
      cancel: () => {
        pulled.cancelled = true
      },
    })
    return { stream, pulled }
  }

  test('is refused with 413 once it passes the route\'s limit, and read no further', async () => {
    const { stream, pulled } = endless()
    const response = await h.request(`${BASE}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream })
    expect(response.status).toBe(413)
    expect((await response.json()).code).toBe('payload_too_large')
    expect(pulled.bytes).toBeLessThan(64 * 1024)
    expect(pulled.cancelled).toBe(true)
  })

  test('within the limit is read whole and parsed', async () => {
    const body = new Response(JSON.stringify({ username: '201', password: 'secret-201' })).body!
    const response = await h.request(`${BASE}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    expect(response.status).toBe(200)
  })
})
