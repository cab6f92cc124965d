/**
 * The admin API against the running compiled binary (README "Admin API"): there the directory is
 * cached, so a change made through the API must reach the next request at once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { ServerProcess } from './server-process'

setDefaultTimeout(30_000)

let server: ServerProcess
let admin: string

beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('900', 'Root-pass-900', ['--role', 'superadmin'])
  await server.start()
  admin = (await server.login('900', 'Root-pass-900')).access_token
})
afterAll(() => server.cleanup())

const call = (token: string, method: string, path: string, body?: unknown) =>
  fetch(`${server.baseUrl}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
const profileStatus = async (token: string) => (await fetch(`${server.baseUrl}/profile`, { headers: { authorization: `Bearer ${token}` } })).status

describe('admin API in the binary', () => {
  test('a user created through the API logs in; disabled, its token fails at the next request', async () => {
    expect((await call(admin, 'POST', '/users', { username: '201', password: 'User-pass-201', display_name: 'Alice' })).status).toBe(201)
    const user = await server.login('201', 'User-pass-201')
    // Looked up once, so the cached directory holds the enabled user.
    expect(await profileStatus(user.access_token)).toBe(200)
    expect((await call(admin, 'POST', '/users/201/disable')).status).toBe(200)
    expect(await profileStatus(user.access_token)).toBe(401)
    expect((await server.postLogin('201', 'User-pass-201', '10.0.0.7')).status).toBe(401)
    expect((await call(admin, 'POST', '/users/201/enable')).status).toBe(200)
    expect((await server.postLogin('201', 'User-pass-201', '10.0.0.7')).status).toBe(200)
  })

  test('a role change counts at the next request; revoked sessions fail at once', async () => {
    const user = await server.login('201', 'User-pass-201')
    expect((await call(user.access_token, 'GET', '/users')).status).toBe(403)
    expect((await call(admin, 'PATCH', '/users/201', { role: 'admin' })).status).toBe(200)
    expect((await call(user.access_token, 'GET', '/users')).status).toBe(200)
    expect((await call(user.access_token, 'DELETE', '/users/900')).status).toBe(403)
    expect((await call(admin, 'DELETE', '/users/201/sessions')).status).toBe(200)
    expect(await profileStatus(user.access_token)).toBe(401)
  })

  test('the last superadmin stays, and the security log names the actor of every change', async () => {
    expect((await call(admin, 'DELETE', '/users/900')).status).toBe(409)
    const log = await (await call(admin, 'GET', '/security-log?user=201&limit=10')).json()
    const actions = log.events.filter((event: { actor?: string }) => event.actor === '900').map((event: { event: string }) => event.event)
    expect(actions).toEqual(['SESSION_REVOKED', 'USER_UPDATED', 'USER_ENABLED', 'USER_DISABLED', 'USER_ADDED'])
    expect(JSON.stringify(log)).not.toContain('User-pass-201')
  })
})
