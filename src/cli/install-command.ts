/**
 * `softphone-backend install` and `uninstall` (README "Install", "Uninstall"): the binary, the
 * service user, the unit, the config, the nginx, logrotate and fail2ban files, then the service
 * started and checked. Every step is skipped when it is already done, so a second run changes nothing.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { loadConfig } from '../config/load'
import { EX_UNAVAILABLE } from '../serve'
import { CommandError, UsageError, type ParsedArgs } from './args'
import {
  Machine,
  ROOT_OWNER,
  SERVICE,
  SERVICE_USER,
  isSystemAccount,
  lookUpServiceUser,
  systemctlSays,
  systemdRuns,
  waitForHealth,
  type Owner,
} from './install-host'
import { SHIPPED } from './shipped-files'

/** sysexits.h EX_NOPERM: install and uninstall need root. */
export const EX_NOPERM = 77

export class PermissionError extends Error {
  override name = 'PermissionError'
}

const BINARY = '/usr/local/bin/softphone-backend'
const UNIT = '/etc/systemd/system/softphone-backend.service'
const CONFIG_DIR = '/etc/softphone-backend'
const CONFIG = `${CONFIG_DIR}/config.toml`
const DATA_DIR = '/var/lib/softphone-backend'
const LOG_DIR = '/var/log/softphone-backend'
const NGINX_HTTP = '/etc/nginx/softphone-backend-http.conf'
const NGINX_DIR = '/etc/nginx'
/** MikoPBX's NginxConf::MODULES_LOCATIONS_PATH, included in its server{}; the legacy module put its location there too. */
const MIKOPBX_NGINX_DIR = '/etc/nginx/mikopbx/modules_locations'
const NGINX_SERVER_NAME = 'softphone-backend.conf'
const LOGROTATE = '/etc/logrotate.d/softphone-backend'
const FAIL2BAN_FILTER = '/etc/fail2ban/filter.d/softphone-backend.conf'
const FAIL2BAN_JAIL = '/etc/fail2ban/jail.d/softphone-backend.local'
/** Where MikoPBX keeps modules; the legacy module keeps its key in its db/ (README "Migrating from ModuleSoftphoneBackend"). */
const LEGACY_KEY = '/storage/usbdisk1/mikopbx/custom_modules/ModuleSoftphoneBackend/db/secret.key'
const LEGACY_KEY_COPY = `${DATA_DIR}/legacy-secret.key`
const MIKOPBX_SETTINGS = '/etc/inc/mikopbx-settings.json'
const USUAL_CDR_DB = '/storage/usbdisk1/mikopbx/astlogs/asterisk/cdr.db'
const HEALTH_TIMEOUT_MS = 10_000

export const INSTALL_OPTIONS = ['prefix', 'nginx-dir', 'legacy-key'] as const
export const INSTALL_SWITCHES = ['mikopbx', 'dry-run', 'no-wait', 'purge'] as const

export const INSTALL_HELP = `sudo softphone-backend install [--mikopbx] [--prefix DIR] [--dry-run] [--no-wait]
                               [--nginx-dir DIR] [--legacy-key PATH]
Installs this binary as /usr/local/bin/softphone-backend with the system user softphone-backend,
the systemd unit, /etc/softphone-backend/config.toml (only if absent), the nginx snippets,
logrotate and fail2ban files; starts the service and waits up to 10 s for health.
  --mikopbx          MikoPBX: directory = "mikopbx", its CDR file, a copy of ModuleSoftphoneBackend's
                     secret key, and the nginx location in /etc/nginx/mikopbx/modules_locations
  --nginx-dir DIR    where the server{} snippet goes (default /etc/nginx)
  --legacy-key PATH  the legacy module's key (default ${LEGACY_KEY})
  --prefix DIR       install below DIR instead of / (paths above are inside it)
  --dry-run          say what would change, change nothing
  --no-wait          don't wait for health
Run it again to upgrade: only what differs is written, and the service restarts if it changed.`

export const UNINSTALL_HELP = `sudo softphone-backend uninstall [--purge] [--prefix DIR] [--dry-run]
Stops and disables the service and removes the binary, the unit, the nginx, logrotate and
fail2ban files. The config, the data (database, keys) and the logs stay unless --purge.`


interface InstallOptions {
  root: string
  dryRun: boolean
  mikopbx: boolean
  wait: boolean
  nginxDir: string
  legacyKey: string
}

