/**
 * A real redis-server for tests (Debian's package; `.ci/run` installs it): its own temp directory,
 * a free TCP port and a unix socket, AOF with appendfsync everysec as README "Several nodes"
 * requires. kill9() and start() again simulate a crash and restart on the same data.
 * With `tls`, a second port speaks TLS with a self-signed certificate for 127.0.0.1 (`certificate`,
 * made by openssl), which a client trusts as its CA.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'

export interface RedisServerOptions {
  password?: string
  tls?: boolean
}

async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = server.port
  server.stop(true)
  return port
}

export class RedisServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'redis-test-'))
  readonly socket = join(this.dir, 'redis.sock')
  port = 0
  tlsPort = 0
  readonly certificateFile = join(this.dir, 'cert.pem')
  private readonly keyFile = join(this.dir, 'key.pem')
  private process: Subprocess | null = null

  private constructor(private readonly options: RedisServerOptions) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(options)
    server.port = await freePort()
    if (options.tls) {
      server.tlsPort = await freePort()
      server.makeCertificate()
    }
    await server.start()
    return server
  }

  /** redis://[:password@]127.0.0.1:port[/db] */
  url(db = 0): string {
    const auth = this.options.password ? `:${encodeURIComponent(this.options.password)}@` : ''
    return `redis://${auth}127.0.0.1:${this.port}${db ? `/${db}` : ''}`
  }

  /** rediss://[:password@]127.0.0.1:tlsPort[/db] */
  tlsUrl(db = 0): string {
    return this.url(db).replace(/^redis:/, 'rediss:').replace(`:${this.port}`, `:${this.tlsPort}`)
  }

  /** The PEM of the TLS port's self-signed certificate. */
  get certificate(): string {
    return readFileSync(this.certificateFile, 'utf8')
  }

  async start(): Promise<void> {
    const args = [
      '--port', String(this.port), '--bind', '127.0.0.1',
      '--unixsocket', this.socket, '--unixsocketperm', '700',
      '--dir', this.dir, '--appendonly', 'yes', '--appendfsync', 'everysec',
      '--save', '', '--daemonize', 'no', '--loglevel', 'warning',
      ...(this.options.password ? ['--requirepass', this.options.password] : []),
      ...(this.options.tls ? ['--tls-port', String(this.tlsPort), '--tls-cert-file', this.certificateFile, '--tls-key-file', this.keyFile, '--tls-ca-cert-file', this.certificateFile, '--tls-auth-clients', 'no'] : []),
    ]
    this.process = Bun.spawn(['redis-server', ...args], { stdout: 'ignore', stderr: 'pipe' })
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const ping = Bun.spawnSync(['redis-cli', '-p', String(this.port), ...(this.options.password ? ['-a', this.options.password, '--no-auth-warning'] : []), 'PING'])
      if (ping.stdout.toString().trim() === 'PONG') return
      if (this.process.exitCode !== null) throw new Error(`redis-server exited: ${await new Response(this.process.stderr as ReadableStream).text()}`)
      await Bun.sleep(20)
    }
    throw new Error('redis-server did not answer PING within 10 s')
  }

  private makeCertificate(): void {
    const made = Bun.spawnSync([
      'openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', this.keyFile, '-out', this.certificateFile, '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ])
    if (made.exitCode !== 0) throw new Error(`openssl failed: ${made.stderr.toString()}`)
  }

  /** A crash: no shutdown, no final fsync. */
  async kill9(): Promise<void> {
    this.process?.kill('SIGKILL')
    await this.process?.exited
    this.process = null
  }

  /** A server that stops answering but keeps its sockets open, like one cut off without a reset. */
  pause(): void {
    this.process?.kill('SIGSTOP')
  }

  resume(): void {
    this.process?.kill('SIGCONT')
  }

  /** redis-cli against this server; the reply as text. */
  cli(...args: string[]): string {
    const auth = this.options.password ? ['-a', this.options.password, '--no-auth-warning'] : []
    return Bun.spawnSync(['redis-cli', '-p', String(this.port), ...auth, ...args]).stdout.toString().trim()
  }

  async stop(): Promise<void> {
    this.process?.kill('SIGCONT')
    this.process?.kill('SIGTERM')
    await this.process?.exited
    this.process = null
    rmSync(this.dir, { recursive: true, force: true })
  }
}
