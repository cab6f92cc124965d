/**
 * Crash safety: drive login, refresh and logout traffic at the binary, kill -9 it at a
 * random moment, restart it, and check that every logout and rotation it acknowledged still holds
 * and the database passes `PRAGMA integrity_check`. CRASH_ITERATIONS sets the count (CI runs 15;
 * the release check runs 50 or more: `CRASH_ITERATIONS=50 bun test test/binary/crash-safety`).
 */
import { afterAll, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { ServerProcess } from './server-process'

const ITERATIONS = Number(process.env.CRASH_ITERATIONS ?? 15)
const WORKERS = 4
const PASSWORD = 'Pw-crash'
const server = new ServerProcess()
afterAll(() => server.cleanup())

interface Acknowledged {
  /** Access tokens whose logout answered 200, with the refresh token of the same session. */
  logouts: Array<{ access: string; refresh: string }>
  /** A refresh token, and the successor the server answered with. */
  rotations: Array<{ from: string; to: string }>
  /** Successors whose session was sent a logout, answered or not: it may or may not have happened. */
  logoutSent: Set<string>
}

const call = (path: string, init: { token?: string; body?: unknown } = {}) =>
  fetch(`${server.baseUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.token && { authorization: `Bearer ${init.token}` }) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })

/**
 * One client: login, refresh, then logout (or not, so that some rotations must survive as they
 * are), again and again, recording only what the server confirmed.
 */
async function client(username: string, logsOut: boolean, acknowledged: Acknowledged, running: () => boolean): Promise<void> {
  try {
    while (running()) {
      const login = await call('/auth/login', { body: { username, password: PASSWORD } })
      if (login.status !== 200) continue
      const tokens = await login.json()
      const refreshed = await call('/auth/refresh', { token: tokens.refresh_token })
      if (refreshed.status !== 200) continue
      const next = await refreshed.json()
      acknowledged.rotations.push({ from: tokens.refresh_token, to: next.refresh_token })
      if (!logsOut) continue
      acknowledged.logoutSent.add(next.refresh_token)
      const logout = await call('/auth/logout', { token: next.access_token })
      if (logout.status === 200) acknowledged.logouts.push({ access: next.access_token, refresh: next.refresh_token })
    }
  } catch {
    // The server died mid-request: whatever was not answered was not acknowledged.
  }
}

async function verify(acknowledged: Acknowledged): Promise<void> {
  for (const { access, refresh } of acknowledged.logouts) {
    const profile = await fetch(`${server.baseUrl}/profile`, { headers: { authorization: `Bearer ${access}` } })
    expect(profile.status).toBe(401)
    expect((await call('/auth/refresh', { token: refresh })).status).toBe(401)
  }
  // A rotation that survived answers its predecessor with the very same successor (compatible
  // mode). A session that was sent a logout may also refuse it; one whose logout was
  // acknowledged must. Any other answer means the rotation was lost.
  const loggedOut = new Set(acknowledged.logouts.map(({ refresh }) => refresh))
  for (const { from, to } of acknowledged.rotations) {
    const again = await call('/auth/refresh', { token: from })
    if (loggedOut.has(to)) expect(again.status).toBe(401)
    else if (again.status === 401) expect(acknowledged.logoutSent.has(to)).toBe(true)
    else expect((await again.json()).refresh_token).toBe(to)
  }
}

function integrityCheck(): string {
  const db = new Database(join(server.dataDir, 'softphone.db'))
  try {
    return (db.query('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check
  } finally {
    db.close()
  }
}

test(`kill -9 at random points, ${ITERATIONS} times: acknowledged logouts and rotations hold`, async () => {
  for (let w = 0; w < WORKERS; w++) await server.addUser(`40${w}`, PASSWORD)
  // A rotation acknowledged in an earlier life is checked in later ones too.
  let totals = { logouts: 0, rotations: 0 }
  for (let iteration = 0; iteration < ITERATIONS; iteration++) {
    await server.start()
    const acknowledged: Acknowledged = { logouts: [], rotations: [], logoutSent: new Set() }
    let alive = true
    const clients = Array.from({ length: WORKERS }, (_, w) => client(`40${w}`, w % 2 === 0, acknowledged, () => alive))
    await Bun.sleep(50 + Math.floor(Math.random() * 400))
    await server.stop('SIGKILL')
    alive = false
    await Promise.all(clients)

    await server.start()
    await verify(acknowledged)
    await server.stop('SIGKILL')
    expect(integrityCheck()).toBe('ok')
    totals = { logouts: totals.logouts + acknowledged.logouts.length, rotations: totals.rotations + acknowledged.rotations.length }
  }
  console.log(`crash safety: ${ITERATIONS} kills, ${totals.logouts} acknowledged logouts and ${totals.rotations} rotations verified`)
  expect(totals.logouts).toBeGreaterThan(0)
}, 600_000)
