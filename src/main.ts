#!/usr/bin/env bun
/**
 * The command line: parses argv, checks the command's usage before touching any file, loads
 * configuration, runs one command, maps failures to exit codes (README "Command line").
 */
import { join } from 'node:path'
import { CommandError, EX_USAGE, parseArgs, UsageError, type ParsedArgs } from './cli/args'
import { BACKUP_HELP, backup, EX_DATAERR, EX_NEWER, EX_TEMPFAIL, NewerBackupError, NotABackupError, parseBackupCommand, restore, RESTORE_HELP, ServerRunningError } from './cli/backup-command'
import { checkConfig } from './cli/config-command'
import { parseSecretCommand, SECRET_HELP, SECRET_SWITCHES, type OperatorCommand } from './cli/secret-command'
import { EX_NOPERM, INSTALL_HELP, INSTALL_OPTIONS, INSTALL_SWITCHES, PermissionError, UNINSTALL_HELP, parseInstallCommand } from './cli/install-command'
import { KEYS_HELP, KEYS_OPTIONS, parseKeysCommand } from './cli/keys-command'
import { SESSIONS_HELP, SESSIONS_OPTIONS, parseSessionsCommand } from './cli/sessions-command'
import { SPACES_HELP, SPACES_OPTIONS, parseSpacesCommand } from './cli/spaces-command'
import { DataDirError, EX_CANTCREAT, EX_NOINPUT, NoDatabaseError, ensureDataDir, openCommandStore } from './cli/store-access'
import { operatorAudit, type Audit, type StoreCommand } from './cli/store-command'
import { STORE_HELP, STORE_OPTIONS, parseStoreCommand } from './cli/store-migrate-command'
import { USERS_HELP, USERS_OPTIONS, USERS_SWITCHES, parseUsersCommand } from './cli/users-command'
import { systemClock } from './clock'
import { ConfigError, EX_CONFIG, loadConfig, unknownEnvironmentVariables } from './config/load'
import { CONFIG_KEYS, type Config, type ConfigKey } from './config/schema'
import { DirectoryError } from './directory/embedded'
import { DEFAULT_LOG_LIMITS, SecurityLog } from './security-log/security-log'
import { EX_UNAVAILABLE, ListenError, serve } from './serve'
import { SpaceError } from './spaces/space-store'
import { StoreError, storeOutageOf } from './store/database'
import { StoreUnavailableError } from './store/outage'
import { SecretKeyError } from './tokens/secret-key'
import { VERSION } from './version'

/** sysexits.h EX_IOERR. */
const EX_IOERR = 74
const CONFIG_FLAGS = Object.keys(CONFIG_KEYS).map((name) => name.replaceAll('_', '-'))

const HELP = `softphone-backend ${VERSION}: REST backend for SIP softphone apps on a MikoPBX/Asterisk box.

Usage: softphone-backend [command] [--config PATH] [--<key> VALUE ...]
Commands:
  serve                 run the server (the default)
  users ...             manage the embedded user directory (users --help)
  sessions ...          list or end a user's sessions (sessions --help)
  keys ...              create, list or revoke API keys (keys --help)
  spaces ...            list, add, expire or remove spaces (spaces --help)
  secret rotate         a new signing key; --revoke-all also ends every session (secret --help)
  backup <file>         copy the database and the keys, also while serving
  restore <file>        put a backup in place (the server must be stopped)
  store migrate ...     copy sessions, revocations and throttle counters to Redis (store --help)
  config check          validate the configuration and print it
  config --help         list every configuration key
  install               install as a systemd service, as root (install --help)
  uninstall             stop and remove it; keeps data and config unless --purge
  -v, --version         print the version
  -h, --help            this help, or a command's (users --help)
Every configuration key can be given as a flag, e.g. --port 8081 --data-dir /srv/softphone.
Exit codes: 1 refused (unknown user, passwords differ, ...), 64 usage, 65 not a backup,
66 no database yet, 69 port in use, 73 data dir can't be created, 74 unusable database,
75 restore while the database is in use or Redis unreachable, 76 backup from a newer release, 77 install without root,
78 configuration or key file.`

