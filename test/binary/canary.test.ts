/**
 * The canary: unique secrets go through every flow of the binary, then every file it
 * wrote and everything it printed is searched for them. Expected hits: zero.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runCli, ServerProcess } from './server-process'

const canary = (label: string) => `canary-${label}-${randomBytes(8).toString('hex')}`
const KEY = randomBytes(32).toString('hex')
const PASSWORD = canary('password')
const WRONG_PASSWORD = canary('wrong')
const secrets: string[] = [KEY, PASSWORD, WRONG_PASSWORD]
let server: ServerProcess
const cliOutput: string[] = []

beforeAll(async () => {
  server = new ServerProcess()
  const keyPath = join(server.dataDir, 'canary.key')
  writeFileSync(keyPath, KEY, { mode: 0o600 })
  await server.addUser('201', PASSWORD)
  await server.start(['--secret-key-path', keyPath, '--throttle-account-failures', '2'])
})
afterAll(() => server.cleanup())

const send = (path: string, init: { method?: string; token?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
  fetch(`${server.baseUrl}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.body !== undefined && { 'content-type': 'application/json' }),
      ...(init.token && { authorization: `Bearer ${init.token}` }),
      ...init.headers,
    },
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  })

/** Every token the server hands out becomes a secret to search for, whole and by signature. */
function remember(body: Record<string, unknown>): void {
  for (const name of ['access_token', 'refresh_token']) {
    const token = body[name]
    if (typeof token === 'string') secrets.push(token, token.split('.')[2]!)
  }
}

test('every flow, then zero hits for any secret in files and output', async () => {
  const login = await (await send('/auth/login', { body: { username: '201', password: PASSWORD } })).json()
  remember(login)
  const second = await (await send('/auth/login', { body: { username: '201', password: PASSWORD } })).json()
  remember(second)

  // Failures and malformed input that carry secrets.
  await send('/auth/login', { body: { username: '201', password: WRONG_PASSWORD } })
  await send('/auth/login', { body: { username: '201', password: WRONG_PASSWORD } })
  await send('/auth/login', { body: { username: '201', password: PASSWORD } }) // throttled now
  await send('/auth/login', { body: `{"username":"201","password":"${WRONG_PASSWORD}"` })
  await send('/auth/login', { body: { username: '201', password: [WRONG_PASSWORD] } })
  await send('/auth/login', { body: `username=201&password=${WRONG_PASSWORD}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } })

  // Token use in every place, good and bad.
  await send('/profile', { token: login.access_token })
  await send('/profile', { token: `${login.access_token}x` })
  await send('/profile', { headers: { authorization: `Basic ${Buffer.from(`201:${PASSWORD}`).toString('base64')}` } })
  await send('/profile', { token: login.refresh_token })
  await send('/check-media-access', { headers: { 'x-original-uri': `/pbxcore/softphone/recordings/a.mp3?authorization=${login.access_token}` } })
  await send('/check-media-access', { headers: { 'x-original-uri': `/pbxcore/softphone/recordings/a.mp3?token=${login.refresh_token}` } })
  await send('/check-media-access', { headers: { cookie: `access_token=${login.access_token}x` } })
  await send(`/nope?authorization=${login.access_token}`)
  await send('/sessions', { token: login.access_token })

  // Rotation, reuse, logout.
  const rotated = await (await send('/auth/refresh', { token: login.refresh_token })).json()
  remember(rotated)
  await send('/auth/refresh', { token: rotated.refresh_token })
  await send('/auth/refresh', { token: login.refresh_token }) // reuse: the session dies
  await send('/auth/logout', { token: second.access_token })
  await send('/auth/logout-all', { token: second.access_token })

  cliOutput.push(JSON.stringify(await runCli(['users', 'list', '--data-dir', server.dataDir])))
  cliOutput.push(JSON.stringify(await runCli(['sessions', 'list', '--user', '201', '--data-dir', server.dataDir])))
  cliOutput.push(JSON.stringify(await runCli(['config', 'check', '--data-dir', server.dataDir, '--secret-key-path', join(server.dataDir, 'canary.key')])))
  expect(await server.stop('SIGTERM')).toBe(0)

  const written = filesUnder(server.dataDir)
    .filter((path) => !path.endsWith('canary.key'))
    .map((path) => ({ path, text: readFileSync(path).toString('latin1') }))
  written.push({ path: 'stdout', text: server.stdout }, { path: 'stderr', text: server.stderr }, { path: 'cli', text: cliOutput.join('\n') })
  expect(written.some(({ path }) => path.endsWith('security.log'))).toBe(true)
  expect(secrets.length).toBeGreaterThan(10)
  const hits = written.flatMap(({ path, text }) => secrets.filter((secret) => text.includes(secret)).map((secret) => `${path}: ${secret.slice(0, 24)}…`))
  expect(hits).toEqual([])
})

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}
