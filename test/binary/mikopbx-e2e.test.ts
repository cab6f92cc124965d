/**
 * MikoPBX mode end to end, as on an appliance: the binary reads the PBX's users from mikopbx.db
 * and its calls from cdr.db, behind the shipped nginx snippet. A fixture peer logs in with its SIP
 * secret, sees its profile, history and calls, opens its call's recording and not another's, and
 * a secret changed by the PBX's writer stops working within a second.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createCdrFixture, FIXTURE_DAY } from '../cdr-fixture'
import { buildMikoPbxFixture, FIXTURE_PEERS, PBX_CHANGES } from '../mikopbx-fixture'
import { NginxProcess } from './nginx-process'
import { BASE, ServerProcess } from './server-process'

const { alice, bob, orphan } = FIXTURE_PEERS
/** The inner call of 201 and 202 in the CDR fixture, where MikoPBX keeps its recording. */
const RECORDING = '2026/11/23/09/L-inner.201.202.mp3'
const RECORDING_BYTES = crypto.getRandomValues(new Uint8Array(2048))

const nginx = new NginxProcess()
const server = new ServerProcess()
const pbxDb = join(nginx.prefix, 'mikopbx.db')

beforeAll(async () => {
  buildMikoPbxFixture(pbxDb)
  const cdrDb = join(nginx.prefix, 'cdr.db')
  createCdrFixture(cdrDb)
  mkdirSync(dirname(join(nginx.recordings, RECORDING)), { recursive: true, mode: 0o755 })
  writeFileSync(join(nginx.recordings, RECORDING), RECORDING_BYTES, { mode: 0o644 })
  await server.start(['--directory', 'mikopbx', '--mikopbx-db', pbxDb, '--cdr-db', cdrDb])
  await nginx.start({ backendPort: server.port })
}, 30_000)

afterAll(async () => {
  await nginx.cleanup()
  await server.cleanup()
})

const api = (path: string, init: RequestInit = {}) => fetch(`${nginx.url}${BASE}${path}`, init)
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })

async function login(username: string, password: string): Promise<Response> {
  return api('/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) })
}

async function accessToken(username: string, password: string): Promise<string> {
  const response = await login(username, password)
  expect(response.status).toBe(200)
  return ((await response.json()) as { access_token: string }).access_token
}

test('a PBX extension logs in with its SIP secret and sees its profile, history and calls', async () => {
  const token = await accessToken(alice.extension, alice.secret)
  expect(await (await api('/profile', bearer(token))).json()).toMatchObject({
    user: { id: alice.userId, username: alice.extension, display_name: alice.displayName },
  })

  const history = (await (await api(`/history?date=${FIXTURE_DAY}`, bearer(token))).json()) as {
    user: { mobile: string }
    history: Array<{ id: string }>
    history_source: string
  }
  expect(history.user.mobile).toBe(alice.mobile)
  expect(history.history_source).toBe('cdr')
  const ids = history.history.map((call) => call.id)
  expect(ids).toContain('L-inner')
  expect(ids).not.toContain('L-other')

  const calls = (await (await api(`/calls?from=${FIXTURE_DAY}&to=${FIXTURE_DAY}`, bearer(token))).json()) as {
    calls: Array<{ id: string; legs: Array<{ recording_url: string | null }> }>
  }
  expect(calls.calls.map((call) => call.id)).toEqual(ids)
  const inner = calls.calls.find((call) => call.id === 'L-inner')!
  expect(inner.legs[0]!.recording_url).toBe(`/pbxcore/softphone/recordings/${RECORDING}`)
}, 30_000)

test('through nginx, a call\'s recording opens for its parties and not for another extension', async () => {
  const recording = (token: string) => fetch(`${nginx.url}/pbxcore/softphone/recordings/${RECORDING}?authorization=${token}`)
  for (const peer of [alice, bob]) {
    const response = await recording(await accessToken(peer.extension, peer.secret))
    expect(response.status).toBe(200)
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(RECORDING_BYTES)
  }
  const stranger = await recording(await accessToken(orphan.extension, orphan.secret))
  expect(stranger.status).toBe(403)
}, 30_000)

test('a secret changed by the PBX\'s writer refuses the old one within a second', async () => {
  const writer = Bun.spawn([
    process.execPath,
    '-e',
    `import { Database } from 'bun:sqlite'
     const db = new Database(${JSON.stringify(pbxDb)})
     db.run('PRAGMA busy_timeout = 5000')
     db.query(${JSON.stringify(PBX_CHANGES.setSecret)}).run(${JSON.stringify(bob.extension)}, 'Bob-new-secret-202')
     db.close()`,
  ])
  expect(await writer.exited).toBe(0)
  const changed = Date.now()
  while ((await login(bob.extension, bob.secret)).status !== 401) {
    expect(Date.now() - changed).toBeLessThan(1500)
    await Bun.sleep(20)
  }
  expect((await login(bob.extension, 'Bob-new-secret-202')).status).toBe(200)
}, 30_000)
