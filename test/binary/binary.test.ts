/**
 * End-to-end through the compiled binary: the README's curl walkthrough, the CLI, signals, and a
 * grep of everything the process wrote for the secrets it handled.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BINARY, runCli, ServerProcess } from './server-process'

const PASSWORD = 'Pw-201-canary-7f3a'
let server: ServerProcess
const seenSecrets: string[] = [PASSWORD]

beforeAll(async () => {
  expect(existsSync(BINARY)).toBe(true)
  server = new ServerProcess()
  await server.addUser('201', PASSWORD, ['--name', 'Alice'])
  await server.start()
})
afterAll(() => server.cleanup())

const post = (path: string, init: { token?: string; body?: unknown } = {}) =>
  fetch(`${server.baseUrl}${path}`, {
    method: 'POST',
    headers: {
      ...(init.token && { authorization: `Bearer ${init.token}` }),
      ...(init.body !== undefined && { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })
const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.baseUrl}${path}`, { headers })
/** Repeats a request until it answers `status` or `ms` pass; returns the last status seen. */
async function statusWithin(ms: number, status: number, send: () => Promise<Response>): Promise<number> {
  const deadline = Date.now() + ms
  for (;;) {
    const seen = (await send()).status
    if (seen === status || Date.now() > deadline) return seen
    await Bun.sleep(10)
  }
}
const logEvents = () =>
  readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, string>)

describe('the README walkthrough', () => {
  let access = ''
  let refresh = ''

  test('health', async () => {
    const response = await get('/health')
    expect(response.status).toBe(200)
    expect((await response.json()).status).toBe('ok')
  })

  test('login', async () => {
    const response = await post('/auth/login', { body: { username: '201', password: PASSWORD } })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
    const body = await response.json()
    expect(body).toMatchObject({ success: true, token_type: 'Bearer', expires_in: 3600 })
    access = body.access_token
    refresh = body.refresh_token
    seenSecrets.push(access, refresh)
  })

  test('profile', async () => {
    const response = await get('/profile', { authorization: `Bearer ${access}` })
    expect(await response.json()).toEqual({ success: true, user: { id: 1, username: '201', role: 'user', display_name: 'Alice' } })
  })

  test('refresh', async () => {
    const response = await post('/auth/refresh', { token: refresh })
    expect(response.status).toBe(200)
    const body = await response.json()
    expect(Object.keys(body)).toEqual(['success', 'access_token', 'token_type', 'expires_in', 'refresh_token'])
    seenSecrets.push(body.refresh_token)
    seenSecrets.push(body.access_token)
    expect((await get('/profile', { authorization: `Bearer ${body.access_token}` })).status).toBe(200)
  })

  test('check-media-access, as nginx asks it: without a CDR only admins open recordings, as the start-up says', async () => {
    const response = await get('/check-media-access', { 'x-original-uri': `/pbxcore/softphone/recordings/a.mp3?authorization=${access}` })
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ code: 'recording_forbidden' })
    expect(server.stdout).toContain('recordings: no call-history source, so only admins open recordings')
    expect((await get('/check-media-access', { authorization: `Bearer ${access}` })).status).toBe(200)
  })

  test('logout, after which the token is refused, also after a restart', async () => {
    const response = await post('/auth/logout', { token: access })
    expect(await response.json()).toEqual({ success: true, message: 'Logged out successfully' })
    const refused = await get('/profile', { authorization: `Bearer ${access}` })
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="softphone", error="invalid_token"')

    expect(await server.stop('SIGTERM')).toBe(0)
    await server.start()
    expect((await get('/profile', { authorization: `Bearer ${access}` })).status).toBe(401)
    expect((await get('/check-media-access', { authorization: `Bearer ${access}` })).status).toBe(401)
  })

  test('the README error examples', async () => {
    const wrong = await post('/auth/login', { body: { username: '201', password: 'wrong' } })
    expect(wrong.status).toBe(401)
    expect((await wrong.json()).error).toBe('Invalid credentials')
    const empty = await post('/auth/login', { body: { username: '201', password: '' } })
    expect(empty.status).toBe(400)
    expect((await empty.json()).error).toBe('Invalid credentials provided')
    const none = await get('/profile')
    expect(none.status).toBe(401)
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    expect((await none.json()).error).toBe('Unauthorized. Token required')
    const wrongType = await post('/auth/refresh', { token: (await server.login('201', PASSWORD)).access_token })
    expect(wrongType.status).toBe(403)
    expect((await wrongType.json()).error).toBe('Invalid token type. Refresh token required')
    const notFound = await get('/nope')
    expect(notFound.status).toBe(404)
  })

  test('the security log holds the flow, and with the process output, none of its secrets', () => {
    const events = logEvents().map((event) => event.event)
    for (const name of ['KEY_GENERATED', 'STARTUP', 'AUTH_SUCCESS', 'TOKEN_REFRESH', 'LOGOUT', 'SHUTDOWN', 'AUTH_FAILED']) {
      expect(events).toContain(name)
    }
    const key = readFileSync(join(server.dataDir, 'secret.key'), 'latin1').trim()
    const written = [readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8'), server.stdout, server.stderr].join('\n')
    for (const secret of [...seenSecrets, key]) {
      expect(written.includes(secret)).toBe(false)
      // Token signatures alone must not appear either.
      if (secret.split('.').length === 3) expect(written.includes(secret.split('.')[2]!)).toBe(false)
    }
  })
})

