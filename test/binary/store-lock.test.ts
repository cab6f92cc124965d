/**
 * Another process holds the database's write lock: for 3 s requests wait and succeed
 * (busy timeout 5 s); for longer they get a clean 503 with Retry-After, and the server lives on.
 * Commands meet the same lock: they wait, or stop with one line and exit 75.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { join } from 'node:path'
import { runCli, ServerProcess } from './server-process'

let server: ServerProcess
beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('201', 'Pw-201-secret')
  await server.start()
})
afterAll(() => server.cleanup())

/** Starts a process that takes the write lock, holds it `ms`, and resolves once it holds it. */
async function holdWriteLock(ms: number): Promise<ReturnType<typeof Bun.spawn>> {
  const script = `
    import { Database } from 'bun:sqlite'
    const db = new Database(${JSON.stringify(join(server.dataDir, 'softphone.db'))})
    db.run('BEGIN IMMEDIATE')
    db.run("UPDATE users SET display_name = display_name")
    console.log('locked')
    await Bun.sleep(${ms})
    db.run('COMMIT')`
  const holder = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'inherit' })
  const reader = (holder.stdout as ReadableStream<Uint8Array>).getReader()
  const { value } = await reader.read()
  expect(new TextDecoder().decode(value)).toContain('locked')
  return holder
}

const login = () =>
  fetch(`${server.baseUrl}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: '201', password: 'Pw-201-secret' }),
  })

test('a lock held for 3 s: a login waits and succeeds', async () => {
  const holder = await holdWriteLock(3000)
  const started = Date.now()
  const response = await login()
  expect(response.status).toBe(200)
  expect(Date.now() - started).toBeGreaterThan(1500)
  expect(await holder.exited).toBe(0)
}, 15_000)

test('a lock held for 8 s: a clean 503 with Retry-After, then service as usual', async () => {
  const holder = await holdWriteLock(8000)
  const response = await login()
  expect(response.status).toBe(503)
  expect(response.headers.get('retry-after')).toBe('1')
  expect(await response.json()).toMatchObject({ success: false, code: 'store_busy', error: 'Service busy, try again' })
  expect(await holder.exited).toBe(0)
  expect((await login()).status).toBe(200)
  expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200)
}, 20_000)

test('commands wait for a short lock; one held past the busy timeout stops them with one line and exit 75, changing nothing', async () => {
  const short = await holdWriteLock(1500)
  const added = await runCli(['users', 'add', '202', '--password-stdin', '--data-dir', server.dataDir], { stdin: 'Pw-202-secret' })
  expect(added.exitCode).toBe(0)
  expect(await short.exited).toBe(0)

  // Parallel adds, as an operator's script might run them: each waits its turn.
  const parallel = await Promise.all(['210', '211', '212', '213'].map((user) => runCli(['users', 'add', user, '--password-stdin', '--data-dir', server.dataDir], { stdin: `Pw-${user}-secret` })))
  expect(parallel.map((result) => result.exitCode)).toEqual([0, 0, 0, 0])

  const long = await holdWriteLock(8000)
  const refused = await runCli(['users', 'add', '203', '--password-stdin', '--data-dir', server.dataDir], { stdin: 'Pw-203-secret' })
  expect({ code: refused.exitCode, stderr: refused.stderr }).toMatchObject({ code: 75 })
  expect(refused.stderr.trim().split('\n')).toHaveLength(1)
  expect(refused.stderr).toContain('locked by another process')
  expect(refused.stderr).not.toContain(' at ')
  expect(await long.exited).toBe(0)
  expect((await runCli(['users', 'list', '--data-dir', server.dataDir])).stdout).not.toContain('203')
}, 30_000)
