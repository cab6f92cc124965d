/**
 * Login bursts against the binary with its default limits (throttle_ip_failures 20,
 * throttle_account_failures 5, password_hash_concurrency 2): an office behind one NAT logging in
 * at once is never throttled, and a guessing storm from one address stops within 20 + 2 checks.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ServerProcess } from './server-process'

const USERS = Array.from({ length: 30 }, (_, i) => String(300 + i))
const server = new ServerProcess()
beforeAll(async () => {
  await Promise.all(USERS.map((user) => server.addUser(user, `Pw-office-${user}`)))
  await server.start()
}, 60_000)
afterAll(() => server.cleanup())

const login = async (username: string, password: string, ip: string) => (await server.postLogin(username, password, ip)).status

const securityLog = () => readFileSync(join(server.dataDir, 'log', 'security.log'), 'utf8')

test('30 users behind one address log in at once, and one user on 12 phones at once: all 200', async () => {
  const office = await Promise.all(USERS.map((user) => login(user, `Pw-office-${user}`, '198.51.100.20')))
  expect(office).toEqual(Array(30).fill(200))
  const phones = await Promise.all(Array.from({ length: 12 }, () => login('300', 'Pw-office-300', '198.51.100.20')))
  expect(phones).toEqual(Array(12).fill(200))
  expect(securityLog()).not.toContain('LOGIN_THROTTLED')
}, 60_000)

test('a storm of wrong passwords from one address gets at most 20 + 2 checks', async () => {
  const statuses = await Promise.all(Array.from({ length: 100 }, (_, i) => login(USERS[i % 30]!, 'wrong', '203.0.113.50')))
  const checked = statuses.filter((status) => status === 401).length
  expect(checked).toBeGreaterThan(0)
  expect(checked).toBeLessThanOrEqual(20 + 2)
  expect(statuses.filter((status) => status === 429).length).toBe(100 - checked)
  // Another address of the same users is untouched.
  expect(await login('301', 'Pw-office-301', '198.51.100.21')).toBe(200)
}, 60_000)
