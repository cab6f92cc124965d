/** The command line does what it says (README "Command line"), through the compiled binary: passwords typed on a real terminal. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

describe('short switches', () => {
  test('-h and -v work like --help and --version', async () => {
    expect(await runCli(['-h'])).toEqual(await runCli(['--help']))
    expect(await runCli(['users', '-h'])).toEqual(await runCli(['users', '--help']))
    expect(await runCli(['-v'])).toEqual(await runCli(['--version']))
    expect((await runCli(['-x'])).exitCode).toBe(64)
  })
})
