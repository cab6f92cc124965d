/**
 * The binary with `--directory mikopbx` (README "Running on MikoPBX") on a fixture database, while
 * a "PBX writer" subprocess changes, locks, replaces and removes it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildMikoPbxFixture, FIXTURE_PEERS, PBX_CHANGES } from '../mikopbx-fixture'
import { runCli, ServerProcess } from './server-process'

setDefaultTimeout(30_000)

const { alice, bob, carol, orphan } = FIXTURE_PEERS
/** How long a change made on the PBX may take to reach the server: the README's 1 s, plus scheduling slack. */
const CHANGE_BOUND_MS = 1500

let scratch: string
let pbxDir: string
let dbPath: string
let server: ServerProcess
let before: { bytes: Buffer; mtime: number }

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'softphone-mikopbx-bin-'))
  pbxDir = join(scratch, 'conf')
  mkdirSync(pbxDir)
  dbPath = join(pbxDir, 'mikopbx.db')
  buildMikoPbxFixture(dbPath)
  before = { bytes: readFileSync(dbPath), mtime: statSync(dbPath).mtimeMs }
  server = new ServerProcess()
  await server.start(['--directory', 'mikopbx', '--mikopbx-db', dbPath])
})
afterAll(async () => {
  await server.cleanup()
  rmSync(scratch, { recursive: true, force: true })
})

/** Every login from its own client address, so the throttle never answers instead of the directory. */
let clients = 0
const login = (username: string, password: string) => server.postLogin(username, password, `10.20.${Math.floor(++clients / 250)}.${(clients % 250) + 1}`)
const profile = (token: string) => fetch(`${server.baseUrl}/profile`, { headers: { authorization: `Bearer ${token}` } })

async function tokenFor(username: string, password: string): Promise<string> {
  const response = await login(username, password)
  expect(response.status).toBe(200)
  return ((await response.json()) as { access_token: string }).access_token
}

/** The PBX's web interface in a process of its own: one statement, values bound, then exit. */
async function pbxWrite(sql: string, ...params: string[]): Promise<void> {
  const script = `
    import { Database } from 'bun:sqlite'
    const db = new Database(${JSON.stringify(dbPath)})
    db.run('PRAGMA busy_timeout = 5000')
    db.query(${JSON.stringify(sql)}).run(...${JSON.stringify(params)})
    db.close()`
  const writer = Bun.spawn([process.execPath, '-e', script], { stdout: 'ignore', stderr: 'inherit' })
  expect(await writer.exited).toBe(0)
}

/** Polls `probe` until it holds, failing after `ms`. */
async function within(ms: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await Bun.sleep(20)
  }
}

describe('logins with SIP secrets', () => {
  test('a peer logs in with its SIP secret and its profile shows its caller id; the PBX file is untouched', async () => {
    const token = await tokenFor(alice.extension, alice.secret)
    expect(await (await profile(token)).json()).toEqual({
      success: true,
      user: { id: alice.userId, username: '201', role: 'user', display_name: 'Alice Smith' },
    })
    expect((await login(carol.extension, carol.secret)).status).toBe(401)
    expect(readFileSync(dbPath).equals(before.bytes)).toBe(true)
    expect(statSync(dbPath).mtimeMs).toBe(before.mtime)
    expect(readdirSync(pbxDir)).toEqual(['mikopbx.db'])
  })

  test('the STARTUP line names the directory and the file it reads', () => {
    const lines = readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
    expect(lines.find((line) => line.event === 'STARTUP')).toMatchObject({ directory: `mikopbx ${dbPath} (read-only)` })
  })
})

