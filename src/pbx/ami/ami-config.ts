/**
 * The AMI connection settings from the configuration (README "AMI"), with the secret read from
 * ami_secret_file when that is the source. An unreadable or empty file is a ConfigError naming the
 * path and the reason, never the file's content.
 */
import { readFileSync } from 'node:fs'
import { ConfigError } from '../../config/load'
import type { Config } from '../../config/schema'

export interface AmiSettings {
  host: string
  port: number
  username: string
  secret: string
}

/** Null when ami is "off". loadConfig has already checked that a user and one secret source are set. */
export function amiSettings(config: Config): AmiSettings | null {
  if (config.ami !== 'on') return null
  const secret = config.ami_secret !== '' ? config.ami_secret : readSecretFile(config.ami_secret_file)
  return { host: config.ami_host, port: config.ami_port, username: config.ami_username, secret }
}

function readSecretFile(path: string): string {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`cannot read ami_secret_file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  }
  const secret = text.trim()
  if (secret === '') throw new ConfigError(`ami_secret_file ${path} is empty`)
  if (/[\r\n]/.test(secret)) throw new ConfigError(`ami_secret_file ${path} holds more than one line`)
  return secret
}