interface UninstallOptions {
  root: string
  dryRun: boolean
  purge: boolean
  nginxDir: string | undefined
}

/** Checks the command line before anything is looked at; returns the command to run. */
export function parseInstallCommand(command: 'install' | 'uninstall', args: ParsedArgs): () => Promise<number> {
  if (args.positionals.length > 1) throw new UsageError(`${command} takes no arguments; see ${command} --help`)
  const allowed: readonly string[] =
    command === 'install' ? ['prefix', 'nginx-dir', 'legacy-key', 'mikopbx', 'dry-run', 'no-wait'] : ['prefix', 'nginx-dir', 'purge', 'dry-run']
  for (const name of [...INSTALL_OPTIONS, ...INSTALL_SWITCHES]) {
    if (!allowed.includes(name) && (args.options.has(name) || args.switches.has(name))) throw new UsageError(`${command} has no --${name}; see ${command} --help`)
  }
  const root = args.options.get('prefix') ?? '/'
  if (!root.startsWith('/')) throw new UsageError('--prefix needs an absolute path')
  const dryRun = args.switches.has('dry-run')
  if (command === 'uninstall') return () => uninstall({ root, dryRun, purge: args.switches.has('purge'), nginxDir: args.options.get('nginx-dir') })
  const mikopbx = args.switches.has('mikopbx')
  const options: InstallOptions = {
    root,
    dryRun,
    mikopbx,
    wait: !args.switches.has('no-wait') && !dryRun,
    nginxDir: args.options.get('nginx-dir') ?? (mikopbx ? MIKOPBX_NGINX_DIR : NGINX_DIR),
    legacyKey: args.options.get('legacy-key') ?? LEGACY_KEY,
  }
  return () => install(options)
}

async function install(options: InstallOptions): Promise<number> {
  requireRoot('install')
  requireCompiledBinary()
  const machine = new Machine(options.root, options.dryRun)
  const owner = serviceUser(machine)
  const withSystemd = systemdRuns(machine)
  const binaryChanged = installBinary(machine)
  machine.directory(CONFIG_DIR, 0o755, ROOT_OWNER)
  machine.directory(DATA_DIR, 0o700, owner)
  machine.directory(LOG_DIR, 0o750, owner)
  const legacyKey = options.mikopbx ? copyLegacyKey(machine, options.legacyKey, owner) : false
  const configGroup: Owner = { uid: 0, gid: owner.gid, name: `root:${SERVICE_USER}` }
  const configExisted = existsSync(machine.path(CONFIG))
  machine.file(CONFIG, configText(machine, options.mikopbx, legacyKey), 0o640, configGroup, true)
  if (options.mikopbx && configExisted) machine.note(`check that ${CONFIG} has directory = "mikopbx" (README "Running on MikoPBX"): install never replaces it`)
  const unitChanged = withSystemd && machine.file(UNIT, SHIPPED.unit, 0o644, ROOT_OWNER) === 'written'
  writeShippedFiles(machine, options.nginxDir)
  const started = !withSystemd || startService(machine, unitChanged, binaryChanged)
  printReport(machine, 'everything was installed already')
  console.log(todo(options, withSystemd))
  if (!started) return notHealthy('systemctl could not start it')
  if (!withSystemd || !options.wait) return 0
  return awaitHealthy(machine)
}

function requireRoot(command: string): void {
  if (process.getuid?.() !== 0) throw new PermissionError(`${command} needs root: run sudo softphone-backend ${command}`)
}

/** useradd --system when the user is missing; an existing login account is never taken over for a service. */
function serviceUser(machine: Machine): Owner {
  const existing = lookUpServiceUser()
  if (existing) {
    if (!isSystemAccount(existing.uid)) {
      throw new CommandError(
        `a user ${SERVICE_USER} exists and is not a system account (uid ${existing.uid}): remove or rename it (userdel ${SERVICE_USER}), then run install again`,
      )
    }
    return existing
  }
  if (!Bun.which('useradd')) {
    throw new CommandError(`useradd not found: create the system user ${SERVICE_USER} (busybox: adduser -S -D -H ${SERVICE_USER}), then run install again`)
  }
  machine.run(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', DATA_DIR, '--shell', '/usr/sbin/nologin', SERVICE_USER])
  if (machine.dryRun) return { uid: -1, gid: -1, name: `${SERVICE_USER}:${SERVICE_USER}` }
  const created = lookUpServiceUser()
  if (!created) throw new CommandError(`useradd ran, but getent passwd ${SERVICE_USER} finds no user`)
  return created
}

/** Before anything is changed: under `bun src/main.ts`, the running executable is Bun itself. */
function requireCompiledBinary(): void {
  if (!Bun.main.startsWith('/$bunfs/')) {
    throw new CommandError('install copies the running binary: run the compiled softphone-backend (npm run build), not bun src/main.ts')
  }
}

/** The running binary, unless it already is the installed one; true when it was (or would be) written. */
function installBinary(machine: Machine): boolean {
  if (sameFile(process.execPath, machine.path(BINARY))) {
    machine.note(`unchanged: ${BINARY} (running from it)`)
    return false
  }
  return machine.file(BINARY, readFileSync(process.execPath), 0o755, ROOT_OWNER) === 'written'
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b)
  } catch {
    return false
  }
}

