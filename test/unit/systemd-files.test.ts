/** The files in `systemd/` point at this project and work with the tools that read them. */
import { expect, test } from 'bun:test'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const UNIT = 'systemd/softphone-backend.service'
const LOGROTATE = 'systemd/logrotate/softphone-backend'
const SHIPPED_LOG = '/var/log/softphone-backend/security.log'
const readme = readFileSync('README.md', 'utf8')

const logrotateBinary = Bun.which('logrotate') ?? (existsSync('/usr/sbin/logrotate') ? '/usr/sbin/logrotate' : null)

/** The lines of the README's install-by-hand block, which the unit's and logrotate's paths must match. */
function installBlock(): string {
  const section = readme.slice(readme.indexOf('\n## Build and install by hand\n'))
  const block = section.match(/^```sh\n(install [\s\S]*?)^```$/m)
  if (!block) throw new Error('README "Build and install by hand" has no sh block starting with install')
  return block[1]!
}

test("the unit's Documentation= points at this project's README where the install steps put it", () => {
  const unit = readFileSync(UNIT, 'utf8')
  const documentation = [...unit.matchAll(/^Documentation=(.+)$/gm)].flatMap((match) => match[1]!.split(/\s+/))
  expect(documentation.length).toBeGreaterThan(0)
  expect(documentation.filter((uri) => uri.includes('ModuleSoftphoneBackend'))).toEqual([])
  for (const uri of documentation) {
    expect(uri).toStartWith('file:/')
    const path = uri.slice('file:'.length)
    expect(path).toEndWith('/README.md')
    expect(installBlock()).toMatch(new RegExp(`^install .*README\\.md ${path}$`, 'm'))
  }
})

test('the unit waits for READY=1 from the main process and restarts it when WATCHDOG=1 stops', () => {
  const directives = readFileSync(UNIT, 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
  expect(directives).toContain('Type=notify')
  // Only the service itself notifies; no helper process needs the socket.
  expect(directives).toContain('NotifyAccess=main')
  const watchdog = directives.find((line) => line.startsWith('WatchdogSec='))
  expect(watchdog).toBe('WatchdogSec=30s')
  // bun:ffi, which sends them, refuses to load without writable+executable memory.
  expect(directives.filter((line) => line.startsWith('MemoryDenyWriteExecute='))).toEqual([])
  expect(directives).toContain('SystemCallFilter=~@privileged @resources')
  expect(directives).toContain('PrivateMounts=yes')
})

test('the README installs the logrotate file where logrotate reads it', () => {
  expect(installBlock()).toMatch(new RegExp(`^install .*${LOGROTATE} /etc/logrotate\\.d/softphone-backend$`, 'm'))
})

test('logrotate renames the log and sends SIGHUP; it never copies and truncates under a writer', () => {
  const config = readFileSync(LOGROTATE, 'utf8')
  const directives = config.split('\n').map((line) => line.replace(/#.*$/, '').trim())
  expect(directives).toContain(`${SHIPPED_LOG} {`)
  expect(directives).not.toContain('copytruncate')
  // The service creates the new file itself when it reopens, with its own owner and mode.
  expect(directives).toContain('nocreate')
  expect(directives.filter((line) => line.includes('systemctl kill --signal=HUP softphone-backend.service'))).toHaveLength(1)
  // Dated names never collide with security.log.1 … .5, which the service's own size cap writes.
  expect(directives).toContain('dateext')
})

/** The shipped file with its log under `dir` and `su` as the user running the test, which exists here. */
function localCopy(dir: string, postrotate: string): string {
  const [username, group] = ['-un', '-gn'].map((flag) => Bun.spawnSync(['id', flag]).stdout.toString().trim())
  const config = readFileSync(LOGROTATE, 'utf8')
    .replace(SHIPPED_LOG, join(dir, 'log', 'security.log'))
    .replace(/^(\s*)su \S+ \S+$/m, `$1su ${username} ${group}`)
    .replace(/^(\s*)if systemctl .*$/m, `$1${postrotate}`)
  const path = join(dir, 'softphone-backend.logrotate')
  writeFileSync(path, config)
  return path
}

test.skipIf(!logrotateBinary)('logrotate -d accepts the shipped file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'softphone-logrotate-'))
  try {
    mkdirSync(join(dir, 'log'), { mode: 0o750 })
    writeFileSync(join(dir, 'log', 'security.log'), '{"ts":"2026-11-23T12:00:00.000Z","event":"STARTUP"}\n')
    const config = localCopy(dir, 'systemctl kill --signal=HUP softphone-backend.service')
    const result = Bun.spawnSync([logrotateBinary!, '-d', '-s', join(dir, 'state'), config], { stdout: 'pipe', stderr: 'pipe' })
    const output = result.stdout.toString() + result.stderr.toString()
    expect({ exitCode: result.exitCode, errors: output.split('\n').filter((line) => /error|unknown|unexpected/i.test(line)) }).toEqual({
      exitCode: 0,
      errors: [],
    })
    expect(output).toContain(join(dir, 'log', 'security.log'))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test.skipIf(!logrotateBinary)("a forced rotation leaves the service's own security.log.1 alone and signals once", () => {
  const dir = mkdtempSync(join(tmpdir(), 'softphone-logrotate-'))
  try {
    const logDir = join(dir, 'log')
    mkdirSync(logDir, { mode: 0o750 })
    writeFileSync(join(logDir, 'security.log'), '{"event":"STARTUP"}\n')
    writeFileSync(join(logDir, 'security.log.1'), '{"event":"ROTATED_BY_THE_SERVICE"}\n')
    const signals = join(dir, 'signals')
    const config = localCopy(dir, `echo HUP >> ${signals}`)
    const result = Bun.spawnSync([logrotateBinary!, '-f', '-s', join(dir, 'state'), config], { stdout: 'pipe', stderr: 'pipe' })
    expect({ exitCode: result.exitCode, stderr: result.stderr.toString() }).toEqual({ exitCode: 0, stderr: '' })

    const names = readdirSync(logDir).sort()
    expect(names).toHaveLength(2)
    expect(names).toContain('security.log.1')
    expect(names.find((name) => name !== 'security.log.1')).toMatch(/^security\.log-\d{8}-\d+$/)
    expect(readFileSync(join(logDir, 'security.log.1'), 'utf8')).toContain('ROTATED_BY_THE_SERVICE')
    expect(readFileSync(signals, 'utf8')).toBe('HUP\n')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test("nginx serves recordings from MikoPBX's monitor directory, the one the README names", () => {
  const snippet = readFileSync('systemd/nginx-softphone-backend.conf', 'utf8')
  const location = snippet.match(/^location \^~ \/pbxcore\/softphone\/recordings\/ \{\n([\s\S]*?)^\}/m)
  if (!location) throw new Error('the snippet has no recordings location')
  expect(location[1]).toContain('    alias /storage/usbdisk1/mikopbx/astspool/monitor/;\n')
  expect(readme).toContain('`alias /storage/usbdisk1/mikopbx/astspool/monitor/`')
})
