/** The shipped fail2ban filter, run by the real fail2ban-regex over a log the binary wrote. */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ServerProcess } from './server-process'

const FILTER = 'systemd/fail2ban/filter.d/softphone-backend.conf'
let server: ServerProcess

beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('201', 'Pw-201-secret')
  await server.start(['--throttle-account-failures', '2'])
})
afterAll(() => server.cleanup())

const login = (username: string, password: string, ip: string) => server.postLogin(username, password, ip)

test('fail2ban-regex finds exactly the client addresses of failed and throttled logins', async () => {
  const fail2banRegex = Bun.which('fail2ban-regex')
  if (!fail2banRegex) throw new Error('fail2ban-regex not found: apt-get install fail2ban')
  expect((await login('201', 'wrong', '198.51.100.7')).status).toBe(401)
  expect((await login('201', 'wrong', '198.51.100.7')).status).toBe(401)
  expect((await login('201', 'wrong', '198.51.100.7')).status).toBe(401)
  expect((await login('201', 'Pw-201-secret', '198.51.100.7')).status).toBe(429)
  // A username crafted to look like another ip field must not redirect the ban.
  expect((await login('202","ip":"10.9.9.9', 'x', '2001:db8::5')).status).toBe(401)
  expect((await login('201', 'Pw-201-secret', '192.0.2.44')).status).toBe(200)
  // No valid X-Real-IP: logged with the proxy's address and a note, which must not get the proxy banned.
  expect((await login('203', 'x', 'garbage, 10.88.117.31')).status).toBe(401)

  const log = join(server.dataDir, 'log', 'security.log')
  const lines = readFileSync(log, 'utf8').trim().split('\n').map((line) => JSON.parse(line))
  const events = lines.map((line) => line.event)
  expect(events.filter((event) => event === 'AUTH_FAILED')).toHaveLength(5)
  expect(lines.at(-1)).toMatchObject({ event: 'AUTH_FAILED', ip: '127.0.0.1', ip_note: 'invalid X-Real-IP', user: '203' })
  expect(events.filter((event) => event === 'LOGIN_THROTTLED')).toHaveLength(1)

  const result = Bun.spawnSync([fail2banRegex, '-o', 'ip', log, FILTER], { stdout: 'pipe', stderr: 'pipe' })
  expect(result.exitCode).toBe(0)
  expect(result.stdout.toString().trim().split('\n')).toEqual([
    '198.51.100.7',
    '198.51.100.7',
    '198.51.100.7',
    '198.51.100.7',
    '2001:db8::5',
  ])
})
