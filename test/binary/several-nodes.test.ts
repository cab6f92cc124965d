/**
 * Several nodes (README "Several nodes"): three compiled binaries sharing one real redis-server,
 * behind one real nginx upstream (test/binary/nodes.ts). A logout on one node is refused by the
 * others; twenty parallel refreshes over the nodes rotate once; throttle storms over the nodes,
 * one guess after another and all at once, count as on one; a publish on one node reaches
 * subscribers on the others with the same ids, and a client resumes on another node; Redis killed
 * with kill -9 mid-traffic gives clean 503s and loses no acknowledged revocation.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { bearer, Cluster, pollUntil, REDIS_PASSWORD, type Node, type Tokens } from './nodes'
import { BINARY, followStream } from './server-process'

const USER = '201'
const PASSWORD = 'several-nodes-201'
const USERS = [{ username: USER, password: PASSWORD }]
/** Long enough that verification from memory outlasts the outage below (README "Several nodes", failure behaviour). */
const STALE_SECONDS = 60
/** What another node may take to learn a revocation: the bar is 100 ms; the test allows 2 s. */
const PROPAGATION_MS = 2000
/** `throttle_account_failures`' default (README "Login throttling"). */
const FREE_FAILURES = 5

let cluster: Cluster

beforeAll(async () => {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run bun run build.ts --host first`)
  cluster = await Cluster.start({ users: USERS, args: ['--redis-stale-seconds', String(STALE_SECONDS)] })
}, 30_000)

afterAll(() => cluster?.cleanup())

/** Resolves with the status once `request` answers `status`, or with the last status after `withinMs`. */
async function statusWithin(request: () => Promise<Response>, status: number, withinMs = PROPAGATION_MS): Promise<number> {
  let last = 0
  await pollUntil(async () => {
    last = (await request()).status
    return last === status ? last : undefined
  }, withinMs)
  return last
}

/** A 503 as README "Several nodes" promises it: Retry-After and the JSON envelope, nothing else. */
async function expectStoreUnavailable(response: Response, what: string): Promise<void> {
  const body = (await response.json()) as Record<string, unknown>
  expect({ what, status: response.status }).toEqual({ what, status: 503 })
  expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  expect(body).toMatchObject({ success: false, code: expect.stringMatching(/^store_/) })
}

describe('wiring', () => {
  test('nginx spreads requests over A, B and C, and the token of one node opens the others', async () => {
    for (let i = 0; i < 6; i++) {
      const response = await cluster.upstream('/auth/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: USER, password: PASSWORD }),
      })
      expect(response.status).toBe(200)
    }
    for (const node of cluster.nodes) {
      expect({ node: node.name, logins: securityLog(node).filter((line) => line.includes('"AUTH_SUCCESS"')).length }).toEqual({ node: node.name, logins: 2 })
    }
    const tokens = await cluster.a.login(USER, PASSWORD)
    for (const node of cluster.nodes) expect((await node.profile(tokens.access_token)).status).toBe(200)
  })
})

function securityLog(node: Node): string[] {
  return readFileSync(join(node.server.dataDir, 'log', 'security.log'), 'utf8').split('\n').filter(Boolean)
}

describe('revocation fan-out', () => {
  test('a logout on A is refused on B and C: check-media-access, a user route and the refresh token', async () => {
    const tokens = await cluster.a.login(USER, PASSWORD)
    for (const node of [cluster.b, cluster.c]) expect((await node.checkMediaAccess(tokens.access_token)).status).toBe(200)
    expect((await cluster.a.logout(tokens.access_token)).status).toBe(200)
    for (const node of [cluster.b, cluster.c]) {
      expect({ node: node.name, media: await statusWithin(() => node.checkMediaAccess(tokens.access_token), 401) }).toEqual({ node: node.name, media: 401 })
      expect({ node: node.name, profile: (await node.profile(tokens.access_token)).status }).toEqual({ node: node.name, profile: 401 })
      expect({ node: node.name, refresh: (await node.refresh(tokens.refresh_token)).status }).toEqual({ node: node.name, refresh: 401 })
    }
  })

  test('logout-all on B ends the sessions started on A and C, on every node', async () => {
    const [onA, onC] = [await cluster.a.login(USER, PASSWORD), await cluster.c.login(USER, PASSWORD)]
    const fromB = await cluster.b.login(USER, PASSWORD)
    expect((await cluster.b.fetch('/auth/logout-all', { method: 'POST', headers: bearer(fromB.access_token) })).status).toBe(200)
    for (const node of cluster.nodes) {
      for (const tokens of [onA, onC]) {
        expect({ node: node.name, media: await statusWithin(() => node.checkMediaAccess(tokens.access_token), 401) }).toEqual({ node: node.name, media: 401 })
      }
    }
  })
})

describe('the sessions command with store = "redis"', () => {
  test('lists the sessions every node started, and revoke on B\'s command line ends them on every node', async () => {
    const [onA, onC] = [await cluster.a.login(USER, PASSWORD), await cluster.c.login(USER, PASSWORD)]
    const sid = (tokens: Tokens) => (JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid
    const listed = await cluster.b.cli(['sessions', 'list', '--user', USER])
    expect(listed.exitCode).toBe(0)
    for (const tokens of [onA, onC]) expect(listed.stdout).toContain(sid(tokens))
    const revoked = await cluster.b.cli(['sessions', 'revoke', '--user', USER])
    expect({ exitCode: revoked.exitCode, stdout: revoked.stdout }).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/^ended [1-9]\d* sessions of 201/) })
    for (const node of cluster.nodes) {
      for (const tokens of [onA, onC]) {
        expect({ node: node.name, media: await statusWithin(() => node.checkMediaAccess(tokens.access_token), 401) }).toEqual({ node: node.name, media: 401 })
      }
    }
    expect((await cluster.b.cli(['sessions', 'list', '--user', USER])).stdout).toBe('')
  })
})

/** Twenty refreshes of one refresh token at once, the i-th on node i mod 3. */
function refreshStorm(nodes: readonly Node[], refreshToken: string): Promise<Array<{ status: number; body: Record<string, unknown> }>> {
  return Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const response = await nodes[i % nodes.length]!.refresh(refreshToken)
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    }),
  )
}

describe('refresh rotation across nodes', () => {
  test('compatible: twenty parallel refreshes over A, B and C all answer the one same successor', async () => {
    const tokens = await cluster.a.login(USER, PASSWORD)
    const answers = await refreshStorm(cluster.nodes, tokens.refresh_token)
    expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(200))
    const successors = new Set(answers.map((answer) => answer.body.refresh_token))
    expect(successors.size).toBe(1)
    const [successor] = [...successors] as [string]
    expect(successor).not.toBe(tokens.refresh_token)
    // The successor rotates once more on any node; its predecessor is then reuse everywhere.
    expect((await cluster.c.refresh(successor)).status).toBe(200)
    expect((await cluster.b.refresh(tokens.refresh_token)).status).toBe(401)
  })

  describe('strict', () => {
    let strict: Cluster
    beforeAll(async () => {
      strict = await Cluster.start({ users: USERS, args: ['--refresh-rotation', 'strict'], nginx: false })
    }, 30_000)
    afterAll(() => strict?.cleanup())

    test('twenty parallel refreshes over A, B and C: exactly one successor, the other nineteen are reuse, which ends the session on every node', async () => {
      const login = await strict.b.login(USER, PASSWORD)
      // A session started on B rotates on A.
      const onA = await strict.a.refresh(login.refresh_token)
      expect(onA.status).toBe(200)
      const rotated = (await onA.json()) as Tokens
      const answers = await refreshStorm(strict.nodes, rotated.refresh_token)
      const issued = answers.filter((answer) => answer.status === 200)
      expect(issued).toHaveLength(1)
      expect(typeof issued[0]!.body.refresh_token).toBe('string')
      const refused = answers.filter((answer) => answer.status === 401)
      expect(refused).toHaveLength(19)
      for (const answer of refused) expect(answer.body).toMatchObject({ success: false, code: expect.any(String) })
      const issuedAccess = issued[0]!.body.access_token as string
      for (const node of strict.nodes) {
        expect({ node: node.name, media: await statusWithin(() => node.checkMediaAccess(issuedAccess), 401) }).toEqual({ node: node.name, media: 401 })
      }
    })
  })
})

describe('login throttling across nodes', () => {
  test('wrong passwords spread over A, B and C spend one set of free failures, then 429 with Retry-After on every node', async () => {
    const attacker = '203.0.113.77'
    const answers: Array<{ node: string; status: number; retryAfter: string | null; body: Record<string, unknown> }> = []
    for (let i = 0; i < 30; i++) {
      const node = cluster.nodes[i % 3]!
      const response = await node.postLogin(USER, 'wrong-password', attacker)
      answers.push({ node: node.name, status: response.status, retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Record<string, unknown> })
    }
    // The free failures and the one that starts the delay, whichever node each reached.
    expect(answers.slice(0, FREE_FAILURES + 1).map((answer) => answer.status)).toEqual(Array(FREE_FAILURES + 1).fill(401))
    const checked = answers.filter((answer) => answer.status === 401).length
    // Three nodes counting apart would check FREE_FAILURES + 1 on each before any 429; one shared
    // count allows at most a further failure each time a doubled delay runs out (1 s, 2 s, ...).
    expect(checked).toBeLessThan(2 * FREE_FAILURES)
    const throttled = answers.filter((answer) => answer.status === 429)
    expect(new Set(throttled.map((answer) => answer.node))).toEqual(new Set(['A', 'B', 'C']))
    for (const answer of throttled) {
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1)
      expect(answer.body).toMatchObject({ success: false, code: 'login_throttled' })
    }
    expect(answers.map((answer) => answer.status).filter((status) => status !== 401 && status !== 429)).toEqual([])
    // Only the failing address is slowed, on every node.
    for (const node of cluster.nodes) expect((await node.postLogin(USER, PASSWORD, '198.51.100.7')).status).toBe(200)
  })

  test('sixty wrong passwords at once from one address, spread over A, B and C: about one set of free failures is checked, the rest get 429', async () => {
    const attacker = '203.0.113.78'
    const statuses = await Promise.all(Array.from({ length: 60 }, (_, i) => cluster.nodes[i % 3]!.postLogin(USER, 'wrong-password', attacker).then((response) => response.status)))
    const checked = statuses.filter((status) => status === 401).length
    expect(checked).toBeGreaterThanOrEqual(FREE_FAILURES)
    // Attempts in flight are admitted against one shared count: three nodes counting apart would
    // check at least FREE_FAILURES + 1 each.
    expect(checked).toBeLessThan(2 * FREE_FAILURES)
    expect(statuses.filter((status) => status === 429)).toHaveLength(60 - checked)
  })
})

interface Frame {
  id: string
  data: string
}

/** The EventSource frames in `text`; comments (heartbeats) and a partial last frame left out. */
function framesIn(text: string): Frame[] {
  const blocks = text.split('\n\n').slice(0, -1)
  return blocks.flatMap((block) => {
    const lines = block.split('\n')
    const id = lines.find((line) => line.startsWith('id: '))?.slice(4)
    const data = lines.filter((line) => line.startsWith('data: ')).map((line) => line.slice(6)).join('\n')
    return id === undefined ? [] : [{ id, data }]
  })
}

function subscribe(node: Node, token: string, resume: { query?: string; header?: string } = {}) {
  const query = resume.query === undefined ? '' : `&last_event_id=${encodeURIComponent(resume.query)}`
  const headers: Record<string, string> = { accept: 'text/event-stream', ...(resume.header !== undefined && { 'last-event-id': resume.header }) }
  return node.fetch(`/sub/contacts?authorization=${token}${query}`, { headers }).then((response) => {
    expect(response.status).toBe(200)
    return followStream(response)
  })
}

describe('presence across nodes', () => {
  const run = crypto.randomUUID()
  let token = ''
  beforeAll(async () => ({ access_token: token } = await cluster.a.login(USER, PASSWORD)))

  /** Publishes on A (pub/ takes only loopback peers: A directly, never nginx); its id. */
  async function publishOnA(n: number): Promise<Frame> {
    const body = { run, n }
    const response = await cluster.a.publish('contacts', body)
    expect(response.status).toBe(200)
    return { id: ((await response.json()) as { id: string }).id, data: JSON.stringify(body) }
  }

  /** This run's frames a stream holds once it holds `count` of them (or what it has after 2 s). */
  async function runFrames(stream: { text(): string }, count: number): Promise<Frame[]> {
    const mine = () => framesIn(stream.text()).filter((frame) => frame.data.includes(run))
    return (await pollUntil(async () => (mine().length >= count ? mine() : undefined), PROPAGATION_MS)) ?? mine()
  }

  test('a publish on A reaches EventSource subscribers on B and C once each, in order, with the same ids; a client moving to another node resumes with exactly what it missed', async () => {
    const [onB, onC] = [await subscribe(cluster.b, token), await subscribe(cluster.c, token)]
    const published = [await publishOnA(1), await publishOnA(2), await publishOnA(3)]
    try {
      expect(await runFrames(onB, 3)).toEqual(published)
      expect(await runFrames(onC, 3)).toEqual(published)
    } finally {
      await Promise.all([onB.stop(), onC.stop()])
    }

    // The client on B saw up to the third message and went away; two more came meanwhile.
    const missed = [await publishOnA(4), await publishOnA(5)]
    const byQuery = await subscribe(cluster.c, token, { query: published[2]!.id })
    const byHeader = await subscribe(cluster.a, token, { header: published[2]!.id })
    try {
      for (const stream of [byQuery, byHeader]) {
        await runFrames(stream, 2)
        expect(framesIn(stream.text())).toEqual(missed)
      }
    } finally {
      await Promise.all([byQuery.stop(), byHeader.stop()])
    }
  })
})

describe('Redis killed with kill -9 mid-traffic', () => {
  interface Round {
    tokens: Tokens
    logout: number
  }

  /** One client's loop until `stop()`: log in through nginx, refresh on one node, log out on another. */
  function traffic(worker: number) {
    let running = true
    const rounds: Round[] = []
    const answers: Array<{ what: string; status: number; retryAfter: string | null; body: string }> = []
    const note = async (what: string, response: Response) => {
      answers.push({ what, status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.text() })
      return answers.at(-1)!
    }
    const loop = (async () => {
      for (let k = worker; running; k++) {
        const login = await note('login', await cluster.upstream('/auth/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: USER, password: PASSWORD }),
        }))
        if (login.status !== 200) continue
        const tokens = JSON.parse(login.body) as Tokens
        await note('refresh', await cluster.nodes[k % 3]!.refresh(tokens.refresh_token))
        const logout = await note('logout', await cluster.nodes[(k + 1) % 3]!.logout(tokens.access_token))
        rounds.push({ tokens, logout: logout.status })
      }
    })()
    return {
      rounds,
      answers,
      async stop() {
        running = false
        await loop
      },
    }
  }

  const acknowledged = (workers: ReturnType<typeof traffic>[]) => workers.flatMap((worker) => worker.rounds.filter((round) => round.logout === 200))
  const storeOf = async (node: Node) => (await node.health()).store

  test('503 with Retry-After meanwhile, never a 500; health says degraded; after the restart every acknowledged logout is refused on every node', async () => {
    const survivor = await cluster.b.login(USER, PASSWORD)
    const workers = [0, 1, 2].map(traffic)
    try {
      expect(await pollUntil(async () => (acknowledged(workers).length >= 15 ? true : undefined), 20_000)).toBe(true)
      await cluster.redis.kill9()

      for (const node of cluster.nodes) expect({ node: node.name, store: await pollUntil(async () => ((await storeOf(node)) === 'degraded' ? 'degraded' : undefined), 5000) }).toEqual({ node: node.name, store: 'degraded' })
      for (const node of cluster.nodes) {
        await expectStoreUnavailable(await node.postLogin(USER, PASSWORD), `login on ${node.name}`)
        await expectStoreUnavailable(await node.refresh(survivor.refresh_token), `refresh on ${node.name}`)
        await expectStoreUnavailable(await node.logout(survivor.access_token), `logout on ${node.name}`)
        // Verification goes on from memory within redis_stale_seconds.
        expect({ node: node.name, media: (await node.checkMediaAccess(survivor.access_token)).status }).toEqual({ node: node.name, media: 200 })
      }
      const outageStart = workers.map((worker) => worker.answers.length)
      expect(await pollUntil(async () => (workers.every((worker, i) => worker.answers.length >= outageStart[i]! + 5) ? true : undefined), 10_000)).toBe(true)

      await cluster.redis.start()
      for (const node of cluster.nodes) expect({ node: node.name, store: await pollUntil(async () => ((await storeOf(node)) === 'ok' ? 'ok' : undefined), 10_000) }).toEqual({ node: node.name, store: 'ok' })
    } finally {
      await Promise.all(workers.map((worker) => worker.stop()))
    }

    const answers = workers.flatMap((worker) => worker.answers)
    expect(answers.filter((answer) => answer.status !== 200 && answer.status !== 503)).toEqual([])
    const unavailable = answers.filter((answer) => answer.status === 503)
    expect(unavailable.length).toBeGreaterThan(0)
    for (const answer of unavailable) {
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1)
      expect(JSON.parse(answer.body)).toMatchObject({ success: false, code: expect.stringMatching(/^store_/) })
    }

    // C starts afresh: what it refuses, it learnt from what Redis kept.
    await cluster.c.restart()
    const revoked = acknowledged(workers)
    const stillAccepted = []
    for (const node of cluster.nodes) {
      for (const [index, { tokens }] of revoked.entries()) {
        const status = (await node.checkMediaAccess(tokens.access_token)).status
        if (status !== 401) stillAccepted.push({ node: node.name, logout: `${index + 1} of ${revoked.length}`, status, inRedis: revocationInRedis(tokens.access_token) })
      }
      expect({ node: node.name, refresh: (await node.refresh(revoked[0]!.tokens.refresh_token)).status }).toEqual({ node: node.name, refresh: 401 })
      expect({ node: node.name, survivor: (await node.checkMediaAccess(survivor.access_token)).status }).toEqual({ node: node.name, survivor: 200 })
    }
    // On failure, inRedis tells a revocation Redis lost from one a node failed to load.
    expect(stillAccepted).toEqual([])
    expect(cluster.output()).not.toContain(PASSWORD)
    expect(cluster.output()).not.toContain(REDIS_PASSWORD)
    expect(cluster.output()).not.toContain(encodeURIComponent(REDIS_PASSWORD))
    expect(cluster.output()).toContain('redis: connection to redis://127.0.0.1:')
  }, 90_000)

  /** Whether Redis holds the token's revoked id and its session's revocation (keys of src/tokens/redis-revocations.ts). */
  function revocationInRedis(accessToken: string): { jti: boolean; session: boolean } {
    const claims = JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()) as { jti: string; sid: string }
    return {
      jti: cluster.redis.cli('ZSCORE', 'softphone:revoked-ids', claims.jti) !== '',
      session: cluster.redis.cli('ZSCORE', 'softphone:revoked-sessions', claims.sid) !== '',
    }
  }
})
