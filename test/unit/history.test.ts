import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as v from 'valibot'
import { localDate, partyNumbersOf } from '../../src/history/call-history'
import { cdrDatabasePath } from '../../src/history/cdr-location'
import { CdrSource, INDEX_PLAN_MAX_LEGS } from '../../src/history/cdr-reader'
import { rangeOf } from '../../src/history/history-routes'
import { CallsResponse, HistoryResponse } from '../../src/history/history-schemas'
import { recordingRelativePath, recordingUrl } from '../../src/history/recordings'
import { createCdrFixture, FIXTURE_CALLS_OF_201, FIXTURE_ROWS, insertRows, leg } from '../cdr-fixture'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

let dir: string
let cdrPath: string
let h: Harness
const access: Record<string, string> = {}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-cdr-'))
  cdrPath = join(dir, 'cdr.db')
  createCdrFixture(cdrPath)
  h = await createHarness({ cdrPath })
  for (const [username, mobile] of [['201', '0123456789'], ['202', ''], ['203', '']] as const) {
    await h.directory.add({ username, password: `secret-${username}`, displayName: `User ${username}`, role: 'user', mobile })
    access[username] = (await h.login(username, `secret-${username}`)).access_token
  }
})
afterAll(() => {
  h.close()
  rmSync(dir, { recursive: true, force: true })
})

type Body = Record<string, any>
async function get(harness: Harness, path: string, user = '201'): Promise<{ status: number; body: Body; headers: Headers }> {
  const response = await harness.request(`${BASE}${path}`, { headers: bearer(access[user]!) })
  return { status: response.status, body: await response.json(), headers: response.headers }
}
const history = (date: string, user = '201') => get(h, `/history?date=${date}`, user)
const callById = (calls: Body[], id: string) => calls.find((call) => call.id === id)!

describe('history for one day', () => {
  test("lists the user's calls of that day, newest first, in the legacy envelope", async () => {
    const { status, body } = await history('2026-11-23')
    expect(status).toBe(200)
    expect(v.is(HistoryResponse, body)).toBe(true)
    expect(body.user).toEqual({ id: 1, username: '201', role: 'user', display_name: 'User 201', mobile: '0123456789' })
    expect(body.history_source).toBe('cdr')
    expect(body.history.map((call: Body) => call.id)).toEqual([...FIXTURE_CALLS_OF_201])
  })

  test('each call has its direction and other party as 201 sees it', async () => {
    const calls = (await history('2026-11-23')).body.history
    const seen = Object.fromEntries(calls.map((call: Body) => [call.id, [call.direction, call.other_party, call.other_party_name]]))
    expect(seen).toEqual({
      'L-inner': ['inner', '202', 'Bob'],
      'L-in': ['incoming', '74951112233', 'ACME Ltd'],
      'L-out': ['outgoing', '84957654321', null],
      'L-missed': ['missed', '89005556677', null],
      'L-transfer': ['inner', '202', null],
      'L-queue': ['missed', '74953334455', null],
      'L-mobile': ['incoming', '74956667788', null],
      'L-ws': ['inner', '202', null],
      'L-late': ['inner', '203', null],
    })
  })

  test('legs of one linkedid form one call, with times, billing, transfer flags and recording URLs', async () => {
    const transfer = callById((await history('2026-11-23')).body.history, 'L-transfer')
    expect(transfer).toMatchObject({
      start: '2026-11-23 09:40:00.000',
      answer: '2026-11-23 09:40:40.000',
      end: '2026-11-23 09:42:10.000',
      duration: 130,
      billsec: 90,
      disposition: 'ANSWERED',
    })
    expect(transfer.legs.map((each: Body) => [each.src_num, each.dst_num, each.transferred, each.recording_url])).toEqual([
      ['74950001122', '202', false, '/pbxcore/softphone/recordings/2026/11/23/09/L-transfer.74950001122.202.mp3'],
      ['202', '201', true, '/pbxcore/softphone/recordings/2026/11/23/09/L-transfer.202.201.mp3'],
    ])
    const missed = callById((await history('2026-11-23')).body.history, 'L-missed')
    expect(missed).toMatchObject({ answer: null, billsec: 0, disposition: 'NO ANSWER', legs: [{ recording_url: null, answer: null }] })
  })

  test('a user sees only calls it took part in', async () => {
    expect((await history('2026-11-23', '203')).body.history.map((call: Body) => call.id)).toEqual(['L-late', 'L-other', 'L-queue'])
    const of202 = (await history('2026-11-23', '202')).body.history.map((call: Body) => call.id)
    expect(of202).toEqual(['L-ws', 'L-other', 'L-transfer', 'L-inner'])
  })

  test('days are cut at local midnight', async () => {
    expect((await history('2026-11-22')).body.history.map((call: Body) => call.id)).toEqual(['L-prev'])
    expect((await history('2026-11-24')).body.history).toEqual([])
  })

  test('without a date it is today on the PBX clock', async () => {
    h.clock.advance(0)
    const today = localDate(h.clock.now())
    expect((await get(h, '/history')).body.history).toEqual((await history(today)).body.history)
  })
})

