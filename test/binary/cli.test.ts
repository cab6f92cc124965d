/**
 * The command line does what it says (README "Command line"), through the compiled binary: passwords
 * typed on a real terminal, usage errors and read-only commands that create nothing, unknown users,
 * an uncreatable data dir, operator actions in the security log, and `config check`.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Database } from 'bun:sqlite'
import { digestHa1 } from '../../src/auth/digest'
import { runCli, runInTerminal, ServerProcess } from './server-process'

// Some tests run several processes that each hash with argon2id; on a busy machine 5 s is too little.
setDefaultTimeout(30_000)

const PASSWORD = 'Typed-201-secret'
let server: ServerProcess
let scratch: string

beforeAll(async () => {
  server = new ServerProcess()
  scratch = mkdtempSync(join(tmpdir(), 'softphone-cli-'))
  await server.start()
})
afterAll(async () => {
  await server.cleanup()
  rmSync(scratch, { recursive: true, force: true })
})

const onServer = (...args: string[]) => [...args, '--data-dir', server.dataDir]
const loginStatus = async (username: string, password: string) =>
  (
    await fetch(`${server.baseUrl}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    })
  ).status
const listedUsers = async () => (await runCli(onServer('users', 'list'))).stdout
const logEvents = () =>
  readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
/** A fresh path inside the scratch dir that doesn't exist yet. */
let paths = 0
const absentDir = () => join(scratch, `absent-${++paths}`)

describe('passwords typed on a terminal', () => {
  const typedTwice = (password: string, again = password): Array<[string, string]> => [
    ['Password: ', password],
    ['Repeat password: ', again],
  ]

  test('users add prompts twice without echo, adds the user, and the password logs in', async () => {
    const result = await runInTerminal(onServer('users', 'add', '201', '--name', 'Alice'), typedTwice(PASSWORD))
    expect(result.exitCode).toBe(0)
    expect(result.shown).toContain('added 201 (id 1, role user)')
    expect(result.shown).not.toContain(PASSWORD)
    expect(await listedUsers()).toBe('1\t201\tuser\tenabled\tAlice\n')
    expect(await loginStatus('201', PASSWORD)).toBe(200)
  })

  test('users passwd prompts twice and changes the password', async () => {
    const result = await runInTerminal(onServer('users', 'passwd', '201'), typedTwice('Changed-201-secret'))
    expect(result.exitCode).toBe(0)
    expect(result.shown).toContain('password changed for 201')
    expect(await loginStatus('201', 'Changed-201-secret')).toBe(200)
    expect(await loginStatus('201', PASSWORD)).toBe(401)
    await runInTerminal(onServer('users', 'passwd', '201'), typedTwice(PASSWORD))
  })

  test('passwords that differ change nothing and exit non-zero', async () => {
    const passwd = await runInTerminal(onServer('users', 'passwd', '201'), typedTwice('Other-201-secret', 'Other-201-secreT'))
    expect(passwd.exitCode).toBe(1)
    expect(passwd.shown).toContain('the two passwords differ; nothing was changed')
    expect(await loginStatus('201', PASSWORD)).toBe(200)
    const add = await runInTerminal(onServer('users', 'add', '202'), typedTwice('New-202-secret', 'New-202-secreT'))
    expect(add.exitCode).toBe(1)
    expect(await listedUsers()).not.toContain('202')
  })
})

describe('password_min_length', () => {
  test('a too short password is refused with the rule named, and changes nothing', async () => {
    const add = await runCli(onServer('users', 'add', '203', '--password-stdin'), { stdin: 'Short-7' })
    expect(add).toMatchObject({ exitCode: 1, stderr: 'softphone-backend: the password is shorter than 8 characters (password_min_length)\n' })
    expect(await listedUsers()).not.toContain('203')
    const passwd = await runCli(onServer('users', 'passwd', '201', '--password-stdin'), { stdin: 'Short-7' })
    expect(passwd.exitCode).toBe(1)
    expect(await loginStatus('201', PASSWORD)).toBe(200)
  })

  test('the key raises the minimum', async () => {
    const result = await runCli(onServer('users', 'add', '203', '--password-stdin', '--password-min-length', '20'), { stdin: 'Nineteen-characters' })
    expect(result.exitCode).toBe(1)
    expect(result.stderr).toContain('shorter than 20 characters')
  })
})

