/**
 * API keys through the compiled binary (README "API keys"): the CLI makes, lists and revokes them,
 * the running server takes each change up, self-made keys are bound to their address, last uses
 * reach the table only in batches (here: at shutdown), and no key is in any log or output.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, ServerProcess } from './server-process'

setDefaultTimeout(30_000)

let server: ServerProcess
/** Every key made in this file, and every line the CLI printed. */
const keys: string[] = []
let cliOutput = ''

beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('201', 'Secret-201-pw')
  await server.addUser('301', 'Secret-301-pw', ['--role', 'admin'])
  await server.start()
})
afterAll(() => server.cleanup())

async function cli(...args: string[]) {
  const result = await runCli([...args, '--data-dir', server.dataDir])
  cliOutput += result.stdout + result.stderr
  return result
}

const profile = (headers: Record<string, string>, query = '') => fetch(`${server.baseUrl}/profile${query}`, { headers })

async function eventually(condition: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await Bun.sleep(20)
  }
}

const lastUsedAt = (id: number) => {
  const db = new Database(join(server.dataDir, 'softphone.db'), { readonly: true })
  try {
    return (db.query('SELECT last_used_at FROM api_keys WHERE id = ?').get(id) as { last_used_at: number | null }).last_used_at
  } finally {
    db.close()
  }
}

describe('keys on the command line', () => {
  let id = 0
  let key = ''

  test('keys create prints the key once, on its last line; the running server takes it', async () => {
    const result = await cli('keys', 'create', '--user', '201', '--name', 'crm', '--expires', '30')
    expect(result.exitCode).toBe(0)
    const lines = result.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^created API key (\d+) for 201 \(expires .+\); it is shown only now:$/)
    key = lines.at(-1)!
    keys.push(key)
    expect(key).toMatch(/^sbk_[A-Za-z0-9_-]{43}$/)
    id = Number(/key (\d+)/.exec(lines[0]!)![1])
    await eventually(async () => (await profile({ 'x-api-key': key })).status === 200)
  })

  test('keys list shows it by prefix, never the key', async () => {
    const result = await cli('keys', 'list', '--user', '201')
    expect(result.exitCode).toBe(0)
    const [line] = result.stdout.trim().split('\n')
    expect(line!.split('\t').slice(0, 4)).toEqual([String(id), '201', 'crm', key.slice(0, 12)])
    expect(result.stdout).not.toContain(key)
  })

  test('keys revoke cuts it off in the running server within a second or so', async () => {
    const result = await cli('keys', 'revoke', String(id))
    expect(result).toMatchObject({ exitCode: 0, stdout: `revoked API key ${id} of 201\n` })
    await eventually(async () => (await profile({ 'x-api-key': key })).status === 401)
    expect(await cli('keys', 'revoke', String(id))).toMatchObject({ exitCode: 1 })
  })

  test('usage errors and unknown users', async () => {
    expect((await cli('keys', 'create')).exitCode).toBe(64)
    expect((await cli('keys', 'create', '--user', '201', '--expires', 'soon')).exitCode).toBe(64)
    expect((await cli('keys', 'revoke', 'abc')).exitCode).toBe(64)
    expect(await cli('keys', 'create', '--user', '999')).toMatchObject({ exitCode: 1, stderr: 'softphone-backend: no such user, or disabled: 999\n' })
  })

  test('operator actions are in the security log with the key id', () => {
    const events = readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((event) => event.key_id === id)
    expect(events.map((event) => [event.event, event.user, typeof event.operator])).toEqual([
      ['API_KEY_CREATED', '201', 'string'],
      ['API_KEY_REVOKED', '201', 'string'],
    ])
  })
})

describe('self-made keys over HTTP', () => {
  let made: { api_key: string; id: number }

  beforeAll(async () => {
    const { access_token } = await server.login('201', 'Secret-201-pw')
    const response = await fetch(`${server.baseUrl}/accounts/me/api_key`, {
      method: 'POST',
      headers: { authorization: `Bearer ${access_token}`, 'x-real-ip': '198.51.100.7' },
    })
    expect(response.status).toBe(200)
    made = (await response.json()) as typeof made
    keys.push(made.api_key)
  })

  test('work from the address that made them only', async () => {
    expect((await profile({ 'x-api-key': made.api_key, 'x-real-ip': '198.51.100.7' })).status).toBe(200)
    expect((await profile({ 'x-api-key': made.api_key, 'x-real-ip': '198.51.100.8' })).status).toBe(401)
  })

  test('in the query string → 400, header and cookie that differ → 400', async () => {
    expect((await profile({}, `?api_key=${made.api_key}`)).status).toBe(400)
    expect((await profile({ 'x-api-key': made.api_key, cookie: `x-api-key=${keys[0]}`, 'x-real-ip': '198.51.100.7' })).status).toBe(400)
  })

  test('last uses stay in memory while serving and are written at shutdown', async () => {
    for (let i = 0; i < 5; i++) expect((await profile({ 'x-api-key': made.api_key, 'x-real-ip': '198.51.100.7' })).status).toBe(200)
    expect(lastUsedAt(made.id)).toBeNull()
    const before = Math.floor(Date.now() / 1000)
    expect(await server.stop('SIGTERM')).toBe(0)
    expect(lastUsedAt(made.id)).toBeGreaterThanOrEqual(before - 5)
    await server.start()
    expect((await profile({ 'x-api-key': made.api_key, 'x-real-ip': '198.51.100.7' })).status).toBe(200)
  })
})

test('no key is in the security log, the server output or the CLI output (bar its one line)', () => {
  const log = readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')
  expect(keys.length).toBe(2)
  for (const key of keys) {
    expect(log).not.toContain(key)
    expect(server.stdout).not.toContain(key)
    expect(server.stderr).not.toContain(key)
    expect(cliOutput.split(key).length - 1).toBe(key === keys[0] ? 1 : 0)
  }
})