describe('calls in pages', () => {
  const allIds = [...FIXTURE_CALLS_OF_201, 'L-prev']

  async function pages(query: string, user = '201'): Promise<string[][]> {
    const result: string[][] = []
    let cursor: string | null = null
    do {
      const { status, body } = await get(h, `/calls?${query}${cursor ? `&cursor=${cursor}` : ''}`, user)
      expect(status).toBe(200)
      expect(v.is(CallsResponse, body)).toBe(true)
      result.push(body.calls.map((call: Body) => call.id))
      cursor = body.next_cursor
    } while (cursor && result.length < 20)
    return result
  }

  test('walks every call of the range exactly once, newest first', async () => {
    const walked = await pages('from=2026-11-22&to=2026-11-23&limit=4')
    expect(walked.map((page) => page.length)).toEqual([4, 4, 2])
    expect(walked.flat()).toEqual(allIds)
    expect((await pages('from=2026-11-22&to=2026-11-23&limit=1')).flat()).toEqual(allIds)
    // The last page says so even when it is full: no empty page after it.
    expect((await pages('from=2026-11-22&to=2026-11-23&limit=5')).map((page) => page.length)).toEqual([5, 5])
  })

  test('a cursor stays valid while new calls arrive', async () => {
    const first = await get(h, '/calls?from=2026-11-23&to=2026-11-23&limit=3')
    const writer = new Database(cdrPath)
    insertRows(writer, [leg('L-newer', '23:59:59', '202', '201', { talk: 3, extra: { start: '2026-11-23 23:59:59.500' } })])
    writer.close()
    try {
      const second = await get(h, `/calls?from=2026-11-23&to=2026-11-23&limit=3&cursor=${first.body.next_cursor}`)
      expect(second.body.calls.map((call: Body) => call.id)).toEqual(['L-queue', 'L-transfer', 'L-missed'])
      expect((await get(h, '/calls?from=2026-11-23&to=2026-11-23&limit=1')).body.calls[0].id).toBe('L-newer')
    } finally {
      const cleanup = new Database(cdrPath)
      cleanup.run("DELETE FROM cdr_general WHERE linkedid = 'L-newer'")
      cleanup.close()
    }
  })

  test('without from and to: the 31 days up to today', () => {
    expect(rangeOf({}, '2026-11-23')).toEqual({ from: '2026-10-24', to: '2026-11-23' })
    expect(rangeOf({ to: '2026-03-01' }, '2026-11-23')).toEqual({ from: '2026-01-30', to: '2026-03-01' })
  })

  const badQueries: Array<[string, string, string]> = [
    ['from=2026-11-24&to=2026-11-23', 'from', 'must not be after to'],
    ['from=2026-10-23&to=2026-11-23', 'from', 'must be at most 30 days before to'],
    ['from=2026-02-30', 'from', 'must be a date YYYY-MM-DD'],
    ['to=tomorrow', 'to', 'must be a date YYYY-MM-DD'],
    ['limit=0', 'limit', 'must be an integer from 1 to 500'],
    ['limit=501', 'limit', 'must be an integer from 1 to 500'],
    ['limit=ten', 'limit', 'must be an integer from 1 to 500'],
    ['limit=-1', 'limit', 'must be an integer from 1 to 500'],
    ['cursor=not-a-cursor', 'cursor', 'must be a next_cursor from an earlier answer'],
    [`cursor=${Buffer.from('["x",1]').toString('base64url')}`, 'cursor', 'must be a next_cursor from an earlier answer'],
  ]
  for (const [query, field, message] of badQueries) {
    test(`${query} → 400 naming ${field}`, async () => {
      const { status, body } = await get(h, `/calls?${query}`)
      expect(status).toBe(400)
      expect(body).toMatchObject({ success: false, code: 'validation_failed', errors: { [field]: [message] } })
    })
  }

  test('the range may be exactly 31 days and the limit 500', async () => {
    expect((await get(h, '/calls?from=2026-10-24&to=2026-11-23&limit=500')).status).toBe(200)
  })

  test('needs an access token', async () => {
    const response = await h.request(`${BASE}/calls`)
    expect(response.status).toBe(401)
  })
})

