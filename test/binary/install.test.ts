/**
 * `softphone-backend install` / `uninstall` (README "Install", "Uninstall") run by the compiled
 * binary into a throwaway root (`--prefix`), with fake `getent`, `useradd` and `systemctl` first on
 * PATH that log their argv. The fake systemctl can start the installed binary for real, so the
 * wait for health is the real one.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './nginx-process'
import { BINARY, type RunResult } from './server-process'

const UID = 998
const GID = 997
const SYSTEM_USER_ENTRY = `softphone-backend:x:${UID}:${GID}::/var/lib/softphone-backend:/usr/sbin/nologin`

const FAKE_GETENT = `#!/bin/sh
echo "getent $*" >> "$FAKE_LOG"
[ -f "$FAKE_STATE/passwd" ] || exit 2
cat "$FAKE_STATE/passwd"
`

const FAKE_USERADD = `#!/bin/sh
echo "useradd $*" >> "$FAKE_LOG"
echo '${SYSTEM_USER_ENTRY}' > "$FAKE_STATE/passwd"
`

/** Starts the installed binary as systemd would (the config the unit names) when FAKE_SERVE is set. */
const FAKE_SYSTEMCTL = `#!/bin/sh
echo "systemctl $*" >> "$FAKE_LOG"
S="$FAKE_STATE"
alive() { [ -f "$S/pid" ] && p=$(cat "$S/pid") && [ -d "/proc/$p" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$p/stat"; }
start() {
  [ -n "$FAKE_SERVE" ] || return 0
  "$FAKE_ROOT/usr/local/bin/softphone-backend" serve --config "$FAKE_ROOT/etc/softphone-backend/config.toml" > "$S/serve.log" 2>&1 &
  echo $! > "$S/pid"
}
stop() { alive && kill "$(cat "$S/pid")"; rm -f "$S/pid"; return 0; }
case "$1" in
  is-enabled) shift; [ -f "$S/enabled" ] ;;
  is-active) alive ;;
  is-failed) [ -f "$S/pid" ] && ! alive ;;
  enable) touch "$S/enabled"; [ -n "$FAKE_START_FAILS" ] && { echo 'Job for softphone-backend.service failed.' >&2; exit 1; }; [ "$2" = --now ] && start; exit 0 ;;
  disable) rm -f "$S/enabled"; [ "$2" = --now ] && stop; exit 0 ;;
  restart) stop; start ;;
  *) exit 0 ;;
esac
`

let dir: string
let root: string
let state: string
let log: string
let fakebin: string

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-install-'))
  root = join(dir, 'root')
  state = join(dir, 'state')
  log = join(dir, 'calls.log')
  fakebin = join(dir, 'bin')
  for (const path of [root, state, fakebin]) mkdirSync(path)
  for (const [name, script] of [['getent', FAKE_GETENT], ['useradd', FAKE_USERADD], ['systemctl', FAKE_SYSTEMCTL]] as const) {
    writeFileSync(join(fakebin, name), script)
    chmodSync(join(fakebin, name), 0o755)
  }
  writeFileSync(log, '')
})

afterEach(() => {
  const pidFile = join(state, 'pid')
  if (existsSync(pidFile)) {
    try {
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL')
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true })
})

/** `run/systemd/system` below the root is how install tells that systemd runs. */
function withSystemd(): void {
  mkdirSync(join(root, 'run/systemd/system'), { recursive: true })
}

async function run(args: string[], options: { serve?: boolean; startFails?: boolean; prefix?: string[] } = {}): Promise<RunResult & { ms: number }> {
  const started = performance.now()
  const child = Bun.spawn([...(options.prefix ?? []), BINARY, ...args, '--prefix', root], {
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    env: { PATH: `${fakebin}:/usr/bin:/bin`, FAKE_LOG: log, FAKE_STATE: state, FAKE_ROOT: root, ...(options.serve ? { FAKE_SERVE: '1' } : {}), ...(options.startFails ? { FAKE_START_FAILS: '1' } : {}) },
  })
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  return { exitCode, stdout, stderr, ms: performance.now() - started }
}