/** What a command needs once the configuration is loaded; built from argv alone. */
type Plan =
  | { kind: 'serve' }
  | { kind: 'config-check' }
  /** `embeddedOnly`: a `users` command, meaningless with another directory. */
  | { kind: 'store'; command: StoreCommand; embeddedOnly?: true }
  | { kind: 'operator'; command: OperatorCommand }
  /** Reads no configuration: it installs the config file. */
  | { kind: 'install'; run: () => Promise<number> }

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, {
    options: ['config', ...CONFIG_FLAGS, ...USERS_OPTIONS, ...SESSIONS_OPTIONS, ...KEYS_OPTIONS, ...SPACES_OPTIONS, ...STORE_OPTIONS, ...INSTALL_OPTIONS],
    switches: ['help', 'version', ...USERS_SWITCHES, ...SECRET_SWITCHES, ...INSTALL_SWITCHES],
    aliases: { h: 'help', v: 'version' },
  })
  const command = args.positionals[0] ?? 'serve'
  if (args.switches.has('version')) return print(VERSION)
  if (args.switches.has('help')) return print(COMMAND_HELP[command]?.() ?? HELP)
  const plan = planFor(command, args)
  if (plan.kind === 'install') return plan.run()
  const loaded = loadConfig({ configPath: args.options.get('config'), flags: configFlags(args), env: process.env })
  switch (plan.kind) {
    case 'serve':
      warnAboutUnknownVariables()
      ensureDataDir(loaded.config.data_dir)
      return serve(loaded.config, systemClock, () => loadConfig({ configPath: args.options.get('config'), flags: configFlags(args), env: process.env }).config)
    case 'config-check':
      warnAboutUnknownVariables()
      return print(checkConfig(loaded))
    case 'store':
      if (plan.embeddedOnly) requireEmbeddedDirectory(loaded.config)
      return runStoreCommand(plan.command, loaded.config)
    case 'operator':
      return runOperatorCommand(plan.command, loaded.config)
  }
}

function planFor(command: string, args: ParsedArgs): Plan {
  switch (command) {
    case 'serve':
      return { kind: 'serve' }
    case 'users':
      return { kind: 'store', command: parseUsersCommand(args), embeddedOnly: true }
    case 'sessions':
      return { kind: 'store', command: parseSessionsCommand(args) }
    case 'keys':
      return { kind: 'store', command: parseKeysCommand(args) }
    case 'spaces':
      return { kind: 'store', command: parseSpacesCommand(args) }
    case 'store':
      return { kind: 'store', command: parseStoreCommand(args) }
    case 'secret':
      return { kind: 'operator', command: parseSecretCommand(args) }
    case 'backup':
      return { kind: 'operator', command: parseBackupCommand(args, BACKUP_HELP, backup) }
    case 'restore':
      return { kind: 'operator', command: parseBackupCommand(args, RESTORE_HELP, restore) }
    case 'config':
      if (args.positionals[1] !== 'check') throw new UsageError('usage: softphone-backend config check | config --help')
      return { kind: 'config-check' }
    case 'install':
    case 'uninstall':
      return { kind: 'install', run: parseInstallCommand(command, args) }
    default:
      throw new UsageError(`unknown command ${command}; see --help`)
  }
}

const COMMAND_HELP: Record<string, () => string> = {
  users: () => USERS_HELP,
  sessions: () => SESSIONS_HELP,
  keys: () => KEYS_HELP,
  spaces: () => SPACES_HELP,
  store: () => STORE_HELP,
  secret: () => SECRET_HELP,
  backup: () => BACKUP_HELP,
  restore: () => RESTORE_HELP,
  config: configHelp,
  install: () => INSTALL_HELP,
  uninstall: () => UNINSTALL_HELP,
}

function configFlags(args: ParsedArgs): Partial<Record<ConfigKey, string>> {
  const flags: Partial<Record<ConfigKey, string>> = {}
  for (const flag of CONFIG_FLAGS) {
    const value = args.options.get(flag)
    if (value !== undefined) flags[flag.replaceAll('-', '_') as ConfigKey] = value
  }
  return flags
}

