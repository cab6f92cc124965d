/**
 * Call history across daylight-saving changes (README "Call history"): the PBX runs in a zone with
 * DST, and MikoPBX writes local-time text that skips an hour in March and repeats one in October.
 * Bun re-reads TZ when it is assigned; it is put back after this file so other files keep theirs.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { callLegSpans, legReadings, localInstants } from '../../src/history/cdr-time'
import { createCdrFixture, leg, type CdrRow } from '../cdr-fixture'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

const originalZone = process.env.TZ
process.env.TZ = 'Europe/Berlin'

const SPRING = '2026-03-29' // 02:00 CET becomes 03:00 CEST
const FALL = '2026-10-25' // 03:00 CEST becomes 02:00 CET: 02:00-02:59 comes twice

interface WrittenLeg {
  start: string
  answer: string
  end: string
  duration: number
  billsec: number
  extra?: CdrRow
}

/** A leg as MikoPBX writes it: local-time text, with Asterisk's own seconds for the real lengths. */
function localLeg(linkedid: string, src: string, dst: string, day: string, times: WrittenLeg): CdrRow {
  const { start, answer, end, duration, billsec, extra } = times
  return leg(linkedid, start, src, dst, {
    day,
    talk: billsec,
    extra: { answer: `${day} ${answer}.000`, endtime: `${day} ${end}.000`, duration, billsec, ...extra },
  })
}

const ROWS: readonly CdrRow[] = [
  // 01:59 CET to 03:01 CEST: two minutes.
  localLeg('L-spring', '201', '202', SPRING, { start: '01:59:00', answer: '01:59:05', end: '03:01:00', duration: 120, billsec: 115 }),
  // A transfer whose second leg spans the skipped hour: 90 s, then 120 s.
  localLeg('L-spring-transfer', '74950001122', '202', SPRING, { start: '01:58:00', answer: '01:58:10', end: '01:59:30', duration: 90, billsec: 80 }),
  localLeg('L-spring-transfer', '202', '201', SPRING, {
    start: '01:59:30', answer: '01:59:35', end: '03:01:30', duration: 120, billsec: 115, extra: { transfer: 1 },
  }),
  // 02:30 in the first pass (CEST) to 02:10 in the second (CET): forty minutes, the end's text before the start's.
  localLeg('L-fall-across', '201', '203', FALL, { start: '02:30:00', answer: '02:30:05', end: '02:10:00', duration: 2400, billsec: 2395 }),
  // 02:30 CEST to 03:10 CET: a hundred minutes.
  localLeg('L-fall-out', '201', '84957654321', FALL, { start: '02:30:00', answer: '02:30:04', end: '03:10:00', duration: 6000, billsec: 5996 }),
  // A transfer: its first leg starts at 02:50 CEST, its second at 02:05 CET, which is later.
  localLeg('L-fall-transfer', '74953334455', '202', FALL, { start: '02:50:00', answer: '02:50:05', end: '02:05:00', duration: 900, billsec: 895 }),
  localLeg('L-fall-transfer', '202', '201', FALL, {
    start: '02:05:00', answer: '02:05:02', end: '03:05:00', duration: 3600, billsec: 3598, extra: { transfer: 1 },
  }),
  // The same, but the second leg lies wholly in the second pass: only the first leg places it.
  localLeg('L-fall-inside', '74953334466', '202', FALL, { start: '02:50:00', answer: '02:50:05', end: '02:05:00', duration: 900, billsec: 895 }),
  localLeg('L-fall-inside', '202', '201', FALL, {
    start: '02:05:00', answer: '02:05:02', end: '02:20:00', duration: 900, billsec: 898, extra: { transfer: 1 },
  }),
]

let dir: string
let h: Harness
let access: string

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-cdr-dst-'))
  const cdrPath = join(dir, 'cdr.db')
  createCdrFixture(cdrPath, { rows: ROWS })
  h = await createHarness({ cdrPath })
  for (const username of ['201', '202']) {
    await h.directory.add({ username, password: `secret-${username}`, displayName: `User ${username}`, role: 'user', mobile: '' })
  }
  access = (await h.login('201', 'secret-201')).access_token
})
afterAll(() => {
  h.close()
  rmSync(dir, { recursive: true, force: true })
  if (originalZone === undefined) delete process.env.TZ
  else process.env.TZ = originalZone
})

type Body = Record<string, any>
async function callsOf(date: string): Promise<Record<string, Body>> {
  const response = await h.request(`${BASE}/history?date=${date}`, { headers: bearer(access) })
  expect(response.status).toBe(200)
  const body = (await response.json()) as Body
  return Object.fromEntries(body.history.map((call: Body) => [call.id, call]))
}

describe('the zone under test', () => {
  test('local text names one instant, two in the repeated hour (earlier first), and the skipped hour shifts forward', () => {
    const utc = (local: string) => localInstants(local).map((ms) => new Date(ms).toISOString())
    expect(utc('2026-03-29 01:59:00.000')).toEqual(['2026-03-29T00:59:00.000Z'])
    expect(utc('2026-03-29 02:30:00.000')).toEqual(['2026-03-29T01:30:00.000Z'])
    expect(utc('2026-03-29 03:01:00.000')).toEqual(['2026-03-29T01:01:00.000Z'])
    expect(utc('2026-10-25 02:30:00.500')).toEqual(['2026-10-25T00:30:00.500Z', '2026-10-25T01:30:00.500Z'])
    expect(utc('2026-10-25 03:00:00.000')).toEqual(['2026-10-25T02:00:00.000Z'])
  })
})