describe('digest_realm', () => {
  test('users add stores the HA1 of the new password for the configured realm, both algorithms', async () => {
    const add = await runCli(onServer('users', 'add', '204', '--password-stdin', '--digest-realm', 'pbx.example.org'), { stdin: 'Digest-204-secret' })
    expect(add.exitCode).toBe(0)
    const db = new Database(join(server.dataDir, 'softphone.db'), { readonly: true })
    try {
      const rows = db.query('SELECT d.realm, d.algorithm, d.ha1 FROM digest_ha1 d JOIN users u ON u.id = d.user_id WHERE u.username = ? ORDER BY d.algorithm').all('204')
      expect(rows).toEqual([
        { realm: 'pbx.example.org', algorithm: 'MD5', ha1: digestHa1('MD5', '204', 'pbx.example.org', 'Digest-204-secret') },
        { realm: 'pbx.example.org', algorithm: 'SHA-256', ha1: digestHa1('SHA-256', '204', 'pbx.example.org', 'Digest-204-secret') },
      ])
    } finally {
      db.close()
    }
  })
})

describe('usage errors and read-only commands create nothing', () => {
  const nothingCreated: Array<[string[], number]> = [
    [['users', 'bogus'], 64],
    [['users', 'add'], 64],
    [['users', 'add', 'no/slash', '--password-stdin'], 64],
    [['users', 'add', '204', '--role', 'root', '--password-stdin'], 64],
    [['sessions', 'list'], 64],
    [['sessions', 'bogus', '--user', '201'], 64],
    [['config', 'bogus'], 64],
    [['bogus'], 64],
    [['users', 'list'], 66],
    [['sessions', 'list', '--user', '201'], 66],
    [['users', 'disable', '201'], 66],
    [['sessions', 'revoke', '--user', '201'], 66],
    [['config', 'check'], 0],
  ]
  for (const [args, exitCode] of nothingCreated) {
    test(`${args.join(' ')}: exit ${exitCode}, and the default data dir is not created`, async () => {
      const dataDir = absentDir()
      // STATE_DIRECTORY is the default data dir, as under systemd: no --data-dir given.
      const result = await runCli(args, { stdin: 'Never-used-pw', env: { STATE_DIRECTORY: dataDir } })
      expect(result.exitCode).toBe(exitCode)
      expect(existsSync(dataDir)).toBe(false)
    })
  }

  test('a read-only command says the database is missing', async () => {
    const dataDir = absentDir()
    const result = await runCli(['users', 'list', '--data-dir', dataDir])
    expect(result.stderr).toBe(
      `softphone-backend: no database at ${dataDir}/softphone.db yet (wrong --data-dir?); \`softphone-backend users add\` creates it\n`,
    )
  })

  test('read-only commands on an existing database create no log dir', async () => {
    const dataDir = absentDir()
    expect((await runCli(['users', 'add', '201', '--password-stdin', '--data-dir', dataDir, '--log-dir', join(dataDir, 'ops')], { stdin: PASSWORD })).exitCode).toBe(0)
    for (const args of [['users', 'list'], ['sessions', 'list', '--user', '201']]) {
      expect((await runCli([...args, '--data-dir', dataDir])).exitCode).toBe(0)
    }
    expect(existsSync(join(dataDir, 'log'))).toBe(false)
  })

  test('the first users add creates the data dir and the database', async () => {
    const dataDir = absentDir()
    const result = await runCli(['users', 'add', '201', '--password-stdin', '--data-dir', dataDir], { stdin: PASSWORD })
    expect(result.exitCode).toBe(0)
    expect(existsSync(join(dataDir, 'softphone.db'))).toBe(true)
  })
})

describe('unknown users', () => {
  const commands = [
    ['users', 'disable', '999'],
    ['users', 'enable', '999'],
    ['users', 'remove', '999'],
    // Named before any prompt: without --password-stdin and without a terminal this would be a usage error.
    ['users', 'passwd', '999'],
    ['sessions', 'list', '--user', '999'],
    ['sessions', 'revoke', '--user', '999'],
  ]
  for (const args of commands) {
    test(`${args.join(' ')} exits 1 naming the user`, async () => {
      expect(await runCli(onServer(...args))).toEqual({ exitCode: 1, stdout: '', stderr: 'softphone-backend: no such user: 999\n' })
    })
  }

  test('adding an existing user is refused before the password is read', async () => {
    expect(await runCli(onServer('users', 'add', '201'))).toMatchObject({ exitCode: 1, stderr: 'softphone-backend: user 201 already exists\n' })
  })
})

