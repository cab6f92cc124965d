/**
 * A real nginx with the shipped snippets in front of the compiled binary, for
 * end-to-end tests (nginx.test.ts, nchan-client.test.ts). The snippets are used as shipped; only the
 * backend port, Asterisk's WebSocket address, the recordings path and the access log path are
 * rewritten in temp copies, and substitute() fails if the shipped text it rewrites is gone.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { BASE } from './server-process'

const SYSTEMD = resolve(import.meta.dir, '../../systemd')
export const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'].find(existsSync) ?? Bun.which('nginx')

/** Replaces text that must be present: if the shipped file changes, this fails instead of testing nothing. */
function substitute(text: string, from: string, to: string, file: string): string {
  if (!text.includes(from)) throw new Error(`${file} no longer contains ${from}`)
  return text.replaceAll(from, to)
}

export function freePort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = listener.port
  listener.stop(true)
  return port
}

export interface NginxOptions {
  /** One backend, or several: the shipped `upstream` then lists each, balanced round-robin (test/binary/nodes.ts). */
  backendPort: number | readonly number[]
  /**
   * Where /pbxcore/softphone/ws goes in place of Asterisk's 127.0.0.1:8088: a test's stand-in, or by
   * default a free port with nothing on it, so no test ever reaches a real Asterisk on the machine.
   */
  asteriskPort?: number
  /** Extra directives for the server { } block, placed before the shipped snippet's include. */
  serverConfig?: string
}

export class NginxProcess {
  /** World-readable temp dir: as root, nginx workers run as nobody and must read what it serves. */
  readonly prefix: string
  readonly recordings: string
  readonly accessLog: string
  port = 0
  private child: ReturnType<typeof Bun.spawn> | null = null

  constructor() {
    if (!NGINX) throw new Error('nginx not found: apt-get install nginx-light (it has auth_request)')
    this.prefix = mkdtempSync(join(tmpdir(), 'softphone-nginx-'))
    chmodSync(this.prefix, 0o755)
    this.accessLog = join(this.prefix, 'softphone-access.log')
    this.recordings = join(this.prefix, 'recordings')
    mkdirSync(this.recordings, { mode: 0o755 })
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get errorLog(): string {
    const file = join(this.prefix, 'error.log')
    return existsSync(file) ? readFileSync(file, 'utf8') : ''
  }

  /** Writes the config and starts nginx on a free port; resolves once BASE/health answers through it. */
  async start({ backendPort, asteriskPort = freePort(), serverConfig = '' }: NginxOptions): Promise<void> {
    this.port = freePort()
    const conf = this.writeConfig(backendPort, asteriskPort, serverConfig)
    const child = Bun.spawn([NGINX!, '-p', this.prefix, '-c', conf, '-g', `daemon off; pid ${this.prefix}/nginx.pid;`], {
      stdout: 'pipe',
      stderr: 'pipe',
    })
    this.child = child
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      if (child.exitCode !== null) break
      try {
        await fetch(`${this.url}${BASE}/health`)
        return
      } catch {
        await Bun.sleep(50)
      }
    }
    throw new Error(`nginx did not start: ${await new Response(child.stderr).text()}${this.errorLog}`)
  }

  async stop(): Promise<void> {
    if (!this.child) return
    this.child.kill('SIGTERM')
    await this.child.exited
    this.child = null
  }

  async cleanup(): Promise<void> {
    await this.stop()
    rmSync(this.prefix, { recursive: true, force: true })
  }

  private writeConfig(backendPort: number | readonly number[], asteriskPort: number, serverConfig: string): string {
    const { prefix } = this
    const servers = [backendPort].flat().map((port) => `server 127.0.0.1:${port};`)
    const http = substitute(
      readFileSync(join(SYSTEMD, 'nginx-softphone-backend-http.conf'), 'utf8'),
      'server 127.0.0.1:8080;',
      servers.join('\n    '),
      'nginx-softphone-backend-http.conf',
    )
    let snippet = readFileSync(join(SYSTEMD, 'nginx-softphone-backend.conf'), 'utf8')
    snippet = substitute(snippet, '/storage/usbdisk1/mikopbx/astspool/monitor/', `${this.recordings}/`, 'nginx-softphone-backend.conf')
    snippet = substitute(snippet, '/var/log/nginx/softphone-backend.access.log', this.accessLog, 'nginx-softphone-backend.conf')
    snippet = substitute(snippet, 'http://127.0.0.1:8088/asterisk/ws;', `http://127.0.0.1:${asteriskPort}/asterisk/ws;`, 'nginx-softphone-backend.conf')
    writeFileSync(join(prefix, 'softphone-http.conf'), http)
    writeFileSync(join(prefix, 'softphone-server.conf'), snippet)
    const conf = join(prefix, 'nginx.conf')
    // No `user` directive: as root, workers run as nobody, which is why the prefix is
    // world-readable; a PBX's nginx workers are unprivileged too.
    writeFileSync(
      conf,
      `error_log ${prefix}/error.log info;
events { worker_connections 256; }
http {
    client_body_temp_path ${prefix}/client_body;
    proxy_temp_path ${prefix}/proxy;
    fastcgi_temp_path ${prefix}/fastcgi;
    uwsgi_temp_path ${prefix}/uwsgi;
    scgi_temp_path ${prefix}/scgi;
    access_log ${prefix}/server-access.log;
    include ${prefix}/softphone-http.conf;
    server {
        listen 127.0.0.1:${this.port};
        server_name localhost;
${serverConfig}
        include ${prefix}/softphone-server.conf;
    }
}
`,
    )
    return conf
  }
}