/** Before any file is opened: a user added to the embedded table while MikoPBX's directory serves could never log in. */
function requireEmbeddedDirectory(config: Config): void {
  if (config.directory !== 'embedded') {
    throw new CommandError(
      `users manages the embedded directory only; with directory = "${config.directory}" users and their SIP secrets are managed in the MikoPBX web interface`,
    )
  }
}

/** Only commands that change something open the security log, so read-only ones create no log dir. */
async function runStoreCommand(command: StoreCommand, config: Config): Promise<number> {
  const db = openCommandStore(config, command.access)
  const log = command.access === 'read' ? null : openSecurityLog(config)
  const audit: Audit = log ? operatorAudit(log, process.env) : () => {}
  try {
    await command.run({ db, clock: systemClock, config, audit })
    return 0
  } finally {
    log?.close()
    db.close()
  }
}

/** `secret`, `backup` and `restore`: the security log is opened only when the command writes to it. */
async function runOperatorCommand(command: OperatorCommand, config: Config): Promise<number> {
  const opened: SecurityLog[] = []
  const audit: Audit = (...event) => {
    if (opened.length === 0) opened.push(openSecurityLog(config))
    operatorAudit(opened[0]!, process.env)(...event)
  }
  try {
    await command({ config, clock: systemClock, audit })
    return 0
  } finally {
    opened[0]?.close()
  }
}

/** The same file, rotation and limits as the server's, so operator actions land next to its events. */
function openSecurityLog(config: Config): SecurityLog {
  return new SecurityLog(join(config.log_dir, 'security.log'), systemClock, { ...DEFAULT_LOG_LIMITS, maxBytes: config.security_log_max_bytes }, warn)
}

/** On stderr, and never fatal: a typo'd variable is worth a look, not a refused start. */
function warnAboutUnknownVariables(): void {
  for (const name of unknownEnvironmentVariables(process.env)) warn(`warning: ${name} is not a configuration key and is ignored (see config --help)`)
}

function configHelp(): string {
  const lines = Object.entries(CONFIG_KEYS).map(
    ([name, spec]) => `  ${name} (env SOFTPHONE_${name.toUpperCase()}, flag --${name.replaceAll('_', '-')})\n      ${spec.doc}`,
  )
  return `Configuration keys (flags > environment > config file > defaults):\n${lines.join('\n')}
A bad value or key file stops serve and config check with exit 78 (a data dir that can't be
created: 73). config check names the file it read, checks the key file without creating it,
redacts credentials, and warns about SOFTPHONE_* variables that name no key.`
}

function print(text: string): number {
  console.log(text)
  return 0
}

function warn(line: string): void {
  console.error(`softphone-backend: ${line}`)
}

/** Known failures get one line naming the fix; anything else is a bug and keeps its stack. */
function exitCodeFor(error: unknown): number {
  const known: Array<[new (...args: never[]) => Error, number]> = [
    [UsageError, EX_USAGE],
    [ConfigError, EX_CONFIG],
    [SecretKeyError, EX_CONFIG],
    [StoreError, EX_IOERR],
    [NoDatabaseError, EX_NOINPUT],
    [DataDirError, EX_CANTCREAT],
    [ListenError, EX_UNAVAILABLE],
    [NotABackupError, EX_DATAERR],
    [ServerRunningError, EX_TEMPFAIL],
    [StoreUnavailableError, EX_TEMPFAIL],
    [NewerBackupError, EX_NEWER],
    [PermissionError, EX_NOPERM],
    [DirectoryError, 1],
    [SpaceError, 1],
    [CommandError, 1],
  ]
  for (const [type, code] of known) {
    if (error instanceof type) {
      warn(error.message)
      return code
    }
  }
  // A lock held past the busy timeout, a full disk: one line, and the command can simply be run again.
  const outage = storeOutageOf(error)
  if (outage) {
    warn(`the database is ${outage === 'busy' ? 'locked by another process' : 'unavailable'} (${(error as { code: string }).code}); nothing was changed, try again`)
    return EX_TEMPFAIL
  }
  console.error(error)
  return 70 // EX_SOFTWARE
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => process.exit(exitCodeFor(error)),
)
