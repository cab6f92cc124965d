/**
 * SPEC §13 performance bench: our compiled binary as ratios to a raw Bun.serve baseline, in one run on loopback.
 * The baseline, the binary and wrk are three separate processes; every target gets the same wrk settings.
 *   node_modules/.bin/bun bench/run.ts [--duration 10] [--connections 64] [--json]
 * Missing a SPEC target is reported, not fatal: the exit code is 1 only when the bench itself broke.
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BINARY, ServerProcess } from '../test/binary/server-process'

const WRK = '/usr/bin/wrk'
const WARMUP_SECONDS = 2
const STARTS = 5
const USER = { name: '201', password: 'bench-password-201' }
const MiB = 1024 * 1024
/** wrk prints latencies with these units. */
const MS_PER_UNIT: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 }

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    json: { type: 'boolean', default: false },
  },
})
const duration = positiveInt('--duration', options.duration)
const connections = positiveInt('--connections', options.connections)

/** What must be undone on exit (child processes, temp dirs), even on error or Ctrl-C. */
const cleanups = new Set<() => unknown>()
let interrupted = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted = true
    console.error(`bench interrupted by ${signal}`)
    void cleanUp().finally(() => process.exit(130))
  })
}

try {
  await main()
} catch (error) {
  // Once interrupted, the errors are just the cleanup killing what main() waits on.
  if (!interrupted) console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
} finally {
  await cleanUp()
}

interface Target {
  name: string
  url: string
  headers: Record<string, string>
  spec?: { minRpsPct: number; maxP99x?: number }
}

