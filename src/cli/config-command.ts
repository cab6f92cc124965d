/** `softphone-backend config check`: what `serve` would run with, checked as `serve` checks it, creating nothing. */
import { readKeysAtStart } from '../auth/external-jwt'
import { externalJwtSettings, type LoadedConfig } from '../config/load'
import { CONFIG_KEYS, type Config, type KeySpec } from '../config/schema'
import { openAtStart } from '../directory/mikopbx-file'
import { directoryDescription, storeDescription } from '../serve'
import { readRingFile, ringPathFor } from '../tokens/key-ring'
import { readSecretKey } from '../tokens/secret-key'

export const REDACTED = '(redacted)'

/**
 * The report for stdout. Throws SecretKeyError or ConfigError, with serve's message, for a key file
 * or a MikoPBX database serve would refuse.
 */
export function checkConfig({ config, file }: LoadedConfig): string {
  const key = readSecretKey(config.secret_key_path) ? 'ok' : 'will be generated on first start'
  return [
    `config file: ${file ?? 'no file (defaults, environment and flags only)'}`,
    `secret key: ${config.secret_key_path} ${key}`,
    `key ring: ${keyRingDescription(config.secret_key_path)}`,
    `directory: ${directoryDescription(config)}${checkDirectory(config)}`,
    `external JWTs: ${externalJwtDescription(config)}`,
    `store: ${storeDescription(config)}`,
    'config ok',
    JSON.stringify(printableConfig(config), null, 2),
  ].join('\n')
}

/** The ring is checked as serve checks it (README "Key rotation"); throws SecretKeyError. */
function keyRingDescription(secretKeyPath: string): string {
  const path = ringPathFor(secretKeyPath)
  const signing = readRingFile(path).keys.findLast((key) => key.retiresAt === null)
  return signing ? `${path} ok, signing with ${signing.kid}` : `${path} none yet (the key file signs; secret rotate creates it)`
}

/** MikoPBX's database is opened and its tables checked exactly as serve does; throws serve's ConfigError. */
function checkDirectory(config: Config): string {
  if (config.directory !== 'mikopbx') return ''
  openAtStart(config.mikopbx_db, () => {}).close()
  return ' ok'
}

/** The issuer's key file is read as serve reads it (README "External tokens"); throws serve's ConfigError. */
function externalJwtDescription(config: Config): string {
  const settings = externalJwtSettings(config)
  if (!settings) return 'off'
  const keys = readKeysAtStart(settings)
  return `${settings.keyFile} ok, ${keys.length} key(s) (${[...new Set(keys.map((key) => key.algorithm))].join(', ')})`
}

/** Every key whose spec is marked `secret` is replaced, so a new credential key is covered by its marker alone. */
export function printableConfig(config: Readonly<Record<string, unknown>>, specs: Readonly<Record<string, KeySpec>> = CONFIG_KEYS): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).map(([name, value]) => [name, specs[name]?.secret ? REDACTED : value]))
}
