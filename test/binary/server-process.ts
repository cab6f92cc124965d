/** Runs the compiled binary as a real subprocess with a temp data dir, for end-to-end tests and benches. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const HOST_TARGET = process.arch === 'arm64' ? 'linux-arm64' : 'linux-x64'
export const BINARY = resolve(process.env.SOFTPHONE_BINARY ?? `dist/softphone-backend-${HOST_TARGET}`)
export const BASE = '/pbxcore/api/module-softphone-backend/v1'

export interface RunResult {
  exitCode: number
  stdout: string
  stderr: string
}

/** Runs one CLI command to completion. */
export async function runCli(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  const child = Bun.spawn([BINARY, ...args], {
    stdin: options.stdin === undefined ? 'ignore' : new TextEncoder().encode(options.stdin),
    stdout: 'pipe',
    stderr: 'pipe',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...options.env },
  })
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ])
  return { exitCode, stdout, stderr }
}

/**
 * Runs one CLI command on a pseudo-terminal (python3's pty module): each reply is typed once its
 * prompt has appeared. `shown` is everything the terminal displayed, echo included.
 */
export async function runInTerminal(args: string[], replies: Array<[prompt: string, reply: string]>): Promise<{ exitCode: number; shown: string }> {
  const child = Bun.spawn(['python3', resolve(import.meta.dir, 'fixtures/terminal.py'), JSON.stringify(replies), BINARY, ...args], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'inherit',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  })
  const [shown, exitCode] = await Promise.all([new Response(child.stdout).text(), child.exited])
  return { exitCode, shown }
}

export class ServerProcess {
  readonly dataDir: string
  private child: ReturnType<typeof Bun.spawn> | null = null
  /** Output of the current run (parsed for the listening line) and of every run (for secret greps). */
  private output = ''
  private allOutput = ''
  private errors = ''
  url = ''
  port = 0

  constructor(dataDir?: string) {
    this.dataDir = dataDir ?? mkdtempSync(join(tmpdir(), 'softphone-bin-'))
  }

  get pid(): number | undefined {
    return this.child?.pid
  }

  get baseUrl(): string {
    return `${this.url}${BASE}`
  }

  get stdout(): string {
    return this.allOutput
  }

  get stderr(): string {
    return this.errors
  }

  /** Adds an embedded-directory user through the CLI, exactly as an operator would. */
  async addUser(username: string, password: string, extra: string[] = []): Promise<void> {
    const result = await runCli(['users', 'add', username, '--password-stdin', '--data-dir', this.dataDir, ...extra], { stdin: password })
    if (result.exitCode !== 0) throw new Error(`users add failed: ${result.stderr}`)
  }

  /** Starts `serve` on a free port and resolves once it printed its listening line. */
  async start(args: string[] = [], env: Record<string, string> = {}): Promise<void> {
    const child = Bun.spawn([BINARY, 'serve', '--data-dir', this.dataDir, '--port', '0', ...args], {
      stdout: 'pipe',
      stderr: 'pipe',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    })
    this.child = child
    this.output = ''
    void this.drain(child.stderr as ReadableStream<Uint8Array>, (text) => (this.errors += text))
    const onStdout = (text: string) => {
      this.output += text
      this.allOutput += text
    }
    try {
      const reader = (child.stdout as ReadableStream<Uint8Array>).getReader()
      const decoder = new TextDecoder()
      const deadline = Date.now() + 10_000
      while (!/listening on (http:\/\/[^\s/]+)/.test(this.output)) {
        if (Date.now() > deadline) throw new Error(`server did not start: ${this.errors}`)
        const { value, done } = await reader.read()
        if (done) throw new Error(`server exited: ${this.errors}`)
        onStdout(decoder.decode(value))
      }
      reader.releaseLock()
      void this.drain(child.stdout as ReadableStream<Uint8Array>, onStdout)
      this.url = /listening on (http:\/\/[^\s/]+)/.exec(this.output)![1]!
      this.port = Number(new URL(this.url).port)
    } catch (error) {
      // A test that fails here never reaches its cleanup: leave no server behind.
      await this.stop('SIGKILL')
      throw error
    }
  }

  /** Sends a signal and waits for the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    if (!this.child) return 0
    this.child.kill(signal)
    const code = await this.child.exited
    this.child = null
    return code
  }

  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal)
  }

  async cleanup(): Promise<void> {
    await this.stop('SIGKILL')
    rmSync(this.dataDir, { recursive: true, force: true })
  }

  /**
   * A login as nginx would forward it for a client at `ip`: the test connects from loopback, a
   * trusted proxy, so X-Real-IP plays the client's address.
   */
  postLogin(username: string, password: string, ip: string): Promise<Response> {
    return fetch(`${this.baseUrl}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-real-ip': ip },
      body: JSON.stringify({ username, password }),
    })
  }

  async login(username: string, password: string): Promise<{ access_token: string; refresh_token: string }> {
    const response = await fetch(`${this.baseUrl}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
    })
    if (response.status !== 200) throw new Error(`login failed with ${response.status}`)
    return (await response.json()) as { access_token: string; refresh_token: string }
  }

  private async drain(stream: ReadableStream<Uint8Array>, sink: (text: string) => void): Promise<void> {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of stream) sink(decoder.decode(chunk))
    } catch {}
  }
}

/** Reads a streaming response in the background; `text()` is everything received so far. */
export function followStream(response: Response): { text(): string; stop(): Promise<void> } {
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      text += decoder.decode(value)
    }
  })()
  return {
    text: () => text,
    async stop() {
      await reader.cancel()
      await reading
    },
  }
}