describe('a busy user: each way of finding legs gives the same calls', () => {
  const busyDay = '2026-11-20'
  let busyPath: string
  let busy: Harness
  let token: string

  beforeAll(async () => {
    busyPath = join(dir, 'busy.db')
    const many = Array.from({ length: INDEX_PLAN_MAX_LEGS + 100 }, (_, i) =>
      leg(`B-${i}`, `${String(8 + Math.floor(i / 360)).padStart(2, '0')}:${String(Math.floor(i / 6) % 60).padStart(2, '0')}:${String((i % 6) * 10).padStart(2, '0')}`, '201', '202', { day: busyDay, talk: 1 }),
    )
    createCdrFixture(busyPath, { rows: [...FIXTURE_ROWS, ...many] })
    busy = await createHarness({ cdrPath: busyPath })
    await busy.directory.add({ username: '201', password: 'secret-201', displayName: 'A', role: 'user', mobile: '0123456789' })
    token = (await busy.login()).access_token
  })
  afterAll(() => busy.close())

  test('a range with many of its legs is walked down start; one with few through the number indexes', () => {
    const source = new CdrSource(busyPath)
    const opening = source.open()
    if (opening.source !== 'cdr') throw new Error('fixture unreadable')
    const numbers = partyNumbersOf({ id: 1, username: '201', displayName: 'A', role: 'user', mobile: '0123456789', disabled: false })
    expect(opening.reader.plan(numbers, `${busyDay} 00:00:00`, '2026-11-21 00:00:00').kind).toBe('scan')
    expect(opening.reader.plan(numbers, '2026-11-23 00:00:00', '2026-11-24 00:00:00').kind).toBe('index')
    expect(opening.reader.plan(numbers, '2026-12-01 00:00:00', '2026-12-02 00:00:00').kind).toBe('empty')
    source.close()
  })

  test('both give every call once, in order', async () => {
    const day = await busy.request(`${BASE}/history?date=2026-11-23`, { headers: bearer(token) })
    expect((await day.json()).history.map((call: Body) => call.id)).toEqual([...FIXTURE_CALLS_OF_201])
    const ids: string[] = []
    let cursor: string | null = null
    do {
      const response = await busy.request(`${BASE}/calls?from=${busyDay}&to=${busyDay}&limit=500${cursor ? `&cursor=${cursor}` : ''}`, { headers: bearer(token) })
      const body = await response.json()
      ids.push(...body.calls.map((call: Body) => call.id))
      cursor = body.next_cursor
    } while (cursor)
    expect(ids).toEqual(Array.from({ length: INDEX_PLAN_MAX_LEGS + 100 }, (_, i) => `B-${INDEX_PLAN_MAX_LEGS + 99 - i}`))
  })
})