/** A copy the service user owns, mode 0600 as the key check wants; the module's file stays where it is. */
function copyLegacyKey(machine: Machine, source: string, owner: Owner): boolean {
  if (!existsSync(machine.path(source))) {
    machine.note(`no legacy key at ${source}: tokens ModuleSoftphoneBackend issued won't be accepted (--legacy-key PATH names another file)`)
    return existsSync(machine.path(LEGACY_KEY_COPY))
  }
  machine.file(LEGACY_KEY_COPY, readFileSync(machine.path(source)), 0o600, owner, true)
  return true
}

/** The example with every key commented out; on MikoPBX, the keys install knows prepended. */
function configText(machine: Machine, mikopbx: boolean, legacyKey: boolean): string {
  if (!mikopbx) return SHIPPED.configExample
  const lines = [
    '# Written by `softphone-backend install --mikopbx` (README "Running on MikoPBX").',
    'directory = "mikopbx"',
    `cdr_db = ${JSON.stringify(mikopbxCdrPath(machine))}`,
    ...(legacyKey ? [`secret_key_path = "${LEGACY_KEY_COPY}"   # a copy of the module's db/secret.key`] : []),
  ]
  return `${lines.join('\n')}\n\n${SHIPPED.configExample}`
}

/** `cdrDatabase.dbfile` of MikoPBX's settings, as the server reads it (README "Call history"); else its usual place. */
function mikopbxCdrPath(machine: Machine): string {
  try {
    const settings = JSON.parse(readFileSync(machine.path(MIKOPBX_SETTINGS), 'utf8')) as { cdrDatabase?: { dbfile?: unknown } }
    const dbfile = settings.cdrDatabase?.dbfile
    if (typeof dbfile === 'string' && dbfile.startsWith('/')) return dbfile
  } catch {}
  return USUAL_CDR_DB
}

function writeShippedFiles(machine: Machine, nginxDir: string): void {
  machine.file(NGINX_HTTP, SHIPPED.nginxHttp, 0o644, ROOT_OWNER)
  machine.file(`${nginxDir}/${NGINX_SERVER_NAME}`, SHIPPED.nginxServer, 0o644, ROOT_OWNER)
  machine.file(LOGROTATE, SHIPPED.logrotate, 0o644, ROOT_OWNER)
  machine.file(FAIL2BAN_FILTER, SHIPPED.fail2banFilter, 0o644, ROOT_OWNER)
  machine.file(FAIL2BAN_JAIL, SHIPPED.fail2banJail, 0o644, ROOT_OWNER)
}

/**
 * Enabled and running stays so, unless the unit or the binary changed: then it restarts on them.
 * False when systemctl failed to start it (with Type=notify it waits for READY, so a port in use fails here).
 */
function startService(machine: Machine, unitChanged: boolean, binaryChanged: boolean): boolean {
  if (unitChanged) machine.run(['systemctl', 'daemon-reload'])
  const running = systemctlSays('is-enabled') && systemctlSays('is-active')
  if (!running) return machine.run(['systemctl', 'enable', '--now', SERVICE], { mayFail: true })
  if (unitChanged || binaryChanged) return machine.run(['systemctl', 'restart', SERVICE], { mayFail: true })
  return true
}

function printReport(machine: Machine, whenNothingChanged: string): void {
  for (const line of machine.report) console.log(`  ${line}`)
  if (!machine.changed) console.log(`nothing changed: ${whenNothingChanged}`)
}