describe('a data dir that cannot be created', () => {
  const commands: string[][] = [['serve', '--port', '0'], ['users', 'add', '201', '--password-stdin']]
  for (const args of commands) {
    test(`${args.join(' ')}: one line and exit 73`, async () => {
      const blocker = join(scratch, `file-${++paths}`)
      writeFileSync(blocker, '')
      const dataDir = join(blocker, 'data')
      const result = await runCli([...args, '--data-dir', dataDir], { stdin: PASSWORD })
      expect(result).toEqual({ exitCode: 73, stdout: '', stderr: `softphone-backend: cannot create data directory ${dataDir}: ENOTDIR\n` })
    })
  }
})

describe('operator actions in the security log', () => {
  test('each change is logged with the target user, the Unix user and SUDO_USER, never the password', async () => {
    const operator = Bun.spawnSync(['id', '-un']).stdout.toString().trim()
    const asAlice = { env: { SUDO_USER: 'alice', USER: 'not-me' } }
    const before = logEvents().length
    await runCli(onServer('users', 'add', '205', '--password-stdin'), { stdin: 'Audit-205-secret', ...asAlice })
    await runCli(onServer('users', 'passwd', '205', '--password-stdin'), { stdin: 'Audit-205-changed', ...asAlice })
    await server.login('205', 'Audit-205-changed')
    for (const action of ['disable', 'enable']) await runCli(onServer('users', action, '205'), asAlice)
    await runCli(onServer('sessions', 'revoke', '--user', '205'), asAlice)
    await runCli(onServer('users', 'remove', '205'))
    const operatorEvents = logEvents()
      .slice(before)
      .filter((event) => event.operator !== undefined)
      .map(({ ts, ...event }) => event)
    expect(operatorEvents).toEqual([
      { event: 'USER_ADDED', user: '205', reason: 'role user', operator, sudo_user: 'alice' },
      { event: 'USER_PASSWORD_CHANGED', user: '205', operator, sudo_user: 'alice' },
      { event: 'USER_DISABLED', user: '205', operator, sudo_user: 'alice' },
      { event: 'USER_ENABLED', user: '205', operator, sudo_user: 'alice' },
      { event: 'SESSION_REVOKED', user: '205', reason: 'operator revoke: 1 sessions', operator, sudo_user: 'alice' },
      { event: 'USER_REMOVED', user: '205', operator },
    ])
    // The server's own events share the file.
    expect(logEvents().some((event) => event.event === 'STARTUP')).toBe(true)
    const log = readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')
    for (const secret of ['Audit-205-secret', 'Audit-205-changed']) expect(log).not.toContain(secret)
  })
})

describe('short switches', () => {
  test('-h and -v work like --help and --version', async () => {
    expect(await runCli(['-h'])).toEqual(await runCli(['--help']))
    expect(await runCli(['users', '-h'])).toEqual(await runCli(['users', '--help']))
    expect(await runCli(['-v'])).toEqual(await runCli(['--version']))
    expect((await runCli(['-x'])).exitCode).toBe(64)
  })
})

