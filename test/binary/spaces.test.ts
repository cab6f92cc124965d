/**
 * `spaces` and `users … --space` through the compiled binary (README "Spaces"): what they print,
 * their refusals and exit codes, the operator lines in the security log, and a running server that
 * refuses an expired space's users once the command committed.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, ServerProcess } from './server-process'

// Each `users add` hashes with argon2id in its own process.
setDefaultTimeout(30_000)

let server: ServerProcess

beforeAll(async () => {
  server = new ServerProcess()
  await server.start()
})
afterAll(async () => {
  await server.cleanup()
})

const cli = (...args: string[]) => runCli([...args, '--data-dir', server.dataDir])
const loginStatus = async (username: string, password: string) => (await server.postLogin(username, password, '192.0.2.10')).status
const operatorEvents = () =>
  readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((event) => event.operator !== undefined)
    .map(({ ts, operator, ...event }) => event)

/** Repeats `probe` until it returns `expected` or `ms` pass (the server sees another process's commit within a second). */
async function within<T>(ms: number, expected: T, probe: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const seen = await probe()
    if (seen === expected || Date.now() > deadline) return seen
    await Bun.sleep(20)
  }
}

describe('spaces on the command line', () => {
  test('add, list, set-expiry and remove, each logged for the operator', async () => {
    const added = await cli('spaces', 'add', 'Tenant.Example', '--expires', '2099-01-31')
    expect(added).toMatchObject({ exitCode: 0, stdout: 'added space tenant.example expires 2099-01-31T00:00:00.000Z\n' })
    expect((await cli('spaces', 'add', 'other.example')).exitCode).toBe(0)
    expect((await cli('spaces', 'list')).stdout).toBe(
      'default\tnever\tactive\t0 users\nother.example\tnever\tactive\t0 users\ntenant.example\t2099-01-31T00:00:00.000Z\tactive\t0 users\n',
    )
    expect((await cli('spaces', 'set-expiry', 'tenant.example', '2000-01-01T00:00:00+01:00')).stdout).toBe(
      'space tenant.example expires 1999-12-31T23:00:00.000Z\n',
    )
    expect((await cli('spaces', 'list')).stdout).toContain('tenant.example\t1999-12-31T23:00:00.000Z\texpired\t0 users\n')
    expect((await cli('spaces', 'set-expiry', 'tenant.example', 'never')).stdout).toBe('space tenant.example never expires\n')
    expect(await cli('spaces', 'remove', 'other.example')).toMatchObject({ exitCode: 0, stdout: 'removed space other.example\n' })
    expect(operatorEvents()).toEqual([
      { event: 'SPACE_ADDED', reason: 'space tenant.example expires 2099-01-31T00:00:00.000Z' },
      { event: 'SPACE_ADDED', reason: 'space other.example never expires' },
      { event: 'SPACE_EXPIRY_CHANGED', reason: 'space tenant.example expires 1999-12-31T23:00:00.000Z' },
      { event: 'SPACE_EXPIRY_CHANGED', reason: 'space tenant.example never expires' },
      { event: 'SPACE_REMOVED', reason: 'space other.example' },
    ])
  })

  test('a user added to a space, then the space expired: the running server refuses it, others log in', async () => {
    await server.addUser('301', 'Tenant-301-secret', ['--space', 'tenant.example'])
    await server.addUser('201', 'Default-201-secret')
    expect(await loginStatus('301', 'Tenant-301-secret')).toBe(200)
    const { access_token } = await server.login('301', 'Tenant-301-secret')
    expect((await cli('spaces', 'set-expiry', 'tenant.example', '2000-01-01')).exitCode).toBe(0)
    expect(await within(3000, 403, () => loginStatus('301', 'Tenant-301-secret'))).toBe(403)
    const profile = await fetch(`${server.baseUrl}/profile`, { headers: { authorization: `Bearer ${access_token}` } })
    expect(profile.status).toBe(403)
    expect(((await profile.json()) as { code: string }).code).toBe('space_expired')
    expect(await loginStatus('201', 'Default-201-secret')).toBe(200)
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200)
  })

  test('users move changes a user\'s space, and it counts at once on the running server', async () => {
    expect(await cli('users', 'move', '301', '--space', 'default')).toMatchObject({ exitCode: 0, stdout: 'moved 301 to space default\n' })
    expect(await within(3000, 200, () => loginStatus('301', 'Tenant-301-secret'))).toBe(200)
    expect(operatorEvents().at(-1)).toEqual({ event: 'USER_SPACE_CHANGED', user: '301', reason: 'space default' })
    expect((await cli('spaces', 'list')).stdout).toContain('default\tnever\tactive\t2 users\n')
  })

  test('remove refuses a space with users, and the default space', async () => {
    await cli('users', 'move', '301', '--space', 'tenant.example')
    const busy = await cli('spaces', 'remove', 'tenant.example')
    expect(busy).toMatchObject({ exitCode: 1, stdout: '' })
    expect(busy.stderr).toContain('space tenant.example still has 1 users; move or remove them first')
    const defaultSpace = await cli('spaces', 'remove', 'default')
    expect(defaultSpace.exitCode).toBe(1)
    expect(defaultSpace.stderr).toContain('default space')
    expect((await cli('spaces', 'list')).stdout).toContain('tenant.example')
  })

  test.each([
    ['an unknown domain', ['spaces', 'set-expiry', 'nowhere.example', 'never'], 1, 'no such space: nowhere.example'],
    ['removing an unknown domain', ['spaces', 'remove', 'nowhere.example'], 1, 'no such space: nowhere.example'],
    ['a duplicate domain', ['spaces', 'add', 'TENANT.example'], 1, 'space tenant.example already exists'],
    ['a malformed date', ['spaces', 'add', 'new.example', '--expires', '31.01.2027'], 64, '--expires must be an ISO 8601 date'],
    ['a date that does not exist', ['spaces', 'set-expiry', 'tenant.example', '2027-02-30'], 64, 'the expiry must be an ISO 8601 date'],
    ['no expiry', ['spaces', 'set-expiry', 'tenant.example'], 64, 'give the expiry'],
    ['a domain that is no host name', ['spaces', 'add', 'bad_domain'], 64, 'give a domain: a host name'],
    ['no subcommand', ['spaces'], 64, 'softphone-backend spaces <command>'],
    ['users add to an unknown space', ['users', 'add', '401', '--space', 'nowhere.example', '--password-stdin'], 1, 'no such space: nowhere.example'],
    ['users move without --space', ['users', 'move', '301'], 64, 'move needs --space DOMAIN'],
  ])('%s is refused and changes nothing', async (_name, args, exitCode, message) => {
    const before = (await cli('spaces', 'list')).stdout
    const result = await cli(...args)
    expect(result.exitCode).toBe(exitCode)
    expect(result.stderr).toContain(message)
    expect((await cli('spaces', 'list')).stdout).toBe(before)
  })
})

describe('spaces and the data dir', () => {
  test('spaces list needs a database (66); spaces add creates one', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'softphone-spaces-'))
    try {
      const fresh = join(dataDir, 'fresh')
      const listed = await runCli(['spaces', 'list', '--data-dir', fresh])
      expect(listed.exitCode).toBe(66)
      expect(existsSync(fresh)).toBe(false)
      expect((await runCli(['spaces', 'add', 'first.example', '--data-dir', fresh, '--log-dir', join(dataDir, 'log')])).exitCode).toBe(0)
      expect((await runCli(['spaces', 'list', '--data-dir', fresh])).stdout).toBe('default\tnever\tactive\t0 users\nfirst.example\tnever\tactive\t0 users\n')
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})
