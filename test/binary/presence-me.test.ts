/**
 * The personalised channels through the compiled binary (README "Personalised presence"), with
 * presence_source = "pub": a full snapshot posted to pub/ from loopback, four users' bodies, the
 * legacy channels off, and a group change by SIGHUP reaching an open stream.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { UsersStateSnapshot } from '../../src/presence/snapshot'
import { activeCalls, CALL_201_202, CALL_TO_MOBILE_201, MOBILE_201, usersState } from '../presence-fixture'
import { followStream, ServerProcess } from './server-process'

const PASSWORD = 'Pw-presence-me'
const scratch = mkdtempSync(join(tmpdir(), 'softphone-presence-me-'))
const configFile = join(scratch, 'config.toml')
const writeConfig = (groups: string[]) =>
  writeFileSync(configFile, `presence_source = "pub"\npresence_scope_calls = "own"\npresence_groups = ${JSON.stringify(groups)}\n`)

async function started(args: string[] = []): Promise<{ server: ServerProcess; tokens: Map<string, string> }> {
  const server = new ServerProcess()
  await server.addUser('201', PASSWORD, ['--mobile', MOBILE_201])
  for (const username of ['202', '203']) await server.addUser(username, PASSWORD)
  await server.addUser('900', PASSWORD, ['--role', 'admin'])
  await server.start(['--config', configFile, ...args])
  const tokens = new Map<string, string>()
  for (const username of ['201', '202', '203', '900']) tokens.set(username, (await server.login(username, PASSWORD)).access_token)
  return { server, tokens }
}

const publish = (server: ServerProcess, channel: string, body: unknown) =>
  fetch(`${server.baseUrl}/pub/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

describe('presence_source = "pub", legacy channels on', () => {
  let server: ServerProcess
  let tokens: Map<string, string>
  const subscribe = (path: string, username: string, headers: Record<string, string> = {}) =>
    fetch(`${server.baseUrl}/sub/${path}?token=${tokens.get(username)}`, { headers })
  const statesOf = async (username: string) => {
    const response = await subscribe('me/users-state', username)
    expect(response.status).toBe(200)
    return ((await response.json()) as UsersStateSnapshot).states
  }

  beforeAll(async () => {
    writeConfig([])
    ;({ server, tokens } = await started())
    expect((await publish(server, 'users-state', usersState(1))).status).toBe(200)
    expect((await publish(server, 'active-calls', activeCalls(2))).status).toBe(200)
  })
  afterAll(() => server.cleanup())

  test('each of four users gets its own body', async () => {
    const caller = await statesOf('201')
    expect(caller['201']).toEqual(usersState().states['201']!)
    expect(Object.keys(caller['202']!.channels)).toEqual(['PJSIP/202-00000002'])
    expect(caller['204']!.channels).toEqual({})
    expect(caller.sales).toBeUndefined()

    const callee = await statesOf('202')
    expect(callee.sales).toEqual(usersState().states.sales!)
    expect(Object.keys(callee['201']!.channels)).toEqual(['PJSIP/201-00000001'])

    const bystander = await statesOf('203')
    expect(Object.keys(bystander)).toEqual(['201', '202', '203', '204', '205'])
    for (const extension of ['201', '202', '204']) expect(bystander[extension]!.channels).toEqual({})

    expect(await statesOf('900')).toEqual(usersState().states)
  })

  test('active-calls: the caller\'s own call and the one to its mobile; the admin\'s every call', async () => {
    const mine = await (await subscribe('me/active-calls', '201')).json()
    expect(mine).toMatchObject({ schemaVersion: 2, sequence: 2, calls: [CALL_201_202, CALL_TO_MOBILE_201] })
    expect(((await (await subscribe('me/active-calls', '900')).json()) as { calls: unknown[] }).calls).toHaveLength(4)
  })

  test('the shared channel still carries the posted body as is', async () => {
    expect(await (await subscribe('users-state', '203')).json()).toEqual(usersState(1))
  })

  test('SIGHUP with a new group: an open stream gets its new body within 1 s', async () => {
    const stream = followStream(await subscribe('me/users-state', '203', { accept: 'text/event-stream' }))
    const arrived = async (text: string, ms: number) => {
      const deadline = Date.now() + ms
      while (!stream.text().includes(text) && Date.now() < deadline) await Bun.sleep(10)
      return stream.text().includes(text)
    }
    expect(await arrived('"sequence":1', 5000)).toBe(true)
    expect(stream.text()).not.toContain('PJSIP/204-00000003')
    writeConfig(['203 204'])
    server.signal('SIGHUP')
    expect(await arrived('"PJSIP/204-00000003":{', 1000)).toBe(true)
    expect(server.stdout).toContain('presence: scope rules reloaded (states "all", calls "own", 1 group(s))')
    await stream.stop()
  })

  test('a SIGHUP with a bad configuration keeps the rules and says so in one line', async () => {
    writeFileSync(configFile, 'presence_source = "pub"\npresence_groups = "203 204"\n')
    server.signal('SIGHUP')
    const deadline = Date.now() + 5000
    while (!server.stdout.includes('scope rules kept') && Date.now() < deadline) await Bun.sleep(20)
    expect(server.stdout).toContain('presence: configuration not reloaded, scope rules kept: config error: presence_groups')
    expect(Object.keys((await statesOf('203'))['204']!.channels)).toEqual(['PJSIP/204-00000003'])
  })
})

describe('presence_source = "ingest"', () => {
  test('pub/ refuses users-state and active-calls with 409, other channels stay open', async () => {
    writeConfig([])
    const { server } = await started(['--presence-source', 'ingest'])
    try {
      for (const channel of ['users-state', 'active-calls']) expect((await publish(server, channel, { states: {} })).status).toBe(409)
      expect((await publish(server, 'contacts', { a: 1 })).status).toBe(200)
    } finally {
      await server.cleanup()
    }
  })
})

describe('legacy channels off', () => {
  let server: ServerProcess
  let tokens: Map<string, string>
  beforeAll(async () => {
    writeConfig([])
    ;({ server, tokens } = await started(['--presence-legacy-channels', 'off']))
    expect((await publish(server, 'users-state', usersState(1))).status).toBe(200)
  })
  afterAll(async () => {
    await server.cleanup()
    rmSync(scratch, { recursive: true, force: true })
  })

  test('sub/users-state and sub/active-calls answer 404 channel_off; sub/me/users-state answers', async () => {
    for (const channel of ['users-state', 'active-calls']) {
      const response = await fetch(`${server.baseUrl}/sub/${channel}?token=${tokens.get('900')}`)
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ success: false, code: 'channel_off' })
    }
    const response = await fetch(`${server.baseUrl}/sub/me/users-state?token=${tokens.get('203')}`)
    expect(response.status).toBe(200)
    expect(((await response.json()) as UsersStateSnapshot).states['203']).toEqual(usersState().states['203']!)
  })
})
