/**
 * The compiled binary reads call history from a MikoPBX CDR file given with --cdr-db
 * (README "Call history"): users 201 and 202 of the embedded directory, added through the CLI, each see only
 * their own calls, and the file is left as it was.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createCdrFixture, FIXTURE_CALLS_OF_201, FIXTURE_DAY } from '../cdr-fixture'
import { ServerProcess } from './server-process'

let server: ServerProcess
let cdrPath: string
let before: Buffer
const tokens: Record<string, string> = {}

beforeAll(async () => {
  server = new ServerProcess()
  cdrPath = join(server.dataDir, 'cdr.db')
  createCdrFixture(cdrPath, { wal: false })
  before = readFileSync(cdrPath)
  await server.addUser('201', 'Pw-201-secret', ['--mobile', '0123456789'])
  await server.addUser('202', 'Pw-202-secret')
  await server.start(['--cdr-db', cdrPath])
  tokens['201'] = (await server.login('201', 'Pw-201-secret')).access_token
  tokens['202'] = (await server.login('202', 'Pw-202-secret')).access_token
})
afterAll(() => server.cleanup())

async function get(path: string, user: string): Promise<Record<string, any>> {
  const response = await fetch(`${server.baseUrl}${path}`, { headers: { authorization: `Bearer ${tokens[user]}` } })
  expect(response.status).toBe(200)
  return response.json()
}
const ids = (calls: Array<{ id: string }>) => calls.map((call) => call.id)

test('the start-up line names the CDR file', () => {
  expect(server.stdout).toContain(`call history from ${cdrPath}`)
})

test("history for 201 shows 201's calls of the day, and only those", async () => {
  const body = await get(`/history?date=${FIXTURE_DAY}`, '201')
  expect(body).toMatchObject({ success: true, user: { username: '201', mobile: '0123456789' }, history_source: 'cdr' })
  expect(ids(body.history)).toEqual([...FIXTURE_CALLS_OF_201])
  const inner = body.history.find((call: { id: string }) => call.id === 'L-inner')
  expect(inner).toMatchObject({ direction: 'inner', other_party: '202' })
  expect(inner.legs[0].recording_url).toBe('/pbxcore/softphone/recordings/2026/11/23/09/L-inner.201.202.mp3')
})

test("calls pages through 201's calls; 202 sees its own", async () => {
  const first = await get(`/calls?from=2026-11-22&to=${FIXTURE_DAY}&limit=5`, '201')
  const second = await get(`/calls?from=2026-11-22&to=${FIXTURE_DAY}&limit=5&cursor=${first.next_cursor}`, '201')
  expect([...ids(first.calls), ...ids(second.calls)]).toEqual([...FIXTURE_CALLS_OF_201, 'L-prev'])
  expect(second.next_cursor).toBeNull()
  const of202 = await get(`/calls?from=2026-11-22&to=${FIXTURE_DAY}`, '202')
  expect(ids(of202.calls)).toEqual(['L-ws', 'L-other', 'L-transfer', 'L-inner', 'L-prev'])
})

test('a bad range is a 400 naming the field', async () => {
  const response = await fetch(`${server.baseUrl}/calls?from=2026-11-24&to=2026-11-23`, { headers: { authorization: `Bearer ${tokens['201']}` } })
  expect(response.status).toBe(400)
  expect(await response.json()).toMatchObject({ errors: { from: ['must not be after to'] } })
})

test('the CDR file is unchanged', () => {
  expect(readFileSync(cdrPath).equals(before)).toBe(true)
})
