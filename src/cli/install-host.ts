/**
 * What `install` and `uninstall` do to the machine (README "Install"): files below a root
 * directory (`--prefix`, default `/`) that are only written when they differ, the service user,
 * systemctl, and the wait for `health`. With `dryRun` nothing is changed; every step is reported.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { CommandError } from './args'

export const SERVICE_USER = 'softphone-backend'
export const SERVICE = 'softphone-backend.service'
/** The first uid useradd gives a login user when /etc/login.defs doesn't say (shadow's default). */
const DEFAULT_UID_MIN = 1000

export interface Owner {
  uid: number
  gid: number
  /** For the report: `root:softphone-backend`. */
  name: string
}

export const ROOT_OWNER: Owner = { uid: 0, gid: 0, name: 'root:root' }

/** `changed`: something was (or, dry, would be) written or removed; the report says what. */
export class Machine {
  readonly report: string[] = []
  changed = false

  constructor(
    readonly root: string,
    readonly dryRun: boolean,
  ) {}

  /** An absolute path of the installed system, below the root. */
  path(absolute: string): string {
    return join(this.root, absolute)
  }

  note(line: string): void {
    this.report.push(line)
  }

  private change(line: string): void {
    this.changed = true
    this.report.push(this.dryRun ? `would ${line}` : line)
  }

  /**
   * Writes `content` unless the file already holds it with this mode and owner. `keep`: an existing
   * file's content is the operator's and stays; only its mode and owner are set.
   */
  file(absolute: string, content: string | Uint8Array, mode: number, owner: Owner, keep = false): 'written' | 'unchanged' {
    const path = this.path(absolute)
    const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content
    const existing = statIfExists(path)
    if (existing && (keep || sameBytes(path, bytes))) {
      if (hasModeAndOwner(existing, mode, owner)) return this.unchanged(absolute, keep ? 'kept, as it exists' : 'unchanged')
      this.change(`set mode ${octal(mode)} and owner ${owner.name} of ${absolute}`)
      if (!this.dryRun) setModeAndOwner(path, mode, owner)
      return 'written'
    }
    this.change(`${existing ? 'update' : 'write'} ${absolute} (${octal(mode)}, ${owner.name})`)
    if (!this.dryRun) writeAtomically(path, bytes, mode, owner)
    return 'written'
  }

  directory(absolute: string, mode: number, owner: Owner): void {
    const path = this.path(absolute)
    const existing = statIfExists(path)
    if (existing && hasModeAndOwner(existing, mode, owner)) return
    this.change(`${existing ? 'set mode and owner of' : 'create'} ${absolute}/ (${octal(mode)}, ${owner.name})`)
    if (this.dryRun) return
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 })
    mkdirSync(path, { recursive: true, mode })
    setModeAndOwner(path, mode, owner)
  }

  remove(absolute: string): void {
    const path = this.path(absolute)
    if (!existsSync(path)) return
    this.change(`remove ${absolute}`)
    if (!this.dryRun) rmSync(path, { recursive: true, force: true })
  }

  /**
   * Runs a command that changes the system; in a dry run only reports it. A failure throws, unless
   * `mayFail`: then the caller reports it (a service that won't start) and gets false.
   */
  run(argv: string[], { mayFail = false } = {}): boolean {
    this.change(`run ${argv.join(' ')}`)
    if (this.dryRun) return true
    const result = Bun.spawnSync(argv, { stdout: 'inherit', stderr: 'inherit' })
    if (result.exitCode === 0) return true
    if (mayFail) return false
    throw new CommandError(`${argv.join(' ')} failed with exit ${result.exitCode}`)
  }

  private unchanged(absolute: string, why = 'unchanged'): 'unchanged' {
    this.report.push(`${why}: ${absolute}`)
    return 'unchanged'
  }
}

function statIfExists(path: string) {
  try {
    return statSync(path)
  } catch {
    return null
  }
}

