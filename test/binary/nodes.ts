/**
 * Three compiled binaries sharing one real redis-server, behind one real nginx whose shipped
 * `upstream softphone_backend` lists all three (round-robin), as README "Several nodes" deploys
 * them. Each node has its own data dir (its own SQLite file, where the user directory stays, so
 * every user is added to every node through the CLI) and its own fixed port (a restarted node comes
 * back where nginx expects it); all share one signing key file and one `redis_url`.
 * For several-nodes.test.ts and bench/several-nodes.ts.
 */
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RedisServer } from '../redis-server'
import { freePort, NginxProcess } from './nginx-process'
import { BASE, runCli, ServerProcess, type RunResult } from './server-process'


/** Redis's password in the cluster's redis_url (README "Several nodes": log lines name the server without it). */
export const REDIS_PASSWORD = 'cluster redis secret'
export const NODE_NAMES = ['A', 'B', 'C'] as const
const SHARED_STORE_WAIT_MS = 10_000
export type NodeName = (typeof NODE_NAMES)[number]

export interface NodeUser {
  username: string
  password: string
  /** More `users add` flags, e.g. ['--role', 'admin']. */
  extra?: readonly string[]
}

export interface Tokens {
  access_token: string
  refresh_token: string
}

export interface ClusterOptions {
  users: readonly NodeUser[]
  /**
   * "redis" (the default): the nodes share state. "sqlite" starts the same processes, each with its
   * own state, which only proves the harness itself (and is the bench's baseline).
   */
  store?: 'redis' | 'sqlite'
  /** More `serve` flags for every node, e.g. ['--refresh-rotation', 'strict']. */
  args?: readonly string[]
  /** False: no nginx in front (the bench talks to each node directly). Default true. */
  nginx?: boolean
}

/** One `serve` process of the cluster, on its fixed port. */
export class Node {
  readonly server: ServerProcess
  private readonly port = freePort()

  constructor(
    readonly name: NodeName,
    private readonly serveArgs: readonly string[],
  ) {
    this.server = new ServerProcess()
  }