describe('reading a leg', () => {
  const utc = (spans: { start: number; end: number }[]) =>
    spans.map(({ start, end }) => [new Date(start).toISOString(), new Date(end).toISOString()])

  test("its duration picks the pass of a time in the repeated hour; the end is the start plus Asterisk's seconds", () => {
    const across = { start: '2026-10-25 02:30:00.000', endtime: '2026-10-25 03:10:00.000', duration: 6000 }
    expect(utc(legReadings(across))).toEqual([['2026-10-25T00:30:00.000Z', '2026-10-25T02:10:00.000Z']])
    const secondPass = { start: '2026-10-25 02:30:00.000', endtime: '2026-10-25 03:10:00.000', duration: 2400 }
    expect(utc(legReadings(secondPass))).toEqual([['2026-10-25T01:30:00.000Z', '2026-10-25T02:10:00.000Z']])
  })

  test('a leg wholly inside the repeated hour fits both passes, and alone is read in the earlier one', () => {
    const inside = { start: '2026-10-25 02:05:00.000', endtime: '2026-10-25 02:20:00.000', duration: 900 }
    expect(utc(legReadings(inside))).toEqual([
      ['2026-10-25T00:05:00.000Z', '2026-10-25T00:20:00.000Z'],
      ['2026-10-25T01:05:00.000Z', '2026-10-25T01:20:00.000Z'],
    ])
    expect(utc(callLegSpans([inside]))).toEqual([['2026-10-25T00:05:00.000Z', '2026-10-25T00:20:00.000Z']])
  })

  test('without a duration the end is the endtime that follows the start; a start that is no time places nothing', () => {
    const noDuration = { start: '2026-10-25 02:30:00.000', endtime: '2026-10-25 02:10:00.000', duration: null }
    expect(utc(legReadings(noDuration))).toEqual([['2026-10-25T00:30:00.000Z', '2026-10-25T01:10:00.000Z']])
    const [unknown] = callLegSpans([{ start: 'yesterday', endtime: '2026-10-25 02:10:00.000', duration: 60 }])
    expect(Number.isNaN(unknown!.start) && Number.isNaN(unknown!.end)).toBe(true)
  })
})

describe('spring forward: the skipped hour', () => {
  test("a call across it lasts its real two minutes; times stay MikoPBX's local text", async () => {
    const call = (await callsOf(SPRING))['L-spring']!
    expect(call).toMatchObject({
      start: '2026-03-29 01:59:00.000',
      answer: '2026-03-29 01:59:05.000',
      end: '2026-03-29 03:01:00.000',
      duration: 120,
      billsec: 115,
    })
    expect(call.legs.map((each: Body) => [each.duration, each.billsec])).toEqual([[120, 115]])
  })

  test("a transferred call's duration is its first leg's start to its last leg's end", async () => {
    const call = (await callsOf(SPRING))['L-spring-transfer']!
    expect(call).toMatchObject({ start: '2026-03-29 01:58:00.000', end: '2026-03-29 03:01:30.000', duration: 210, billsec: 115 })
  })
})

describe('fall back: the repeated hour', () => {
  test('a call from the first pass into the second lasts forty minutes, though its end reads earlier', async () => {
    const call = (await callsOf(FALL))['L-fall-across']!
    expect(call).toMatchObject({ start: '2026-10-25 02:30:00.000', end: '2026-10-25 02:10:00.000', duration: 2400, billsec: 2395 })
  })

  test('a call from the first pass past the change lasts its real hundred minutes', async () => {
    const call = (await callsOf(FALL))['L-fall-out']!
    expect(call).toMatchObject({ start: '2026-10-25 02:30:00.000', end: '2026-10-25 03:10:00.000', duration: 6000, billsec: 5996 })
  })

  test("a transfer's legs are in time order, not text order: it starts with the first pass's leg", async () => {
    const call = (await callsOf(FALL))['L-fall-transfer']!
    expect(call).toMatchObject({
      direction: 'inner',
      other_party: '202',
      start: '2026-10-25 02:50:00.000',
      answer: '2026-10-25 02:05:02.000',
      end: '2026-10-25 03:05:00.000',
      duration: 4500,
      billsec: 3598,
    })
    expect(call.legs.map((each: Body) => each.start)).toEqual(['2026-10-25 02:50:00.000', '2026-10-25 02:05:00.000'])
  })
})

describe('fall back: a leg wholly inside the repeated hour', () => {
  test("is placed by the call's other legs: the second pass, right after the first leg", async () => {
    const call = (await callsOf(FALL))['L-fall-inside']!
    expect(call).toMatchObject({ start: '2026-10-25 02:50:00.000', end: '2026-10-25 02:20:00.000', duration: 1800, billsec: 898 })
    expect(call.legs.map((each: Body) => each.start)).toEqual(['2026-10-25 02:50:00.000', '2026-10-25 02:05:00.000'])
  })
})
