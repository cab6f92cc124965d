/**
 * Merges configuration (README "Configuration"): flags > SOFTPHONE_* environment > TOML file >
 * defaults, then validates the result once. A bad value is an error naming the key and where it
 * came from.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as v from 'valibot'
import { DEFAULT_PASSWORD_MIN_LENGTH } from '../directory/embedded'
import { DEFAULT_DIGEST_REALM } from '../auth/digest'
import { EXTERNAL_ALGORITHMS, type ExternalAlgorithm } from '../auth/external-jwt-keys'
import type { ExternalJwtSettings } from '../auth/external-jwt'
import { CONFIG_KEYS, ConfigSchema, DEFAULT_BASE_PATH, DEFAULT_MIKOPBX_DB, type Config, type ConfigKey } from './schema'

const DEFAULT_CONFIG_PATH = '/etc/softphone-backend/config.toml'
/** sysexits.h EX_CONFIG. */
export const EX_CONFIG = 78

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export interface ConfigSources {
  /** `--config PATH`; when absent the default path is read only if it exists. */
  configPath?: string
  /** Flag values by key, as typed (strings). */
  flags: Partial<Record<ConfigKey, string>>
  env: Record<string, string | undefined>
}

export interface LoadedConfig {
  config: Config
  /** The TOML file that was read, or null when there was none. */
  file: string | null
}

type Origin = string
type Raw = Record<string, { value: unknown; origin: Origin }>

const ENV_PREFIX = 'SOFTPHONE_'

export function loadConfig({ configPath, flags, env }: ConfigSources): LoadedConfig {
  const raw: Raw = {}
  const file = readConfigFile(configPath ?? (env.CONFIGURATION_DIRECTORY ? join(env.CONFIGURATION_DIRECTORY, 'config.toml') : DEFAULT_CONFIG_PATH), configPath !== undefined)
  if (file) for (const [name, value] of Object.entries(file.values)) raw[name] = { value, origin: file.path }
  for (const name of Object.keys(CONFIG_KEYS) as ConfigKey[]) {
    const variable = `${ENV_PREFIX}${name.toUpperCase()}`
    const fromEnv = env[variable]
    if (fromEnv !== undefined) raw[name] = { value: coerce(name, fromEnv), origin: variable }
    const fromFlag = flags[name]
    if (fromFlag !== undefined) raw[name] = { value: coerce(name, fromFlag), origin: `--${name.replaceAll('_', '-')}` }
  }
  return { config: validate(withDefaults(raw, env), raw), file: file?.path ?? null }
}

/** SOFTPHONE_* variables that name no key: most likely typos, which would otherwise be ignored silently. */
export function unknownEnvironmentVariables(env: ConfigSources['env']): string[] {
  const known = new Set(Object.keys(CONFIG_KEYS).map((name) => `${ENV_PREFIX}${name.toUpperCase()}`))
  return Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && !known.has(name))
    .sort()
}

function readConfigFile(path: string, required: boolean): { path: string; values: Record<string, unknown> } | null {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && !required) return null
    throw new ConfigError(`cannot read config file ${path}: ${code ?? 'error'}`)
  }
  let values: unknown
  try {
    values = Bun.TOML.parse(text)
  } catch (error) {
    const message = tomlMessage(error)
    const at = tomlErrorPosition(text, message)
    const where = at ? ` at line ${at.line}, column ${at.column}` : ''
    throw new ConfigError(`config file ${path} is not valid TOML${where}: ${message}`)
  }
  return { path, values: values as Record<string, unknown> }
}

const tomlMessage = (error: unknown): string => (error as Error).message.replace(/^TOML Parse error: /, '')

function tomlParseFailure(text: string): string | null {
  try {
    Bun.TOML.parse(text)
    return null
  } catch (error) {
    return tomlMessage(error)
  }
}

/**
 * Bun.TOML's errors carry no position (their line/column are the JavaScript caller's), so it is
 * found by parsing ever longer prefixes: the first line whose prefix fails with the same message,
 * then the first column within it that does.
 */
function tomlErrorPosition(text: string, message: string): { line: number; column: number } | null {
  const lines = text.split('\n')
  for (let line = 0; line < lines.length; line++) {
    const before = lines.slice(0, line).map((each) => `${each}\n`).join('')
    if (tomlParseFailure(`${before}${lines[line]}\n`) !== message) continue
    const current = `${lines[line]}\n`
    for (let column = 1; column <= current.length; column++) {
      if (tomlParseFailure(before + current.slice(0, column)) === message) return { line: line + 1, column }
    }
    return { line: line + 1, column: 1 }
  }
  return null
}

/** Strings from env and flags become the type the key wants; a bad string is left for the schema to name. */
function coerce(name: ConfigKey, text: string): unknown {
  switch (CONFIG_KEYS[name].kind) {
    case 'integer':
      return /^-?\d+$/.test(text.trim()) ? Number(text) : text
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text
    case 'list':
      return text.split(',').map((item) => item.trim()).filter(Boolean)
    case 'string':
      return text
  }
}