/** The calls that change something: queries (getent, systemctl is-*) left out. */
function changingCalls(): string[] {
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('getent ') && !/^systemctl is-/.test(line))
}

function modeAndOwner(path: string): string {
  const stat = statSync(join(root, path))
  return `${(stat.mode & 0o7777).toString(8)} ${stat.uid}:${stat.gid}`
}

/** Every file and directory below the root, as `path mode uid:gid`. */
function tree(): string[] {
  return readdirSync(root, { recursive: true })
    .map((path) => `${path} ${modeAndOwner(String(path))}`)
    .sort()
}

/** A config on the port the fake systemctl's server will use, with its files inside the root. */
function writeConfig(port: number): string {
  const text = `port = ${port}\ndata_dir = "${root}/var/lib/softphone-backend"\nlog_dir = "${root}/var/log/softphone-backend"\n`
  mkdirSync(join(root, 'etc/softphone-backend'), { recursive: true })
  writeFileSync(join(root, 'etc/softphone-backend/config.toml'), text)
  return text
}

const shipped = (name: string) => readFileSync(join('systemd', name), 'utf8')
const installed = (path: string) => readFileSync(join(root, path), 'utf8')

describe('install', () => {
  test('writes the files with their modes and owners, creates the user, enables the unit and waits for health', async () => {
    withSystemd()
    const config = writeConfig(freePort())
    const result = await run(['install'], { serve: true })
    expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' })
    const healthy = result.stdout.match(/softphone-backend is healthy after ([\d.]+) s: http:\/\/127\.0\.0\.1:\d+\/pbxcore\/api\/module-softphone-backend\/v1\/health/)
    expect(healthy).not.toBeNull()
    console.log(`install to healthy: ${result.ms.toFixed(0)} ms for the whole command, health answered ${healthy![1]} s after enable --now`)

    expect(changingCalls()).toEqual([
      'useradd --system --user-group --no-create-home --home-dir /var/lib/softphone-backend --shell /usr/sbin/nologin softphone-backend',
      'systemctl daemon-reload',
      'systemctl enable --now softphone-backend.service',
    ])
    expect(readFileSync(join(root, 'usr/local/bin/softphone-backend')).equals(readFileSync(BINARY))).toBe(true)
    expect(installed('etc/systemd/system/softphone-backend.service')).toBe(shipped('softphone-backend.service'))
    expect(installed('etc/nginx/softphone-backend-http.conf')).toBe(shipped('nginx-softphone-backend-http.conf'))
    expect(installed('etc/nginx/softphone-backend.conf')).toBe(shipped('nginx-softphone-backend.conf'))
    expect(installed('etc/logrotate.d/softphone-backend')).toBe(shipped('logrotate/softphone-backend'))
    expect(installed('etc/fail2ban/filter.d/softphone-backend.conf')).toBe(shipped('fail2ban/filter.d/softphone-backend.conf'))
    expect(installed('etc/fail2ban/jail.d/softphone-backend.local')).toBe(shipped('fail2ban/jail.d/softphone-backend.local'))
    expect(installed('etc/softphone-backend/config.toml')).toBe(config)
    expect(result.stdout).toContain('set mode 0640 and owner root:softphone-backend of /etc/softphone-backend/config.toml')
    expect(result.stdout).toContain('include /etc/nginx/softphone-backend-http.conf;')
    expect(result.stdout).toContain('nginx -t && nginx -s reload')

    expect(
      ['usr/local/bin/softphone-backend', 'etc/systemd/system/softphone-backend.service', 'etc/nginx/softphone-backend.conf', 'etc/logrotate.d/softphone-backend', 'var/lib', 'var/log'].map(
        (path) => `${path} ${modeAndOwner(path)}`,
      ),
    ).toEqual([
      'usr/local/bin/softphone-backend 755 0:0',
      'etc/systemd/system/softphone-backend.service 644 0:0',
      'etc/nginx/softphone-backend.conf 644 0:0',
      'etc/logrotate.d/softphone-backend 644 0:0',
      'var/lib 755 0:0',
      'var/log 755 0:0',
    ])
    expect(modeAndOwner('etc/softphone-backend/config.toml')).toBe(`640 0:${GID}`)
    expect(modeAndOwner('var/lib/softphone-backend')).toBe(`700 ${UID}:${GID}`)
    expect(modeAndOwner('var/log/softphone-backend')).toBe(`750 ${UID}:${GID}`)
  }, 30_000)

  test('a second run changes nothing and says so', async () => {
    withSystemd()
    writeConfig(freePort())
    expect((await run(['install'], { serve: true })).exitCode).toBe(0)
    const before = tree()
    writeFileSync(log, '')
    const again = await run(['install'], { serve: true })
    expect({ exitCode: again.exitCode, stderr: again.stderr }).toEqual({ exitCode: 0, stderr: '' })
    expect(again.stdout).toContain('nothing changed: everything was installed already')
    expect(again.stdout).not.toMatch(/^ {2}(write|update|create|run|set) /m)
    expect(changingCalls()).toEqual([])
    expect(tree()).toEqual(before)
  }, 30_000)

  test('a changed unit file is written again, reloaded and the service restarted', async () => {
    withSystemd()
    writeConfig(freePort())
    expect((await run(['install'], { serve: true })).exitCode).toBe(0)
    writeFileSync(join(root, 'etc/systemd/system/softphone-backend.service'), 'edited by hand\n')
    writeFileSync(log, '')
    const again = await run(['install'], { serve: true })
    expect(again.exitCode).toBe(0)
    expect(again.stdout).toContain('update /etc/systemd/system/softphone-backend.service')
    expect(changingCalls()).toEqual(['systemctl daemon-reload', 'systemctl restart softphone-backend.service'])
    expect(installed('etc/systemd/system/softphone-backend.service')).toBe(shipped('softphone-backend.service'))
  }, 30_000)

  test('writes the example config when there is none; --dry-run before it writes nothing', async () => {
    withSystemd()
    const dry = await run(['install', '--dry-run'])
    expect({ exitCode: dry.exitCode, stderr: dry.stderr }).toEqual({ exitCode: 0, stderr: '' })
    expect(dry.stdout).toContain('would write /etc/softphone-backend/config.toml (0640, root:softphone-backend)')
    expect(dry.stdout).toContain('would run useradd --system')
    expect(tree()).toEqual(['run 755 0:0', 'run/systemd 755 0:0', 'run/systemd/system 755 0:0'])
    expect(changingCalls()).toEqual([])

    const result = await run(['install', '--no-wait'])
    expect(result.exitCode).toBe(0)
    expect(installed('etc/softphone-backend/config.toml')).toBe(shipped('config.example.toml'))
    expect(modeAndOwner('etc/softphone-backend/config.toml')).toBe(`640 0:${GID}`)
  }, 30_000)

  test('--mikopbx: MikoPBX directory and CDR in the config, a copy of the legacy key, the nginx location where MikoPBX includes it', async () => {
    withSystemd()
    const legacyKey = 'storage/usbdisk1/mikopbx/custom_modules/ModuleSoftphoneBackend/db/secret.key'
    mkdirSync(join(root, legacyKey, '..'), { recursive: true })
    writeFileSync(join(root, legacyKey), `${'ab'.repeat(32)}\n`, { mode: 0o644 })
    mkdirSync(join(root, 'etc/inc'), { recursive: true })
    writeFileSync(join(root, 'etc/inc/mikopbx-settings.json'), JSON.stringify({ cdrDatabase: { dbfile: '/storage/usbdisk1/cdr/cdr.db' } }))
    const result = await run(['install', '--mikopbx', '--no-wait'])
    expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' })

    const config = installed('etc/softphone-backend/config.toml')
    expect(config).toStartWith(
      [
        '# Written by `softphone-backend install --mikopbx` (README "Running on MikoPBX").',
        'directory = "mikopbx"',
        'cdr_db = "/storage/usbdisk1/cdr/cdr.db"',
        'secret_key_path = "/var/lib/softphone-backend/legacy-secret.key"   # a copy of the module\'s db/secret.key',
        '',
        '',
      ].join('\n'),
    )
    expect(config).toEndWith(shipped('config.example.toml'))
    expect(installed('var/lib/softphone-backend/legacy-secret.key')).toBe(`${'ab'.repeat(32)}\n`)
    expect(modeAndOwner('var/lib/softphone-backend/legacy-secret.key')).toBe(`600 ${UID}:${GID}`)
    expect(installed(legacyKey)).toBe(`${'ab'.repeat(32)}\n`)
    expect(installed('etc/nginx/mikopbx/modules_locations/softphone-backend.conf')).toBe(shipped('nginx-softphone-backend.conf'))
    expect(existsSync(join(root, 'etc/nginx/softphone-backend.conf'))).toBe(false)
    expect(result.stdout).toContain('disable ModuleSoftphoneBackend first')

    const check = Bun.spawnSync([BINARY, 'config', 'check', '--config', join(root, 'etc/softphone-backend/config.toml'), '--directory', 'embedded'], { stdout: 'pipe', stderr: 'pipe' })
    expect({ exitCode: check.exitCode, stderr: check.stderr.toString() }).toEqual({ exitCode: 0, stderr: '' })
  }, 30_000)

  test('without systemd: the files, no unit, no systemctl, and how to start by hand', async () => {
    const result = await run(['install'])
    expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' })
    expect(result.stdout).toContain('systemd is not running here, so nothing was started')
    expect(result.stdout).toContain("su -s /bin/sh softphone-backend -c '/usr/local/bin/softphone-backend serve --config /etc/softphone-backend/config.toml")
    expect(existsSync(join(root, 'etc/systemd'))).toBe(false)
    expect(existsSync(join(root, 'etc/softphone-backend/config.toml'))).toBe(true)
    expect(changingCalls()).toEqual(['useradd --system --user-group --no-create-home --home-dir /var/lib/softphone-backend --shell /usr/sbin/nologin softphone-backend'])
  }, 30_000)

  test('the port is taken: the service fails, install says so with the journal hint and exits 69', async () => {
    withSystemd()
    const squatter = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { open: (socket) => void socket.end(), data() {} } })
    try {
      writeConfig(squatter.port)
      const result = await run(['install'], { serve: true })
      expect(result.exitCode).toBe(69)
      expect(result.stderr).toBe(
        'softphone-backend: the service did not become healthy within 10 s (the service failed); see journalctl -u softphone-backend -n 50 (exit status 69: the port is in use)\n',
      )
    } finally {
      squatter.stop(true)
    }
  }, 30_000)

  test('systemctl fails to start it (Type=notify waits for READY): the same report and exit 69, even with --no-wait', async () => {
    withSystemd()
    const result = await run(['install', '--no-wait'], { startFails: true })
    expect(result.exitCode).toBe(69)
    expect(result.stderr).toBe(
      'Job for softphone-backend.service failed.\nsoftphone-backend: the service did not become healthy within 10 s (systemctl could not start it); see journalctl -u softphone-backend -n 50 (exit status 69: the port is in use)\n',
    )
    expect(result.stdout).toContain('run systemctl enable --now softphone-backend.service')
  })

  test('an existing user softphone-backend that is not a system account: refused, nothing written', async () => {
    withSystemd()
    writeFileSync(join(state, 'passwd'), 'softphone-backend:x:1001:1001::/home/softphone-backend:/bin/bash\n')
    const result = await run(['install'])
    expect(result).toMatchObject({
      exitCode: 1,
      stderr: 'softphone-backend: a user softphone-backend exists and is not a system account (uid 1001): remove or rename it (userdel softphone-backend), then run install again\n',
    })
    expect(tree()).toEqual(['run 755 0:0', 'run/systemd 755 0:0', 'run/systemd/system 755 0:0'])
    expect(changingCalls()).toEqual([])
  })

  for (const command of ['install', 'uninstall']) {
    test(`${command} without root: refused with exit 77 and one line, nothing touched`, async () => {
      withSystemd()
      const result = await run([command], { prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] })
      expect(result).toMatchObject({ exitCode: 77, stdout: '', stderr: `softphone-backend: ${command} needs root: run sudo softphone-backend ${command}\n` })
      expect(readFileSync(log, 'utf8')).toBe('')
    })
  }

  test('usage: options of the other command are refused before anything is looked at', async () => {
    expect(await run(['install', '--purge'])).toMatchObject({ exitCode: 64, stderr: 'softphone-backend: install has no --purge; see install --help\n' })
    expect(await run(['uninstall', '--mikopbx'])).toMatchObject({ exitCode: 64, stderr: 'softphone-backend: uninstall has no --mikopbx; see uninstall --help\n' })
    expect(readFileSync(log, 'utf8')).toBe('')
  })
})