describe('without a usable CDR file', () => {
  async function withCdr(path: string | undefined, run: (harness: Harness, token: string) => Promise<void>) {
    const harness = await createHarness({ cdrPath: path })
    try {
      await harness.directory.add({ username: '201', password: 'secret-201', displayName: 'A', role: 'user', mobile: '' })
      await run(harness, (await harness.login()).access_token)
    } finally {
      harness.close()
    }
  }
  const fetchBoth = async (harness: Harness, token: string) => {
    const historyBody = await (await harness.request(`${BASE}/history?date=2026-11-23`, { headers: bearer(token) })).json()
    const callsBody = await (await harness.request(`${BASE}/calls`, { headers: bearer(token) })).json()
    return [historyBody, callsBody]
  }

  test('no file: empty lists and history_source "none"', async () => {
    await withCdr(join(dir, 'absent.db'), async (harness, token) => {
      const [historyBody, callsBody] = await fetchBoth(harness, token)
      expect(historyBody).toMatchObject({ success: true, history: [], history_source: 'none' })
      expect(callsBody).toEqual({ success: true, calls: [], next_cursor: null, history_source: 'none' })
    })
  })

  test('a table without a needed column: empty lists and "unsupported_schema", logged once', async () => {
    const path = join(dir, 'old.db')
    const db = new Database(path, { create: true })
    db.run('CREATE TABLE cdr_general (id INTEGER PRIMARY KEY, start TEXT, src_num TEXT, dst_num TEXT)')
    db.close()
    await withCdr(path, async (harness, token) => {
      const [historyBody, callsBody] = await fetchBoth(harness, token)
      expect(historyBody).toMatchObject({ history: [], history_source: 'unsupported_schema' })
      expect(callsBody).toMatchObject({ calls: [], history_source: 'unsupported_schema' })
    })
    const warnings: string[] = []
    const source = new CdrSource(path, (message) => warnings.push(message))
    expect([source.open().source, source.open().source]).toEqual(['unsupported_schema', 'unsupported_schema'])
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('linkedid')
  })

  test('a file that is no SQLite database: "unsupported_schema", not a 500', async () => {
    const path = join(dir, 'garbage.db')
    writeFileSync(path, 'this is not a database, just some text long enough to have a header\n'.repeat(20))
    await withCdr(path, async (harness, token) => {
      const [historyBody, callsBody] = await fetchBoth(harness, token)
      expect(historyBody).toMatchObject({ history: [], history_source: 'unsupported_schema' })
      expect(callsBody).toMatchObject({ calls: [], history_source: 'unsupported_schema' })
    })
  })

  test('a file locked by MikoPBX: 503 with Retry-After, the file untouched', async () => {
    const path = join(dir, 'locked.db')
    createCdrFixture(path, { wal: false })
    const writer = new Database(path)
    writer.run('BEGIN EXCLUSIVE')
    writer.run("UPDATE cdr_general SET disposition = 'BUSY' WHERE id = 1")
    try {
      await withCdr(path, async (harness, token) => {
        for (const route of ['/history?date=2026-11-23', '/calls']) {
          const response = await harness.request(`${BASE}${route}`, { headers: bearer(token) })
          expect(response.status).toBe(503)
          expect(response.headers.get('retry-after')).toBe('1')
          expect(await response.json()).toMatchObject({ code: 'store_busy' })
        }
      })
    } finally {
      writer.run('ROLLBACK')
      writer.close()
    }
  })

  test('the reader never writes: the file is byte for byte the same after reading', async () => {
    const path = join(dir, 'untouched.db')
    createCdrFixture(path, { wal: false })
    const before = readFileSync(path)
    await withCdr(path, async (harness, token) => {
      const response = await harness.request(`${BASE}/calls?from=2026-11-22&to=2026-11-23`, { headers: bearer(token) })
      expect((await response.json()).calls.length).toBeGreaterThan(0)
    })
    expect(readFileSync(path).equals(before)).toBe(true)
    expect(existsSync(`${path}-journal`) || existsSync(`${path}-wal`)).toBe(false)
  })
})

describe('where the CDR file is', () => {
  test('cdr_db wins; else MikoPBX settings cdrDatabase.dbfile; else none', () => {
    const settings = join(dir, 'mikopbx-settings.json')
    writeFileSync(settings, JSON.stringify({ cdrDatabase: { dbfile: '/storage/usbdisk1/mikopbx/astlogs/asterisk/cdr.db' } }))
    expect(cdrDatabasePath('/srv/cdr.db', settings)).toBe('/srv/cdr.db')
    expect(cdrDatabasePath('', settings)).toBe('/storage/usbdisk1/mikopbx/astlogs/asterisk/cdr.db')
    expect(cdrDatabasePath('', join(dir, 'no-such.json'))).toBeNull()
    writeFileSync(settings, '{not json')
    expect(cdrDatabasePath('', settings)).toBeNull()
    writeFileSync(settings, JSON.stringify({ cdrDatabase: { dbfile: 'relative.db' } }))
    expect(cdrDatabasePath('', settings)).toBeNull()
  })
})

describe('recording URLs', () => {
  test('the path below the monitor directory, under the recordings prefix', () => {
    const file = '/storage/usbdisk1/mikopbx/astspool/monitor/2026/11/23/09/mikopbx-1.5.mp3'
    expect(recordingRelativePath(file)).toBe('2026/11/23/09/mikopbx-1.5.mp3')
    expect(recordingUrl(file)).toBe('/pbxcore/softphone/recordings/2026/11/23/09/mikopbx-1.5.mp3')
  })

  for (const file of ['', '/etc/passwd', '/storage/usbdisk1/mikopbx/astspool/monitor/../../x.mp3', '/storage/usbdisk1/mikopbx/astspool/monitor/', '/storage/usbdisk1/mikopbx/astspool/monitor//a.mp3']) {
    test(`no URL for ${JSON.stringify(file)}`, () => {
      expect(recordingRelativePath(file)).toBeNull()
      expect(recordingUrl(file)).toBeNull()
    })
  }
})