describe('config check tells the truth', () => {
  const check = (args: string[], env: Record<string, string> = {}) => runCli(['config', 'check', ...args], { env })

  test('it names the file it loaded, or says there was none', async () => {
    const path = join(scratch, 'named.toml')
    writeFileSync(path, 'port = 9001\n')
    const named = await check(['--config', path, '--data-dir', absentDir()])
    expect(named.stdout).toStartWith(`config file: ${path}\n`)
    const none = await check(['--data-dir', absentDir()], { CONFIGURATION_DIRECTORY: absentDir() })
    expect(none.stdout).toStartWith('config file: no file (defaults, environment and flags only)\n')
  })

  test('a missing key file will be generated on first start, and config check creates neither it nor the data dir', async () => {
    const dataDir = absentDir()
    const result = await check(['--data-dir', dataDir])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain(`secret key: ${dataDir}/secret.key will be generated on first start\n`)
    expect(existsSync(dataDir)).toBe(false)
  })

  test('a present, good key file is reported ok', async () => {
    const keyPath = join(scratch, 'good.key')
    writeFileSync(keyPath, `${'ab'.repeat(32)}\n`, { mode: 0o600 })
    expect((await check(['--data-dir', absentDir(), '--secret-key-path', keyPath])).stdout).toContain(`secret key: ${keyPath} ok\n`)
  })

  const badKeys: Array<[string, (path: string) => void]> = [
    ['a short key file', (path) => writeFileSync(path, 'abcd', { mode: 0o600 })],
    ['a world-readable key file', (path) => (writeFileSync(path, 'ab'.repeat(32)), chmodSync(path, 0o644))],
    ['a key file that is a symlink', (path) => (writeFileSync(`${path}.real`, 'ab'.repeat(32), { mode: 0o600 }), symlinkSync(`${path}.real`, path))],
    ['a key file that is a directory', (path) => mkdirSync(path)],
  ]
  for (const [name, make] of badKeys) {
    test(`${name} fails with serve's message and exit code`, async () => {
      const keyPath = join(scratch, `bad-${++paths}.key`)
      make(keyPath)
      const dataDir = absentDir()
      const checked = await check(['--data-dir', dataDir, '--secret-key-path', keyPath])
      const served = await runCli(['serve', '--port', '0', '--data-dir', dataDir, '--secret-key-path', keyPath])
      expect(checked.exitCode).toBe(78)
      expect(checked.stderr).toStartWith(`softphone-backend: secret key file ${keyPath}`)
      expect({ exitCode: checked.exitCode, stderr: checked.stderr }).toEqual({ exitCode: served.exitCode, stderr: served.stderr })
    })
  }

  test('unknown SOFTPHONE_* variables are warned about on stderr, without failing', async () => {
    const result = await check(['--data-dir', absentDir()], { SOFTPHONE_PROT: '9000', SOFTPHONE_PORT: '9001' })
    expect(result.exitCode).toBe(0)
    expect(result.stderr).toBe('softphone-backend: warning: SOFTPHONE_PROT is not a configuration key and is ignored (see config --help)\n')
    expect(result.stdout).toContain('"port": 9001')
    const blocker = join(scratch, `file-${++paths}`)
    writeFileSync(blocker, '')
    const served = await runCli(['serve', '--data-dir', join(blocker, 'data')], { env: { SOFTPHONE_PROT: '9000' } })
    expect(served.stderr).toStartWith('softphone-backend: warning: SOFTPHONE_PROT is not a configuration key and is ignored (see config --help)\n')
  })

  test('config --help documents the new key and the exit codes', async () => {
    const help = (await runCli(['config', '--help'])).stdout
    expect(help).toContain('password_min_length (env SOFTPHONE_PASSWORD_MIN_LENGTH, flag --password-min-length)')
    expect(help).toContain('exit 78')
    expect(help).toContain('created: 73')
    expect((await runCli(['--help'])).stdout).toContain('73 data dir can\'t be created')
  })

  test('a TOML syntax error names its line and column', async () => {
    const path = join(scratch, 'broken.toml')
    writeFileSync(path, 'port = 9001\n\nhost "0.0.0.0"\n')
    const result = await check(['--config', path])
    expect(result).toEqual({
      exitCode: 78,
      stdout: '',
      stderr: `softphone-backend: config file ${path} is not valid TOML at line 3, column 6: Expected '=' after a key but found '"'\n`,
    })
  })

  const conflicts: Array<[string, string]> = [
    ['crm,users-state:5', 'must not redefine the built-in channel users-state'],
    ['crm,queue:3,crm', 'must not name the channel crm twice'],
  ]
  for (const [channels, problem] of conflicts) {
    test(`extra_channels ${channels}: a config error naming the key, for check and serve`, async () => {
      for (const command of [['config', 'check'], ['serve', '--port', '0']]) {
        const result = await runCli([...command, '--data-dir', absentDir(), '--extra-channels', channels])
        expect(result).toEqual({ exitCode: 78, stdout: '', stderr: `softphone-backend: config error: extra_channels ${problem} (from --extra-channels)\n` })
      }
    })
  }
})

describe('users remove', () => {
  test('ends the user\'s sessions: someone added later under the same name does not inherit them', async () => {
    expect((await runCli(onServer('users', 'add', '207', '--password-stdin'), { stdin: 'Removed-207-secret' })).exitCode).toBe(0)
    const login = await fetch(`${server.baseUrl}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: '207', password: 'Removed-207-secret' }),
    })
    const { refresh_token: refreshToken } = (await login.json()) as { refresh_token: string }
    expect((await runCli(onServer('users', 'remove', '207'))).exitCode).toBe(0)
    expect((await runCli(onServer('users', 'add', '207', '--password-stdin'), { stdin: 'Another-207-secret' })).exitCode).toBe(0)
    // The refresh token's session is checked in the store, whatever the server's memory says.
    const refreshed = await fetch(`${server.baseUrl}/auth/refresh`, { method: 'POST', headers: { authorization: `Bearer ${refreshToken}` } })
    expect(refreshed.status).toBe(401)
    expect(logEvents().filter((event) => event.user === '207').map((event) => event.event)).toContain('USER_REMOVED')
  })
})
