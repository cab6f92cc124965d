/** What `users` and `sessions` share: usage checked up front, then one run against the store. */
import type { Database } from 'bun:sqlite'
import { readFileSync } from 'node:fs'
import type { Clock } from '../clock'
import type { Config } from '../config/schema'
import { EmbeddedDirectory } from '../directory/embedded'
import type { SecurityEventName, SecurityLogSink } from '../security-log/security-log'
import { CommandError } from './args'
import type { StoreAccess } from './store-access'

export type OperatorEventName = Extract<
  SecurityEventName,
  | 'USER_ADDED'
  | 'USER_PASSWORD_CHANGED'
  | 'USER_DISABLED'
  | 'USER_ENABLED'
  | 'USER_REMOVED'
  | 'SESSION_REVOKED'
  | 'KEY_ROTATED'
  | 'API_KEY_CREATED'
  | 'API_KEY_REVOKED'
  | 'USER_SPACE_CHANGED'
  | 'SPACE_ADDED'
  | 'SPACE_EXPIRY_CHANGED'
  | 'SPACE_REMOVED'
>

/**
 * Records an operator action on `user` (none for `secret rotate`) in the security log, signed with
 * who ran the command; `keyId` names the API key acted on.
 */
export type Audit = (event: OperatorEventName, user: string | undefined, reason?: string, keyId?: number) => void

export interface CommandContext {
  db: Database
  clock: Clock
  config: Config
  audit: Audit
}

/** A command whose arguments were already checked: nothing has touched the disk yet. */
export interface StoreCommand {
  access: StoreAccess
  run(context: CommandContext): Promise<void>
}

export function operatorAudit(log: SecurityLogSink, env: Record<string, string | undefined>): Audit {
  const operator = operatorName()
  const sudoUser = env.SUDO_USER || undefined
  return (event, user, reason, keyId) => log.record({ event, user, reason, operator, sudo_user: sudoUser, key_id: keyId })
}

/**
 * The name /etc/passwd gives our uid. Not os.userInfo(): Bun's answers $USER, which whoever runs
 * the command sets. A uid without an entry there (NSS, containers) is logged as its number.
 */
export function operatorName(): string {
  const uid = process.getuid?.() ?? -1
  try {
    for (const entry of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = entry.split(':')
      if (name && id === String(uid)) return name
    }
  } catch {}
  return `uid ${uid}`
}

export function directoryOf({ db, clock, config }: CommandContext): EmbeddedDirectory {
  return new EmbeddedDirectory(db, clock, config.password_min_length, config.digest_realm)
}

/** Unknown users are named before anything is asked or changed. */
export function existingUser(context: CommandContext, username: string): void {
  if (!directoryOf(context).findByUsername(username)) throw new CommandError(`no such user: ${username}`)
}
