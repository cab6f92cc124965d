/** recordings_access (README "Recordings: check-media-access"): who opens which recording, against the CDR fixture. */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CdrReader, CdrSource } from '../../src/history/cdr-reader'
import { RecordingOwners } from '../../src/media/recording-owners'
import { recordingsAccessLine } from '../../src/serve'
import { createCdrFixture, FIXTURE_ROWS, insertRows, leg, type CdrRow } from '../cdr-fixture'
import { BASE, ManualClock, createHarness, type Harness } from '../helpers'
import type { DirectoryUser } from '../../src/directory/directory'

const MEDIA = `${BASE}/check-media-access`
const RECORDINGS = '/pbxcore/softphone/recordings/'
/** Recorded legs: the path below the monitor directory is `Y/m/d/H/<UNIQUEID>.mp3` (cdr-fixture.ts). */
const REC = {
  inner: '2026/11/23/09/L-inner.201.202.mp3',
  incoming: '2026/11/23/09/L-in.74951112233.201.mp3',
  transferFirst: '2026/11/23/09/L-transfer.74950001122.202.mp3',
  transferSecond: '2026/11/23/09/L-transfer.202.201.mp3',
  other: '2026/11/23/10/L-other.202.203.mp3',
  webrtc: '2026/11/23/11/L-ws-rec.202.201-WS.mp3',
  mobile: '2026/11/23/11/L-mob-rec.74956667788.+70123456789.mp3',
} as const
const EXTRA_ROWS: readonly CdrRow[] = [
  leg('L-ws-rec', '11:00:00', '202', '201-WS', { talk: 12, recorded: true }),
  leg('L-mob-rec', '11:10:00', '74956667788', '+70123456789', { talk: 25, recorded: true }),
]

let dir: string
let cdrPath: string
let h: Harness
const tokens: Record<string, string> = {}

async function addUsers(harness: Harness): Promise<Record<string, string>> {
  const users = [
    ['201', 'user', '0123456789'],
    ['203', 'user', ''],
    ['900', 'admin', ''],
    ['901', 'superadmin', ''],
  ] as const
  const issued: Record<string, string> = {}
  for (const [username, role, mobile] of users) {
    await harness.directory.add({ username, password: `secret-${username}`, displayName: '', role, mobile })
    issued[username] = (await harness.login(username, `secret-${username}`)).access_token
  }
  return issued
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'recording-owners-'))
  cdrPath = join(dir, 'cdr.db')
  createCdrFixture(cdrPath, { rows: [...FIXTURE_ROWS, ...EXTRA_ROWS] })
  h = await createHarness({ cdrPath })
  Object.assign(tokens, await addUsers(h))
})
afterAll(() => {
  h.close()
  rmSync(dir, { recursive: true, force: true })
})

/** A peer of its own per request: the security log coalesces repeated denials per (ip, user). */
let requests = 0
const open = (harness: Harness, relative: string, token: string) =>
  harness.request(MEDIA, { headers: { 'x-original-uri': `${RECORDINGS}${relative}?token=${token}` }, peer: `10.0.${++requests >> 8}.${requests & 255}` })