describe('uninstall', () => {
  async function installRunning(): Promise<void> {
    withSystemd()
    writeConfig(freePort())
    expect((await run(['install'], { serve: true })).exitCode).toBe(0)
    mkdirSync(join(root, 'var/lib/softphone-backend/db'), { recursive: true })
    writeFileSync(join(root, 'var/log/softphone-backend/security.log'), 'a line\n')
    writeFileSync(log, '')
  }

  test('stops and disables the service, removes what install wrote, keeps config, data and logs', async () => {
    await installRunning()
    const result = await run(['uninstall'])
    expect({ exitCode: result.exitCode, stderr: result.stderr }).toEqual({ exitCode: 0, stderr: '' })
    expect(changingCalls()).toEqual(['systemctl disable --now softphone-backend.service', 'systemctl daemon-reload'])
    expect(existsSync(join(state, 'pid'))).toBe(false)
    for (const path of ['etc/softphone-backend/config.toml', 'var/lib/softphone-backend/secret.key', 'var/lib/softphone-backend/db', 'var/log/softphone-backend/security.log']) {
      expect({ path, exists: existsSync(join(root, path)) }).toEqual({ path, exists: true })
    }
    for (const path of [
      'usr/local/bin/softphone-backend',
      'etc/systemd/system/softphone-backend.service',
      'etc/nginx/softphone-backend.conf',
      'etc/nginx/softphone-backend-http.conf',
      'etc/logrotate.d/softphone-backend',
      'etc/fail2ban/filter.d/softphone-backend.conf',
      'etc/fail2ban/jail.d/softphone-backend.local',
    ]) {
      expect({ path, exists: existsSync(join(root, path)) }).toEqual({ path, exists: false })
    }
    expect(result.stdout).toContain('kept: /etc/softphone-backend/ (config)')

    writeFileSync(log, '')
    const again = await run(['uninstall'])
    expect(again.stdout).toContain('nothing changed: nothing of softphone-backend was installed')
    expect(changingCalls()).toEqual([])
  }, 30_000)

  test('--purge also removes config, data and logs', async () => {
    await installRunning()
    const result = await run(['uninstall', '--purge'])
    expect(result.exitCode).toBe(0)
    for (const path of ['etc/softphone-backend', 'var/lib/softphone-backend', 'var/log/softphone-backend']) {
      expect({ path, exists: existsSync(join(root, path)) }).toEqual({ path, exists: false })
    }
  }, 30_000)
})
