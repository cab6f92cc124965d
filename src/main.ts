#!/usr/bin/env bun
/** The command line: parses argv, loads configuration, runs one command, maps failures to exit codes. */
import { mkdirSync } from 'node:fs'
import { CommandError, parseArgs, UsageError, EX_USAGE, type ParsedArgs } from './cli/args'
import { SESSIONS_HELP, SESSIONS_OPTIONS, sessionsCommand } from './cli/sessions-command'
import { USERS_HELP, USERS_OPTIONS, USERS_SWITCHES, usersCommand } from './cli/users-command'
import { systemClock } from './clock'
import { ConfigError, EX_CONFIG, loadConfig } from './config/load'
import { CONFIG_KEYS, type Config, type ConfigKey } from './config/schema'
import { DirectoryError } from './directory/embedded'
import { databasePath, EX_UNAVAILABLE, ListenError, serve } from './serve'
import { openStore, StoreError } from './store/database'
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
  config check          validate the configuration and print it
  config --help         list every configuration key
  -v, --version         print the version
  -h, --help            this help, or a command's (users --help)
Every configuration key can be given as a flag, e.g. --port 8081 --data-dir /srv/softphone.`

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv, {
    options: ['config', ...CONFIG_FLAGS, ...USERS_OPTIONS, ...SESSIONS_OPTIONS],
    switches: ['help', 'version', ...USERS_SWITCHES],
    aliases: { h: 'help', v: 'version' },
  })
  const command = args.positionals[0] ?? 'serve'
  if (args.switches.has('version')) return print(VERSION)
  if (args.switches.has('help')) return print(COMMAND_HELP[command]?.() ?? HELP)
  const config = loadConfig({ configPath: args.options.get('config'), flags: configFlags(args), env: process.env })
  switch (command) {
    case 'serve':
      return serve(config)
    case 'users':
      return withStore(config, (db) => usersCommand(args, db, systemClock, config.password_hash_concurrency))
    case 'sessions':
      return withStore(config, async (db) => sessionsCommand(args, db, systemClock))
    case 'config':
      if (args.positionals[1] !== 'check') throw new UsageError('usage: softphone-backend config check | config --help')
      return print(`config ok\n${JSON.stringify(config, null, 2)}`)
    default:
      throw new UsageError(`unknown command ${command}; see --help`)
  }
}

const COMMAND_HELP: Record<string, () => string> = {
  users: () => USERS_HELP,
  sessions: () => SESSIONS_HELP,
  config: configHelp,
}

function configFlags(args: ParsedArgs): Partial<Record<ConfigKey, string>> {
  const flags: Partial<Record<ConfigKey, string>> = {}
  for (const flag of CONFIG_FLAGS) {
    const value = args.options.get(flag)
    if (value !== undefined) flags[flag.replaceAll('-', '_') as ConfigKey] = value
  }
  return flags
}

async function withStore(config: Config, run: (db: ReturnType<typeof openStore>) => Promise<void>): Promise<number> {
  mkdirSync(config.data_dir, { recursive: true, mode: 0o700 })
  const db = openStore(databasePath(config))
  try {
    await run(db)
    return 0
  } finally {
    db.close()
  }
}

function configHelp(): string {
  const lines = Object.entries(CONFIG_KEYS).map(
    ([name, spec]) => `  ${name} (env SOFTPHONE_${name.toUpperCase()}, flag --${name.replaceAll('_', '-')})\n      ${spec.doc}`,
  )
  return `Configuration keys (flags > environment > config file > defaults):\n${lines.join('\n')}`
}

function print(text: string): number {
  console.log(text)
  return 0
}

/** Known failures get one line naming the fix; anything else is a bug and keeps its stack. */
function exitCodeFor(error: unknown): number {
  const known: Array<[new (...args: never[]) => Error, number]> = [
    [UsageError, EX_USAGE],
    [ConfigError, EX_CONFIG],
    [SecretKeyError, EX_CONFIG],
    [StoreError, EX_IOERR],
    [ListenError, EX_UNAVAILABLE],
    [DirectoryError, 1],
    [CommandError, 1],
  ]
  for (const [type, code] of known) {
    if (error instanceof type) {
      console.error(`softphone-backend: ${error.message}`)
      return code
    }
  }
  console.error(error)
  return 70 // EX_SOFTWARE
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => process.exit(exitCodeFor(error)),
)
