/**
 * What the benches share: running main() with cleanup on exit, error, signal or watchdog;
 * fresh servers that are always cleaned up; CPU pinning with taskset; RSS and CPU time from /proc; arguments and output.
 */
import { existsSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { BINARY, ServerProcess } from '../test/binary/server-process'

export const TASKSET = '/usr/bin/taskset'
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