function todo(options: InstallOptions, withSystemd: boolean): string {
  const serverSnippet = `${options.nginxDir}/${NGINX_SERVER_NAME}`
  const nginx = options.nginxDir === MIKOPBX_NGINX_DIR
    ? `  - nginx: ${serverSnippet} is in MikoPBX's server {} (disable ModuleSoftphoneBackend first: its location\n    is the same); add "include ${NGINX_HTTP};" inside http {} of /etc/nginx/nginx.conf`
    : `  - nginx: add "include ${NGINX_HTTP};" inside http {} and "include ${serverSnippet};"\n    inside the PBX's server {}`
  const lines = [
    'Still to do:',
    nginx,
    '    then: nginx -t && nginx -s reload',
    options.mikopbx
      ? `  - MikoPBX's database: the service user needs read access to /cf/conf/mikopbx.db and its directory`
      : `  - users: sudo -u ${SERVICE_USER} softphone-backend users add 201 --data-dir ${DATA_DIR}`,
    `  - settings: edit ${CONFIG} (softphone-backend config --help), then restart the service`,
  ]
  if (withSystemd) lines.push(`  - logs: journalctl -u ${SERVICE_USER}; ${LOG_DIR}/security.log`)
  else lines.push(...manualStart())
  return lines.join('\n')
}

/** Stock MikoPBX images run without systemd (README "Install"). */
function manualStart(): string[] {
  return [
    'systemd is not running here, so nothing was started. Start the service by hand, as its user,',
    'and add the same line to the box\'s start-up script:',
    `  su -s /bin/sh ${SERVICE_USER} -c '${BINARY} serve --config ${CONFIG} --data-dir ${DATA_DIR} --log-dir ${LOG_DIR} >/dev/null 2>&1 &'`,
  ]
}

/** The address from the installed config, as the service reads it: a wildcard listener is asked on loopback. */
function healthUrl(machine: Machine): string {
  const { config } = loadConfig({ configPath: machine.path(CONFIG), flags: {}, env: {} })
  const host = config.host === '0.0.0.0' ? '127.0.0.1' : config.host === '::' ? '::1' : config.host
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.port}${config.base_path}/health`
}

async function awaitHealthy(machine: Machine): Promise<number> {
  const url = healthUrl(machine)
  const health = await waitForHealth(url, HEALTH_TIMEOUT_MS)
  if (health.healthy) {
    console.log(`softphone-backend is healthy after ${health.seconds.toFixed(2)} s: ${url}`)
    return 0
  }
  return notHealthy(health.failed ? 'the service failed' : `no answer from ${url}`)
}

function notHealthy(why: string): number {
  console.error(
    `softphone-backend: the service did not become healthy within ${HEALTH_TIMEOUT_MS / 1000} s (${why}); see journalctl -u ${SERVICE_USER} -n 50 (exit status 69: the port is in use)`,
  )
  return EX_UNAVAILABLE
}

async function uninstall(options: UninstallOptions): Promise<number> {
  requireRoot('uninstall')
  const machine = new Machine(options.root, options.dryRun)
  const withSystemd = systemdRuns(machine)
  if (withSystemd && (systemctlSays('is-enabled') || systemctlSays('is-active'))) machine.run(['systemctl', 'disable', '--now', SERVICE])
  const unitWasThere = existsSync(machine.path(UNIT))
  machine.remove(UNIT)
  if (withSystemd && unitWasThere) machine.run(['systemctl', 'daemon-reload'])
  const serverSnippets = [NGINX_DIR, MIKOPBX_NGINX_DIR, ...(options.nginxDir ? [options.nginxDir] : [])].map((dir) => `${dir}/${NGINX_SERVER_NAME}`)
  for (const path of [BINARY, NGINX_HTTP, ...serverSnippets, LOGROTATE, FAIL2BAN_FILTER, FAIL2BAN_JAIL]) machine.remove(path)
  if (options.purge) {
    for (const path of [CONFIG_DIR, DATA_DIR, LOG_DIR]) machine.remove(path)
  } else {
    machine.note(`kept: ${CONFIG_DIR}/ (config), ${DATA_DIR}/ (database, keys), ${LOG_DIR}/ (logs); uninstall --purge removes them`)
  }
  machine.note(`kept: the system user ${SERVICE_USER} (userdel ${SERVICE_USER} removes it)`)
  printReport(machine, 'nothing of softphone-backend was installed')
  console.log('Still to do: remove the softphone-backend include lines from nginx, then: nginx -t && nginx -s reload')
  return 0
}