describe('changes made on the PBX while the binary serves', () => {
  test('a changed secret: the old one is refused and the new one accepted within 1 s', async () => {
    expect((await login(bob.extension, bob.secret)).status).toBe(200)
    await pbxWrite(PBX_CHANGES.setSecret, bob.extension, 'Bob-changed-202')
    await within(CHANGE_BOUND_MS, async () => (await login(bob.extension, bob.secret)).status === 401)
    expect((await login(bob.extension, 'Bob-changed-202')).status).toBe(200)
  })

  test('a disabled peer: its token gets 401 within 1 s', async () => {
    const token = await tokenFor(orphan.extension, orphan.secret)
    expect((await profile(token)).status).toBe(200)
    await pbxWrite(PBX_CHANGES.disable, orphan.extension)
    await within(CHANGE_BOUND_MS, async () => (await profile(token)).status === 401)
    expect((await login(orphan.extension, orphan.secret)).status).toBe(401)
  })

  test('a new peer can log in within 1 s', async () => {
    await pbxWrite(PBX_CHANGES.addPeer, '207', 'Peer-207-secret')
    await within(CHANGE_BOUND_MS, async () => (await login('207', 'Peer-207-secret')).status === 200)
  })

  test('the PBX writer holding the lock for 8 s: logins 503 with Retry-After, issued tokens still served, then normal', async () => {
    const token = await tokenFor(alice.extension, alice.secret)
    const script = `
      import { Database } from 'bun:sqlite'
      const db = new Database(${JSON.stringify(dbPath)})
      db.run('BEGIN EXCLUSIVE')
      db.run("UPDATE m_Sip SET description = 'edited' WHERE extension = '201'")
      console.log('locked')
      await Bun.sleep(8000)
      db.run('COMMIT')`
    const holder = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'inherit' })
    const { value } = await (holder.stdout as ReadableStream<Uint8Array>).getReader().read()
    expect(new TextDecoder().decode(value)).toContain('locked')
    expect(existsSync(`${dbPath}-journal`)).toBe(true)

    // A peer that logged in before is answered from memory until the file watch meets the lock,
    // within a second (README "Running on MikoPBX").
    let refused = await login(alice.extension, alice.secret)
    await within(CHANGE_BOUND_MS, async () => (refused = await login(alice.extension, alice.secret)).status === 503)
    expect(refused.headers.get('retry-after')).toBe('1')
    expect(await refused.json()).toMatchObject({ success: false, code: 'store_busy' })
    expect((await profile(token)).status).toBe(200)
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200)

    expect(await holder.exited).toBe(0)
    // Reads stay refused for at most the Retry-After second after the last one that met the lock.
    await within(CHANGE_BOUND_MS, async () => (await login(alice.extension, alice.secret)).status === 200)
    expect((await profile(token)).status).toBe(200)
    // The journal was the writer's; the server, reading only, leaves none behind.
    expect(readdirSync(pbxDir)).toEqual(['mikopbx.db'])
  })

  test('the file replaced by a rename (an upgrade): the new content is served', async () => {
    const next = join(pbxDir, 'mikopbx.db.new')
    buildMikoPbxFixture(next)
    const writer = Bun.spawn([process.execPath, '-e', `
      import { Database } from 'bun:sqlite'
      new Database(${JSON.stringify(next)}).query(${JSON.stringify(PBX_CHANGES.setSecret)}).run('201', 'After-upgrade-201')`])
    expect(await writer.exited).toBe(0)
    renameSync(next, dbPath)
    await within(CHANGE_BOUND_MS, async () => (await login(alice.extension, 'After-upgrade-201')).status === 200)
    expect((await login(alice.extension, alice.secret)).status).toBe(401)
  })

  test('the file deleted, then restored: 503 with Retry-After meanwhile, tokens still served, then the restored content', async () => {
    const token = await tokenFor(alice.extension, 'After-upgrade-201')
    const aside = join(scratch, 'mikopbx.db.backup')
    renameSync(dbPath, aside)
    // The watch reports it at once; a login looks at the path itself at most 100 ms later.
    let missing: Response | undefined
    await within(CHANGE_BOUND_MS, async () => (missing = await login(alice.extension, 'After-upgrade-201')).status === 503)
    expect(missing!.headers.get('retry-after')).toBe('5')
    expect((await profile(token)).status).toBe(200)

    const restored = join(scratch, 'mikopbx.db.restored')
    buildMikoPbxFixture(restored)
    renameSync(restored, dbPath)
    await within(CHANGE_BOUND_MS, async () => (await login(alice.extension, alice.secret)).status === 200)
    expect((await profile(token)).status).toBe(200)
  })
})

describe('start and the command line', () => {
  test('--directory mikopbx without the file: one line and exit 78', async () => {
    const absent = join(scratch, 'absent', 'mikopbx.db')
    const dataDir = join(scratch, 'data-absent')
    const result = await runCli(['serve', '--directory', 'mikopbx', '--mikopbx-db', absent, '--data-dir', dataDir, '--port', '0'])
    expect(result).toEqual({
      exitCode: 78,
      stdout: '',
      stderr: `softphone-backend: config error: mikopbx_db ${absent} does not exist (directory = "mikopbx" reads MikoPBX's database there)\n`,
    })
    expect(existsSync(join(dataDir, 'secret.key'))).toBe(false)
    expect(existsSync(join(dataDir, 'log'))).toBe(false)
  })

  test('config check names the directory and its file', async () => {
    const result = await runCli(['config', 'check', '--directory', 'mikopbx', '--mikopbx-db', dbPath, '--data-dir', join(scratch, 'check')])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain(`\ndirectory: mikopbx ${dbPath} (read-only) ok\n`)
  })

  test('users refuses to manage the embedded table while the MikoPBX directory serves', async () => {
    const dataDir = join(scratch, 'users')
    for (const args of [['add', '201', '--password-stdin'], ['list'], ['disable', '201']]) {
      const result = await runCli(['users', ...args, '--directory', 'mikopbx', '--data-dir', dataDir], { stdin: 'Some-password-1' })
      expect(result.exitCode).toBe(1)
      expect(result.stderr).toBe(
        'softphone-backend: users manages the embedded directory only; with directory = "mikopbx" users and their SIP secrets are managed in the MikoPBX web interface\n',
      )
    }
    expect(existsSync(dataDir)).toBe(false)
  })
})