async function expectRefused(harness: Harness, response: Response, code: string, user: string, reason: string, token: string) {
  expect(response.status).toBe(403)
  expect(response.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="insufficient_scope"')
  expect(await response.json()).toMatchObject({ success: false, code })
  const line = harness.logLines().at(-1)!
  expect(line).toMatchObject({ event: 'MEDIA_ACCESS_DENIED', user, reason })
  expect(JSON.stringify(line)).not.toContain(token.split('.')[2]!)
}

describe('recordings_access = "owner" (the default)', () => {
  test('a participant opens the recordings of its calls, under each of its numbers', async () => {
    // 201 itself, a caller's leg it shares a linkedid with (transfer), its -WS peer, its mobile with +7.
    for (const relative of [REC.inner, REC.incoming, REC.transferFirst, REC.transferSecond, REC.webrtc, REC.mobile]) {
      const response = await open(h, relative, tokens['201']!)
      expect({ relative, status: response.status }).toEqual({ relative, status: 200 })
      expect(await response.json()).toEqual({ success: true })
    }
  })

  test("another user's recording → 403 recording_forbidden, logged with the user", async () => {
    await expectRefused(h, await open(h, REC.other, tokens['201']!), 'recording_forbidden', '201', 'not a participant', tokens['201']!)
    expect((await open(h, REC.other, tokens['203']!)).status).toBe(200)
    await expectRefused(h, await open(h, REC.inner, tokens['203']!), 'recording_forbidden', '203', 'not a participant', tokens['203']!)
  })

  test('admins and superadmins open any recording', async () => {
    for (const admin of ['900', '901']) {
      for (const relative of [REC.other, REC.inner, '2026/11/23/12/nobody.mp3']) {
        expect((await open(h, relative, tokens[admin]!)).status).toBe(200)
      }
    }
  })

  test('an unknown recording → 403, also a known UNIQUEID in another folder or with another extension', async () => {
    for (const relative of ['2026/11/23/12/nobody.mp3', '2026/11/23/10/L-inner.201.202.mp3', '2026/11/23/09/L-inner.201.202.wav', 'L-inner.201.202.mp3']) {
      await expectRefused(h, await open(h, relative, tokens['201']!), 'recording_forbidden', '201', 'unknown recording', tokens['201']!)
    }
  })

  test('a percent-encoded name is looked up decoded', async () => {
    expect((await open(h, '2026/11/23/11/L-mob-rec.74956667788.%2B70123456789.mp3', tokens['201']!)).status).toBe(200)
  })

  test('without X-Original-URI (a direct token check) only the token is checked', async () => {
    expect((await h.request(MEDIA, { headers: { authorization: `Bearer ${tokens['203']}` } })).status).toBe(200)
  })

  test("a CDR change is picked up within a second: a new call's recording opens, a changed one closes", async () => {
    const fresh = '2026/11/23/12/L-new.203.201.mp3'
    expect((await open(h, fresh, tokens['201']!)).status).toBe(403)
    expect((await open(h, REC.inner, tokens['201']!)).status).toBe(200)
    const writer = new Database(cdrPath)
    try {
      insertRows(writer, [leg('L-new', '12:00:00', '203', '201', { talk: 10, recorded: true })])
      writer.run("UPDATE cdr_general SET recordingfile = '' WHERE UNIQUEID = 'L-inner.201.202'")
    } finally {
      writer.close()
    }
    h.clock.advance(1)
    expect((await open(h, fresh, tokens['201']!)).status).toBe(200)
    expect((await open(h, fresh, tokens['203']!)).status).toBe(200)
    await expectRefused(h, await open(h, REC.inner, tokens['201']!), 'recording_forbidden', '201', 'unknown recording', tokens['201']!)
  })
})

describe('a CDR file replaced by a rename, as an upgrade does', () => {
  test('recordings follow the new file within a second, history at once', async () => {
    const path = join(dir, 'replaced.db')
    createCdrFixture(path, { wal: false })
    const harness = await createHarness({ cdrPath: path })
    try {
      const issued = await addUsers(harness)
      const after = '2026/11/23/12/L-after.203.201.mp3'
      expect((await open(harness, REC.inner, issued['201']!)).status).toBe(200)
      expect((await open(harness, after, issued['201']!)).status).toBe(403)
      const next = join(dir, 'replaced.next.db')
      createCdrFixture(next, { rows: [leg('L-after', '12:00:00', '203', '201', { talk: 10, recorded: true })], wal: false })
      renameSync(next, path)

      const history = await harness.request(`${BASE}/history?date=2026-11-23`, { headers: { authorization: `Bearer ${issued['201']}` } })
      expect(((await history.json()) as { history: Array<{ id: string }> }).history.map((call) => call.id)).toEqual(['L-after'])
      harness.clock.advance(1)
      expect((await open(harness, after, issued['201']!)).status).toBe(200)
      expect((await open(harness, REC.inner, issued['201']!)).status).toBe(403)
    } finally {
      harness.close()
    }
  })
})

describe('recordings_access = "owner" when the CDR is missing or locked', () => {
  test('no CDR source: only admins open recordings', async () => {
    const harness = await createHarness()
    try {
      const issued = await addUsers(harness)
      await expectRefused(harness, await open(harness, REC.inner, issued['201']!), 'recording_forbidden', '201', 'no call history source', issued['201']!)
      expect((await open(harness, REC.inner, issued['900']!)).status).toBe(200)
    } finally {
      harness.close()
    }
    expect(recordingsAccessLine('owner', null)).toContain('only admins open recordings')
    expect(recordingsAccessLine('owner', '/var/cdr.db')).toContain('own calls')
    expect(recordingsAccessLine('any', null)).toContain('any valid access token')
  })

  test('a CDR locked by MikoPBX → 403 access_check_unavailable, never a 5xx, fast for 1 s, and not remembered', async () => {
    const path = join(dir, 'locked.db')
    createCdrFixture(path, { wal: false })
    const harness = await createHarness({ cdrPath: path })
    const writer = new Database(path)
    const errors: unknown[] = []
    const consoleError = console.error
    try {
      const issued = await addUsers(harness)
      writer.run('BEGIN EXCLUSIVE')
      writer.run("UPDATE cdr_general SET disposition = 'BUSY' WHERE id = 1")
      console.error = (...args: unknown[]) => errors.push(args)
      const response = await open(harness, REC.inner, issued['201']!)
      await expectRefused(harness, response, 'access_check_unavailable', '201', 'call history unavailable', issued['201']!)
      expect(errors).toHaveLength(1)
      // Within the second the CDR is not tried again (no second busy wait, no second error line).
      writer.run('ROLLBACK')
      await expectRefused(harness, await open(harness, REC.transferSecond, issued['201']!), 'access_check_unavailable', '201', 'call history unavailable', issued['201']!)
      expect(errors).toHaveLength(1)
      harness.clock.advance(1)
      expect((await open(harness, REC.inner, issued['201']!)).status).toBe(200)
      // Once known, a recording stays openable while MikoPBX holds the lock; an unknown one does not.
      writer.run('BEGIN EXCLUSIVE')
      writer.run("UPDATE cdr_general SET disposition = 'BUSY' WHERE id = 1")
      harness.clock.advance(1)
      expect((await open(harness, REC.inner, issued['201']!)).status).toBe(200)
      await expectRefused(harness, await open(harness, REC.incoming, issued['201']!), 'access_check_unavailable', '201', 'call history unavailable', issued['201']!)
      expect((await open(harness, REC.inner, issued['201']!)).status).toBe(200)
      writer.run('ROLLBACK')
    } finally {
      console.error = consoleError
      writer.close()
      harness.close()
    }
  })
})

test('recordings_access = "any": every valid access token opens every recording', async () => {
  const harness = await createHarness({ cdrPath, recordingsAccess: 'any' })
  try {
    const issued = await addUsers(harness)
    expect((await open(harness, REC.other, issued['201']!)).status).toBe(200)
    expect((await open(harness, '2026/11/23/12/nobody.mp3', issued['203']!)).status).toBe(200)
    expect((await open(harness, REC.other, 'not-a-token')).status).toBe(401)
  } finally {
    harness.close()
  }
})

describe('RecordingOwners remembers answers within bounds', () => {
  const user: DirectoryUser = { id: 1, username: '201', role: 'user', mobile: '', displayName: '', disabled: false } as DirectoryUser
  function counting(capacity: number) {
    const lookups: string[] = []
    let version = 1
    const reader = {
      partiesOfRecording(uniqueid: string) {
        lookups.push(uniqueid)
        return uniqueid.startsWith('mine') ? new Set(['201']) : null
      },
      dataVersion: () => version,
    } as unknown as CdrReader
    const source = { open: () => ({ source: 'cdr', reader }), followReplacement: () => false } as unknown as CdrSource
    const clock = new ManualClock()
    const owners = new RecordingOwners(source, clock, capacity)
    return { owners, lookups, clock, change: () => version++ }
  }

  test('a flood of one bogus name costs one lookup; a CDR change drops it', () => {
    const { owners, lookups, clock, change } = counting(2)
    for (let i = 0; i < 5; i++) expect(owners.refusal(user, 'a/bogus.1.mp3')).toBe('unknown recording')
    expect(lookups).toEqual(['bogus.1'])
    change()
    clock.advance(1)
    owners.refusal(user, 'a/bogus.1.mp3')
    expect(lookups).toEqual(['bogus.1', 'bogus.1'])
  })

  test('the least recently used recording is dropped past the bound', () => {
    const { owners, lookups } = counting(2)
    for (const name of ['mine-a', 'mine-b', 'mine-a', 'mine-c', 'mine-a', 'mine-b']) expect(owners.refusal(user, `x/${name}.mp3`)).toBeNull()
    // mine-b was the least recently used when mine-c came in.
    expect(lookups).toEqual(['mine-a', 'mine-b', 'mine-c', 'mine-b'])
  })
})