function sameBytes(path: string, bytes: Uint8Array): boolean {
  try {
    return Buffer.from(readFileSync(path)).equals(bytes)
  } catch {
    return false
  }
}

function hasModeAndOwner(stat: { mode: number; uid: number; gid: number }, mode: number, owner: Owner): boolean {
  return (stat.mode & 0o7777) === mode && stat.uid === owner.uid && stat.gid === owner.gid
}

function setModeAndOwner(path: string, mode: number, owner: Owner): void {
  chownSync(path, owner.uid, owner.gid)
  chmodSync(path, mode)
}

/** Temp file, mode and owner first, then rename: a reader (or a crash) never sees half a file or a wrong mode. */
function writeAtomically(path: string, bytes: Uint8Array, mode: number, owner: Owner): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 })
  const temp = `${path}.install-${process.pid}`
  try {
    writeFileSync(temp, bytes, { mode: 0o600 })
    setModeAndOwner(temp, mode, owner)
    renameSync(temp, path)
  } finally {
    rmSync(temp, { force: true })
  }
}

const octal = (mode: number) => `0${mode.toString(8)}`

/** `getent passwd NAME`, the NSS view useradd also writes to; null when there is no such user. */
export function lookUpServiceUser(): (Owner & { line: string }) | null {
  const result = Bun.spawnSync(['getent', 'passwd', SERVICE_USER], { stdout: 'pipe', stderr: 'ignore' })
  if (result.exitCode !== 0) return null
  const line = result.stdout.toString().trim().split('\n')[0] ?? ''
  const [, , uid, gid] = line.split(':')
  if (!uid || !gid || !/^\d+$/.test(uid) || !/^\d+$/.test(gid)) throw new CommandError(`getent passwd ${SERVICE_USER} printed an unreadable entry: ${line}`)
  return { uid: Number(uid), gid: Number(gid), name: `${SERVICE_USER}:${SERVICE_USER}`, line }
}

/** A uid below UID_MIN of /etc/login.defs (and not root) is a system account, as useradd --system makes. */
export function isSystemAccount(uid: number, loginDefs = '/etc/login.defs'): boolean {
  return uid > 0 && uid < uidMin(loginDefs)
}

function uidMin(loginDefs: string): number {
  try {
    const match = readFileSync(loginDefs, 'utf8').match(/^\s*UID_MIN\s+(\d+)/m)
    return match ? Number(match[1]) : DEFAULT_UID_MIN
  } catch {
    return DEFAULT_UID_MIN
  }
}

/** systemd runs when its runtime directory exists (sd_booted(3)) below the root, and systemctl is there to talk to it. */
export function systemdRuns(machine: Machine): boolean {
  return existsSync(machine.path('/run/systemd/system')) && Bun.which('systemctl') !== null
}

/** `systemctl <verb> softphone-backend.service` as a question: true when it exits 0. */
export function systemctlSays(verb: 'is-enabled' | 'is-active' | 'is-failed'): boolean {
  return Bun.spawnSync(['systemctl', verb, '--quiet', SERVICE], { stdout: 'ignore', stderr: 'ignore' }).exitCode === 0
}

export type Health = { healthy: true; seconds: number } | { healthy: false; failed: boolean }

/**
 * Asks `url` every 100 ms until it answers 200 with `success: true`; gives up early when systemd
 * reports the unit failed (a port in use ends it at once: it won't restart).
 */
export async function waitForHealth(url: string, timeoutMs: number): Promise<Health> {
  const started = performance.now()
  for (let attempt = 0; performance.now() - started < timeoutMs; attempt++) {
    if (await answersHealthy(url)) return { healthy: true, seconds: (performance.now() - started) / 1000 }
    if (attempt % 5 === 4 && systemctlSays('is-failed')) return { healthy: false, failed: true }
    await Bun.sleep(100)
  }
  return { healthy: false, failed: systemctlSays('is-failed') }
}

async function answersHealthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) })
    if (response.status !== 200) return false
    const body = (await response.json()) as { success?: unknown }
    return body.success === true
  } catch {
    return false
  }
}
