/**
 * What the benches share: running main() with cleanup on exit, error, signal or watchdog; fresh servers that
 * are always cleaned up; CPU pinning with taskset; RSS and CPU time from /proc; wrk runs; arguments and output.
 */
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { BINARY, ServerProcess } from '../test/binary/server-process'

export const TASKSET = '/usr/bin/taskset'
export const WRK = '/usr/bin/wrk'
/** wrk prints latencies with these units. */
const MS_PER_UNIT: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 }
/** The servers under test run on this CPU ... */
export const SERVER_CPU = 0
/** ... and the load (wrk, or the bench process itself) on this one. */
export const CLIENT_CPU = 1

/** What must be undone on exit (child processes, servers and their temp dirs), even on error, Ctrl-C or the watchdog. */
const cleanups = new Set<() => unknown>()
let aborted = false

/** Registers `undo` to run on exit; the returned function unregisters it (without running it). */
export function onExit(undo: () => unknown): () => void {
  cleanups.add(undo)
  return () => void cleanups.delete(undo)
}

async function cleanUp(): Promise<void> {
  for (const undo of [...cleanups].reverse()) {
    cleanups.delete(undo)
    try {
      await undo()
    } catch {}
  }
}

function abort(why: string, code: number): void {
  aborted = true
  console.error(why)
  void cleanUp().finally(() => process.exit(code))
}

/**
 * Runs the bench's main(): exit code 1 when it throws, everything registered with onExit undone in any case,
 * and on SIGINT/SIGTERM (exit 130) or after `watchdogMs` (exit 1) undone at once and the process ended.
 */
export async function runBench(main: () => Promise<void>, { watchdogMs }: { watchdogMs?: number } = {}): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => abort(`bench interrupted by ${signal}`, 130))
  if (watchdogMs !== undefined) setTimeout(() => abort(`bench failed: still running after ${watchdogMs / 1000} s`, 1), watchdogMs).unref()
  try {
    await main()
  } catch (error) {
    // Once aborted, the errors are just the cleanup killing what main() waits on.
    if (!aborted) console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 1
  } finally {
    await cleanUp()
  }
}

export function requireBinary(): void {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} not found; build it with: bun run build.ts --host (or set SOFTPHONE_BINARY)`)
}

/** Runs `use` with a fresh server (not started), cleaned up afterwards, or on exit if the bench ends meanwhile. */
export async function withServer<T>(use: (server: ServerProcess) => Promise<T>): Promise<T> {
  const server = new ServerProcess()
  const forget = onExit(() => server.cleanup())
  try {
    return await use(server)
  } finally {
    forget()
    await server.cleanup()
  }
}

/** Why the servers and the load cannot get a CPU each, or undefined when they can. */
export function pinningUnavailable(): string | undefined {
  if (!existsSync(TASKSET)) return `${TASKSET} not found (apt-get install util-linux)`
  // A probe rather than a CPU count: a cpuset may hide CPU 0 or 1 even on a bigger machine.
  for (const cpu of [SERVER_CPU, CLIENT_CPU]) {
    if (Bun.spawnSync([TASKSET, '-c', String(cpu), 'true'], { stderr: 'ignore' }).exitCode !== 0) {
      return `CPU ${cpu} is not available (${availableParallelism()} CPUs usable)`
    }
  }
}

/** Pins every thread of a running process to `cpu`: -a, as Bun's worker threads (GC, I/O) already exist by then. */
export function pinProcess(pid: number, cpu: number): void {
  const args = ['-a', '-pc', String(cpu), String(pid)]
  const result = Bun.spawnSync([TASKSET, ...args], { stdout: 'ignore', stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(`taskset ${args.join(' ')} failed: ${result.stderr.toString()}`)
}

/** The resident set size of a process, in KiB. */
export function rssKiB(pid: number): number {
  const kB = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!kB) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(kB[1])
}

/** Clock ticks per second, the unit of CPU times in /proc/<pid>/stat. */
const CLOCK_TICKS = Number(Bun.spawnSync(['getconf', 'CLK_TCK']).stdout.toString().trim()) || 100

/** The CPU time (user + system, every thread) a process has used so far, in milliseconds. */
export function cpuMs(pid: number): number {
  // Fields after the parenthesised command, which may itself hold spaces: state is field 3, utime 14, stime 15 (proc(5)).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}

/** An option's value as a positive integer; anything else ends the bench with a message. */
export function positiveInt(name: string, text: string): number {
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) {
    console.error(`${name} must be a positive integer, not ${JSON.stringify(text)}`)
    process.exit(1)
  }
  return value
}

export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd())
}

export function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'FAIL'
}

export function progress(message: string): void {
  console.error(`.. ${message}`)
}

interface WrkRun {
  rps: number
  p99Ms: number
  /** Requests wrk gave up on after its --timeout; they are missing from the latencies. */
  timeouts: number
  out: string
}

/**
 * Runs wrk --latency for `seconds` and parses it. A run with failed requests measures something else than
 * the route, so it is a broken bench, not a slow one, unless `allow` says the failure is what is measured.
 */
export async function runWrk(
  name: string,
  prefix: string[],
  args: string[],
  seconds: number,
  allow: { non2xx?: boolean; timeouts?: boolean } = {},
): Promise<WrkRun> {
  const child = Bun.spawn([...prefix, WRK, `-d${seconds}s`, '--latency', ...args], {
    stdout: 'pipe',
    stderr: 'pipe',
    timeout: (seconds + 15) * 1000,
    killSignal: 'SIGKILL',
  })
  const forget = onExit(() => child.kill('SIGKILL'))
  const [out, err, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  forget()
  if (exitCode !== 0 || err.trim()) throw new Error(`${name}: wrk exited with ${exitCode}: ${err}${out}`)
  const non2xx = /Non-2xx or 3xx responses:\s*(\d+)/.exec(out)
  if (non2xx && !allow.non2xx) throw new Error(`${name}: wrk got ${non2xx[1]} non-2xx responses\n${out}`)
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const [connect, read, write, timeouts] = (socketErrors?.slice(1) ?? [0, 0, 0, 0]).map(Number) as [number, number, number, number]
  if (connect + read + write > 0 || (timeouts > 0 && !allow.timeouts)) throw new Error(`${name}: wrk reported ${socketErrors![0]}\n${out}`)
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(out)
  if (!rps || !p99) throw new Error(`${name}: cannot parse wrk output:\n${out}`)
  return { rps: Number(rps[1]), p99Ms: Number(p99[1]) * MS_PER_UNIT[p99[2]!]!, timeouts, out }
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { headers })
  return { status: response.status, text: await response.text() }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Starts the raw Bun.serve baseline (bench/baseline.ts) in a process of its own, killed on exit. */
export async function startBaseline(): Promise<{ url: string; pid: number }> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'baseline.ts')], { stdout: 'pipe', stderr: 'inherit' })
  onExit(() => child.kill('SIGKILL'))
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  let output = ''
  const decoder = new TextDecoder()
  for await (const chunk of child.stdout) {
    output += decoder.decode(chunk)
    const match = /listening on (http:\/\/\S+)/.exec(output)
    if (match) {
      clearTimeout(timer)
      return { url: match[1]!, pid: child.pid }
    }
  }
  throw new Error(`baseline exited before listening: ${output}`)
}