  /** A command on this node, with the configuration it serves with (its store, redis_url, key). */
  cli(args: readonly string[]): Promise<RunResult> {
    return runCli([...args, '--data-dir', this.server.dataDir, ...this.serveArgs])
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}${BASE}`
  }

  get listenPort(): number {
    return this.port
  }

  async addUser({ username, password, extra = [] }: NodeUser): Promise<void> {
    await this.server.addUser(username, password, [...extra])
  }

  /** `--port` last: the parser keeps the last value, over ServerProcess's `--port 0`. */
  start(): Promise<void> {
    return this.server.start([...this.serveArgs, '--port', String(this.port)])
  }

  /**
   * Starts, then waits until health says the shared store is up: a node may listen before its link
   * to Redis is, and the link is up only once the revocations are reloaded (RedisLink's onUp hooks).
   */
  async startShared(): Promise<void> {
    await this.start()
    const up = await pollUntil(async () => ((await this.health()).store === 'ok' ? true : undefined), SHARED_STORE_WAIT_MS)
    if (!up) throw new Error(`node ${this.name}: health did not say store "ok" within ${SHARED_STORE_WAIT_MS} ms: ${this.server.stderr}`)
  }

  /** SIGKILL, then the same data dir, flags and port again, until the shared store is up. */
  async restart(): Promise<void> {
    await this.server.stop('SIGKILL')
    await this.startShared()
  }

  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.baseUrl}${path}`, init)
  }

  /** As a client at `ip` behind nginx would arrive (loopback is a trusted proxy, so X-Real-IP names it). */
  postLogin(username: string, password: string, ip = '127.0.0.1'): Promise<Response> {
    return this.fetch('/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-real-ip': ip },
      body: JSON.stringify({ username, password }),
    })
  }

  async login(username: string, password: string): Promise<Tokens> {
    const response = await this.postLogin(username, password)
    if (response.status !== 200) throw new Error(`login on node ${this.name} answered ${response.status}: ${await response.text()}`)
    return (await response.json()) as Tokens
  }

  refresh(refreshToken: string): Promise<Response> {
    return this.fetch('/auth/refresh', { method: 'POST', headers: bearer(refreshToken) })
  }

  logout(accessToken: string): Promise<Response> {
    return this.fetch('/auth/logout', { method: 'POST', headers: bearer(accessToken) })
  }

  /** nginx's auth_request for the WebSocket: no X-Original-URI, so only the token is checked. */
  checkMediaAccess(accessToken: string): Promise<Response> {
    return this.fetch('/check-media-access', { headers: bearer(accessToken) })
  }

  profile(accessToken: string): Promise<Response> {
    return this.fetch('/profile', { headers: bearer(accessToken) })
  }

  async health(): Promise<Record<string, unknown>> {
    return (await (await this.fetch('/health')).json()) as Record<string, unknown>
  }

  /** `pub/` is for loopback producers without proxy headers: only a node itself takes it, never nginx. */
  publish(channel: string, body: unknown): Promise<Response> {
    return this.fetch(`/pub/${channel}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  }

  cleanup(): Promise<void> {
    return this.server.cleanup()
  }
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

export class Cluster {
  readonly nodes: readonly [Node, Node, Node]
  private nginxProcess: NginxProcess | null = null

  private constructor(
    readonly redis: RedisServer,
    private readonly keyDir: string,
    serveArgs: readonly string[],
  ) {
    this.nodes = [new Node('A', serveArgs), new Node('B', serveArgs), new Node('C', serveArgs)]
  }

  /** redis-server, the key file, the users on every node, the three nodes, then nginx; all undone if any step fails. */
  static async start({ users, store = 'redis', args = [], nginx = true }: ClusterOptions): Promise<Cluster> {
    // With a password, so the tests can check that none of the nodes' lines ever shows it.
    const redis = await RedisServer.start({ password: REDIS_PASSWORD })
    const keyDir = mkdtempSync(join(tmpdir(), 'softphone-nodes-key-'))
    const keyPath = join(keyDir, 'secret.key')
    writeFileSync(keyPath, randomBytes(32).toString('hex'), { mode: 0o600 })
    chmodSync(keyPath, 0o600)
    const storeArgs = store === 'redis' ? ['--store', 'redis', '--redis-url', redis.url()] : []
    const cluster = new Cluster(redis, keyDir, ['--secret-key-path', keyPath, ...storeArgs, ...args])
    try {
      for (const node of cluster.nodes) for (const user of users) await node.addUser(user)
      await Promise.all(cluster.nodes.map((node) => (store === 'redis' ? node.startShared() : node.start())))
      if (nginx) {
        cluster.nginxProcess = new NginxProcess()
        await cluster.nginxProcess.start({ backendPort: cluster.nodes.map((node) => node.listenPort) })
      }
      return cluster
    } catch (error) {
      await cluster.cleanup()
      throw error
    }
  }

  get a(): Node {
    return this.nodes[0]
  }

  get b(): Node {
    return this.nodes[1]
  }

  get c(): Node {
    return this.nodes[2]
  }

  get nginx(): NginxProcess {
    if (!this.nginxProcess) throw new Error('this cluster runs without nginx')
    return this.nginxProcess
  }

  /** The API through nginx's upstream: each request goes to the next node in turn. */
  get upstreamUrl(): string {
    return `${this.nginx.url}${BASE}`
  }

  upstream(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.upstreamUrl}${path}`, init)
  }

  /** Everything each node wrote to stdout and stderr, for a failing assertion's message or a secret grep. */
  output(): string {
    return this.nodes.map((node) => `--- node ${node.name}\n${node.server.stdout}${node.server.stderr}`).join('\n')
  }

  async cleanup(): Promise<void> {
    await this.nginxProcess?.cleanup()
    await Promise.all(this.nodes.map((node) => node.cleanup()))
    await this.redis.stop()
    rmSync(this.keyDir, { recursive: true, force: true })
  }
}

/**
 * Asks `probe` until it returns a value other than undefined, for at most `withinMs`; the value, or
 * undefined once the time is up. For what another node learns asynchronously: no fixed sleeps.
 */
export async function pollUntil<T>(probe: () => Promise<T | undefined>, withinMs: number, everyMs = 10): Promise<T | undefined> {
  const deadline = performance.now() + withinMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (performance.now() > deadline) return undefined
    await Bun.sleep(everyMs)
  }
}