async function main(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} not found; install it with: apt-get install wrk`)
  if (!existsSync(BINARY)) throw new Error(`${BINARY} not found; build it with: bun run build.ts --host (or set SOFTPHONE_BINARY)`)
  const binaryMiB = statSync(BINARY).size / MiB

  // Start-up first, while nothing else runs on the machine.
  progress(`measuring start-up (${STARTS} starts)`)
  const startup = await measureStartup()

  const baselineUrl = await startBaseline()
  const server = new ServerProcess()
  cleanups.add(() => server.cleanup())
  await server.addUser(USER.name, USER.password)
  await server.start()
  const pid = server.pid!
  await Bun.sleep(1000)
  const idleRssMiB = rssMiB(pid)
  const { access_token } = await server.login(USER.name, USER.password)
  const bearer = { Authorization: `Bearer ${access_token}` }

  const targets: Target[] = [
    { name: 'baseline', url: baselineUrl, headers: {} },
    { name: 'health', url: `${server.baseUrl}/health`, headers: {} },
    { name: 'check-media-access', url: `${server.baseUrl}/check-media-access`, headers: bearer, spec: { minRpsPct: 60, maxP99x: 2 } },
    { name: 'profile', url: `${server.baseUrl}/profile`, headers: bearer, spec: { minRpsPct: 50 } },
  ]
  const measured = []
  for (const target of targets) measured.push({ ...target, ...(await load(target)) })
  const rssAfterLoadMiB = rssMiB(pid)

  const [base] = measured
  const results = measured.map(({ name, rps, p99Ms, spec }) => {
    const rpsPct = (rps / base!.rps) * 100
    const p99x = p99Ms / base!.p99Ms
    const pass = spec && rpsPct >= spec.minRpsPct && (spec.maxP99x === undefined || p99x <= spec.maxP99x)
    return { name, rps, p99Ms, rpsPct, p99x, spec, pass }
  })

  console.log(`\nwrk -t1 -c${connections} -d${duration}s --latency (after a ${WARMUP_SECONDS}s warm-up), loopback, Bun ${Bun.version}\n`)
  printTable([
    ['target', 'req/s', 'p99 ms', 'req/s vs base', 'p99 vs base', 'SPEC', 'result'],
    ...results.map((r) => [
      r.name,
      r.rps.toFixed(0),
      r.p99Ms.toFixed(2),
      `${r.rpsPct.toFixed(0)} %`,
      `${r.p99x.toFixed(2)} x`,
      r.spec ? `>= ${r.spec.minRpsPct} % req/s${r.spec.maxP99x ? `, p99 <= ${r.spec.maxP99x} x` : ''}` : '',
      r.spec ? verdict(r.pass === true) : '',
    ]),
  ])
  console.log()
  printTable([
    ['binary size', `${binaryMiB.toFixed(1)} MiB`, BINARY],
    ['exec -> listening line', `${startup.listeningMs.toFixed(1)} ms`, `median of ${STARTS} starts, fresh data dir each`],
    ['exec -> first 200 /health', `${startup.firstOkMs.toFixed(1)} ms`, `SPEC < 100 ms: ${verdict(startup.firstOkMs < 100)}`],
    ['idle RSS after start', `${idleRssMiB.toFixed(1)} MiB`, `SPEC < 80 MiB: ${verdict(idleRssMiB < 80)}`],
    ['RSS after the load', `${rssAfterLoadMiB.toFixed(1)} MiB`, ''],
  ])

  if (options.json) {
    const settings = { threads: 1, connections, durationSeconds: duration, warmupSeconds: WARMUP_SECONDS, bun: Bun.version }
    console.log(JSON.stringify({ settings, binary: { path: BINARY, sizeMiB: binaryMiB }, startup, idleRssMiB, rssAfterLoadMiB, targets: results }, null, 2))
  }
}

/** Median over fresh starts of: exec → the listening line, and exec → the first 200 on /health. */
async function measureStartup(): Promise<{ listeningMs: number; firstOkMs: number }> {
  const listening: number[] = []
  const firstOk: number[] = []
  for (let i = 0; i < STARTS; i++) {
    const server = new ServerProcess()
    const undo = () => server.cleanup()
    cleanups.add(undo)
    try {
      const start = performance.now()
      await server.start()
      listening.push(performance.now() - start)
      while ((await get(`${server.baseUrl}/health`).catch(() => undefined))?.status !== 200) {
        if (performance.now() - start > 10_000) throw new Error('/health did not answer 200 within 10 s of exec')
        await Bun.sleep(1)
      }
      firstOk.push(performance.now() - start)
    } finally {
      cleanups.delete(undo)
      await server.cleanup()
    }
  }
  return { listeningMs: median(listening), firstOkMs: median(firstOk) }
}

/** Runs bench/baseline.ts with this same Bun, as its own process, and returns the URL it prints. */
async function startBaseline(): Promise<string> {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'baseline.ts')], { stdout: 'pipe', stderr: 'inherit' })
  cleanups.add(() => child.kill('SIGKILL'))
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  let output = ''
  const decoder = new TextDecoder()
  for await (const chunk of child.stdout) {
    output += decoder.decode(chunk)
    const match = /listening on (http:\/\/\S+)/.exec(output)
    if (match) {
      clearTimeout(timer)
      return match[1]!
    }
  }
  throw new Error(`baseline exited before listening: ${output}`)
}

/** One checked request, a warm-up run and the measured run. */
async function load(target: Target): Promise<{ rps: number; p99Ms: number }> {
  const check = await get(target.url, target.headers)
  if (check.status !== 200) throw new Error(`${target.name}: GET ${target.url} answered ${check.status}, not 200: ${check.text}`)
  progress(`loading ${target.name} (${WARMUP_SECONDS}s warm-up + ${duration}s)`)
  await wrk(target, WARMUP_SECONDS)
  return wrk(target, duration)
}

async function wrk(target: Target, seconds: number): Promise<{ rps: number; p99Ms: number }> {
  const headers = Object.entries(target.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`])
  const child = Bun.spawn([WRK, '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', ...headers, target.url], {
    stdout: 'pipe',
    stderr: 'pipe',
    timeout: (seconds + 15) * 1000,
    killSignal: 'SIGKILL',
  })
  const kill = () => child.kill('SIGKILL')
  cleanups.add(kill)
  const [out, err, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  cleanups.delete(kill)
  if (exitCode !== 0) throw new Error(`${target.name}: wrk exited with ${exitCode}: ${err}${out}`)
  // A run with failed requests measures something else than the route, so it is a broken bench, not a slow one.
  const non2xx = /Non-2xx or 3xx responses:\s*(\d+)/.exec(out)
  if (non2xx) throw new Error(`${target.name}: wrk got ${non2xx[1]} non-2xx responses\n${out}`)
  const socketErrors = /Socket errors:.*/.exec(out)
  if (socketErrors) throw new Error(`${target.name}: wrk reported ${socketErrors[0]}\n${out}`)
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(out)
  if (!rps || !p99) throw new Error(`${target.name}: cannot parse wrk output:\n${out}`)
  return { rps: Number(rps[1]), p99Ms: Number(p99[1]) * MS_PER_UNIT[p99[2]!]! }
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const response = await fetch(url, { headers })
  return { status: response.status, text: await response.text() }
}

function rssMiB(pid: number): number {
  const kB = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!kB) throw new Error(`no VmRSS in /proc/${pid}/status`)
  return Number(kB[1]) / 1024
}

async function cleanUp(): Promise<void> {
  for (const undo of [...cleanups].reverse()) {
    cleanups.delete(undo)
    try {
      await undo()
    } catch {}
  }
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd())
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

function verdict(pass: boolean): string {
  return pass ? 'PASS' : 'FAIL'
}

function progress(message: string): void {
  console.error(`.. ${message}`)
}

function positiveInt(name: string, text: string): number {
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) {
    console.error(`${name} must be a positive integer, not ${JSON.stringify(text)}`)
    process.exit(1)
  }
  return value
}