describe('operations', () => {
  test('SIGHUP reopens the security log after logrotate renamed it', async () => {
    const path = join(server.dataDir, 'log', 'security.log')
    renameSync(path, `${path}.1`)
    server.signal('SIGHUP')
    // The signal is handled asynchronously: retry the failing login until its event lands in the new file.
    const landed = () => existsSync(path) && logEvents().some((event) => event.event === 'AUTH_FAILED')
    for (let i = 0; i < 50 && !landed(); i++) {
      await post('/auth/login', { body: { username: '201', password: 'wrong' } })
      await Bun.sleep(20)
    }
    expect(logEvents().some((event) => event.event === 'AUTH_FAILED')).toBe(true)
  })

  test('a second instance on the same port fails loudly with exit 69', async () => {
    const result = await runCli(['serve', '--data-dir', server.dataDir, '--port', String(server.port)])
    expect(result.exitCode).toBe(69)
    expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${server.port}`)
  })

  test('SIGTERM exits 0 quickly and logs SHUTDOWN', async () => {
    const started = Date.now()
    expect(await server.stop('SIGTERM')).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(logEvents().at(-1)?.event).toBe('SHUTDOWN')
    await server.start()
  })

  test('SIGTERM right after the listening line still exits 0', async () => {
    const fresh = new ServerProcess()
    try {
      await fresh.start()
      expect(await fresh.stop('SIGTERM')).toBe(0)
    } finally {
      await fresh.cleanup()
    }
  })

  test('users disable/enable through the CLI take effect on the running server', async () => {
    const { access_token } = await server.login('201', PASSWORD)
    expect((await runCli(['users', 'disable', '201', '--data-dir', server.dataDir])).exitCode).toBe(0)
    // The server learns of the other process's commit through a file watch, at worst its 1 s poll.
    expect(await statusWithin(1500, 401, () => get('/profile', { authorization: `Bearer ${access_token}` }))).toBe(401)
    expect((await post('/auth/login', { body: { username: '201', password: PASSWORD } })).status).toBe(401)
    expect((await runCli(['users', 'enable', '201', '--data-dir', server.dataDir])).exitCode).toBe(0)
    expect(await statusWithin(1500, 200, () => get('/profile', { authorization: `Bearer ${access_token}` }))).toBe(200)
    const list = await runCli(['users', 'list', '--data-dir', server.dataDir])
    expect(list.stdout).toBe('1\t201\tuser\tenabled\tAlice\n')
  })
})

describe('sessions through the CLI', () => {
  test('list shows the user\'s sessions; revoke ends them on the running server', async () => {
    await server.addUser('207', PASSWORD)
    const one = await server.login('207', PASSWORD)
    const two = await server.login('207', PASSWORD)
    const list = await runCli(['sessions', 'list', '--user', '207', '--data-dir', server.dataDir])
    expect(list.exitCode).toBe(0)
    expect(list.stdout.trim().split('\n')).toHaveLength(2)
    expect(list.stdout).toContain('127.0.0.1')
    const revoke = await runCli(['sessions', 'revoke', '--user', '207', '--data-dir', server.dataDir])
    expect(revoke).toMatchObject({ exitCode: 0, stdout: 'ended 2 sessions of 207\n' })
    for (const token of [one.access_token, two.access_token]) {
      expect(await statusWithin(1500, 401, () => get('/profile', { authorization: `Bearer ${token}` }))).toBe(401)
    }
    expect((await post('/auth/refresh', { token: one.refresh_token })).status).toBe(401)
    expect((await runCli(['sessions', 'list', '--user', '207', '--data-dir', server.dataDir])).stdout).toBe('')
  })
})

describe('the command line', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'softphone-cli-'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('--version prints the package version', async () => {
    const { version } = await Bun.file('package.json').json()
    expect(await runCli(['--version'])).toEqual({ exitCode: 0, stdout: `${version}\n`, stderr: '' })
  })

  test('--help and config --help document every key', async () => {
    expect((await runCli(['--help'])).stdout).toContain('users ...')
    const help = await runCli(['config', '--help'])
    for (const key of ['host', 'port', 'base_path', 'trusted_proxies', 'data_dir', 'secret_key_path', 'log_dir', 'access_ttl', 'refresh_ttl']) {
      expect(help.stdout).toContain(`SOFTPHONE_${key.toUpperCase()}`)
    }
  })

  test('a bad value stops the start with one line and exit 78', async () => {
    const result = await runCli(['serve', '--data-dir', dir, '--port', 'eighty'])
    expect(result).toEqual({ exitCode: 78, stdout: '', stderr: 'softphone-backend: config error: port must be an integer (from --port)\n' })
  })

  test('an unknown key in the config file stops the start with exit 78', async () => {
    const path = join(dir, 'config.toml')
    writeFileSync(path, `data_dir = "${dir}"\nlisten = "0.0.0.0"\n`)
    const result = await runCli(['serve', '--config', path])
    expect(result.exitCode).toBe(78)
    expect(result.stderr).toBe(`softphone-backend: config error: listen unknown key (from ${path})\n`)
  })

  test('a bad environment value is named with its variable', async () => {
    const result = await runCli(['serve', '--data-dir', dir], { env: { SOFTPHONE_ACCESS_TTL: '1h' } })
    expect(result.exitCode).toBe(78)
    expect(result.stderr).toContain('access_ttl must be an integer (from SOFTPHONE_ACCESS_TTL)')
  })

  test('an unknown option is a usage error, exit 64', async () => {
    const result = await runCli(['serve', '--prot', '1'])
    expect(result.exitCode).toBe(64)
    expect(result.stderr).toContain('unknown option --prot')
  })

  test('a world-readable key file stops the start with exit 78 and the fix', async () => {
    const keyPath = join(dir, 'world.key')
    writeFileSync(keyPath, 'cd'.repeat(32))
    chmodSync(keyPath, 0o644)
    const result = await runCli(['serve', '--data-dir', dir, '--secret-key-path', keyPath, '--port', '0'])
    expect(result.exitCode).toBe(78)
    expect(result.stderr).toContain(`chmod 600 ${keyPath}`)
    expect(result.stderr).not.toContain('cdcd')
  })

  test('a corrupt database stops the start with exit 74 and is left in place', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'softphone-corrupt-'))
    try {
      writeFileSync(join(dataDir, 'softphone.db'), 'garbage'.repeat(1000))
      const result = await runCli(['serve', '--data-dir', dataDir, '--port', '0'])
      expect(result.exitCode).toBe(74)
      expect(result.stderr).toContain('is unusable')
      expect(readFileSync(join(dataDir, 'softphone.db'), 'utf8')).toBe('garbage'.repeat(1000))
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })

  test('users add without --password-stdin and without a terminal explains what to do', async () => {
    const result = await runCli(['users', 'add', '301', '--data-dir', dir])
    expect(result.exitCode).toBe(64)
    expect(result.stderr).toContain('--password-stdin')
  })
})

describe('migrating from ModuleSoftphoneBackend', () => {
  test('tokens the PHP module signed with its secret.key stay valid', async () => {
    const legacy = new ServerProcess()
    try {
      const keyText = createHmac('sha256', 'seed').update('legacy').digest('hex')
      const keyPath = join(legacy.dataDir, 'legacy-secret.key')
      writeFileSync(keyPath, `${keyText}\n`, { mode: 0o600 })
      await legacy.addUser('201', PASSWORD)
      await legacy.start(['--secret-key-path', keyPath])
      const now = Math.floor(Date.now() / 1000)
      const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
      const input = `${encode({ typ: 'JWT', alg: 'HS256' })}.${encode({ iat: now, exp: now + 3600, sub: 1, username: '201', role: 'user', type: 'access' })}`
      const token = `${input}.${createHmac('sha256', Buffer.from(keyText, 'ascii')).update(input).digest('base64url')}`
      const response = await fetch(`${legacy.baseUrl}/profile`, { headers: { authorization: `Bearer ${token}` } })
      expect(response.status).toBe(200)
      expect((await response.json()).user.username).toBe('201')
    } finally {
      await legacy.cleanup()
    }
  })
})