function withDefaults(raw: Raw, env: ConfigSources['env']): Record<string, unknown> {
  const value = (name: string) => raw[name]?.value
  const dataDir = value('data_dir') ?? env.STATE_DIRECTORY ?? '/var/lib/softphone-backend'
  const merged: Record<string, unknown> = {
    host: '127.0.0.1',
    port: 8080,
    base_path: DEFAULT_BASE_PATH,
    trusted_proxies: ['127.0.0.1', '::1'],
    security_log_max_bytes: 10 * 1024 * 1024,
    access_ttl: 3600,
    refresh_ttl: 2592000,
    refresh_rotation: 'compatible',
    accept_legacy_tokens: true,
    directory: 'embedded',
    cdr_db: '',
    recordings_access: 'owner',
    core_api: 'off',
    mikopbx_db: DEFAULT_MIKOPBX_DB,
    password_hash_concurrency: 2,
    password_min_length: DEFAULT_PASSWORD_MIN_LENGTH,
    digest_realm: DEFAULT_DIGEST_REALM,
    throttle_account_failures: 5,
    throttle_ip_failures: 20,
    throttle_max_delay: 900,
    extra_channels: [],
    longpoll_hold_seconds: 25,
    sse_heartbeat_seconds: 15,
    max_subscriptions_per_user: 10,
    api_key_idle_minutes: 60,
    ami: 'off',
    presence_source: value('ami') === 'on' ? 'ami' : 'pub',
    presence_legacy_channels: 'on',
    presence_scope_states: 'all',
    presence_scope_calls: 'own',
    presence_groups: [],
    ami_host: '127.0.0.1',
    ami_port: 5038,
    ami_username: '',
    ami_secret: '',
    ami_secret_file: '',
    metrics: 'on',
    metrics_port: 0,
    external_jwt_issuer: '',
    external_jwt_audience: '',
    external_jwt_key_file: '',
    external_jwt_algorithms: [...EXTERNAL_ALGORITHMS],
    external_jwt_user_claim: 'sub',
    external_jwt_clock_tolerance: 30,
    store: 'sqlite',
    redis_url: '',
    redis_stale_seconds: 30,
    ...Object.fromEntries(Object.entries(raw).map(([name, entry]) => [name, entry.value])),
    data_dir: dataDir,
  }
  if (typeof dataDir === 'string') {
    merged.secret_key_path ??= join(dataDir, 'secret.key')
    merged.log_dir ??= env.LOGS_DIRECTORY ?? join(dataDir, 'log')
  }
  return merged
}

function validate(merged: Record<string, unknown>, raw: Raw): Config {
  const result = v.safeParse(ConfigSchema, merged)
  if (result.success) {
    const config = result.output as Config
    const missing = amiCredentialMissing(config)
    if (missing) throw new ConfigError(`config error: ${missing} (from ${raw.ami?.origin ?? 'default'})`)
    if (config.presence_source === 'ami' && config.ami !== 'on') throw new ConfigError(`config error: presence_source is "ami" but ami is "off" (from ${raw.presence_source?.origin ?? 'default'})`)
    const partial = externalJwtIncomplete(config)
    if (partial) throw new ConfigError(`config error: ${partial}`)
    if (config.store === 'redis' && config.redis_url === '') throw new ConfigError(`config error: store is "redis" but redis_url is empty (README "Several nodes") (from ${raw.store?.origin ?? 'default'})`)
    return config
  }
  const issue = result.issues[0]
  const name = String(issue.path?.[0]?.key ?? 'config')
  const origin = raw[name]?.origin ?? 'default'
  throw new ConfigError(`config error: ${name} ${issue.message} (from ${origin})`)
}

/** Keys that only make sense together: AMI needs a user and exactly one source of its secret. */
function amiCredentialMissing(config: Config): string | null {
  if (config.ami !== 'on') return null
  if (config.ami_username === '') return 'ami is "on" but ami_username is empty: set the AMI user (README "AMI")'
  if (config.ami_secret === '' && config.ami_secret_file === '') return 'ami is "on" but neither ami_secret nor ami_secret_file is set (README "AMI")'
  if (config.ami_secret !== '' && config.ami_secret_file !== '') return 'ami_secret and ami_secret_file are both set: keep one'
  return null
}

const EXTERNAL_JWT_REQUIRED = ['external_jwt_issuer', 'external_jwt_audience', 'external_jwt_key_file'] as const

/** External JWTs are on with all three of issuer, audience and key file, off with none (README "External tokens"). */
function externalJwtIncomplete(config: Config): string | null {
  const unset = EXTERNAL_JWT_REQUIRED.filter((name) => config[name] === '')
  if (unset.length === 0 || unset.length === EXTERNAL_JWT_REQUIRED.length) return null
  return `${unset.join(' and ')} must be set too, or none of ${EXTERNAL_JWT_REQUIRED.join(', ')} (README "External tokens")`
}

/** The external issuer's settings, or null when external JWTs are off. */
export function externalJwtSettings(config: Config): ExternalJwtSettings | null {
  if (config.external_jwt_issuer === '') return null
  return {
    issuer: config.external_jwt_issuer,
    audience: config.external_jwt_audience,
    keyFile: config.external_jwt_key_file,
    algorithms: config.external_jwt_algorithms as ExternalAlgorithm[],
    userClaim: config.external_jwt_user_claim,
    clockTolerance: config.external_jwt_clock_tolerance,
  }
}
