/** `softphone-backend keys create|list|revoke`: stable API keys made by the operator (README "API keys"). */
import { ApiKeyService, type ApiKeyView } from '../api-keys/api-key-service'
import { ApiKeyStore } from '../api-keys/api-key-store'
import { expiryOf } from '../api-keys/expiry'
import { systemClock, unixSeconds } from '../clock'
import type { Directory } from '../directory/directory'
import { MikoPbxDirectory } from '../directory/mikopbx'
import { openAtStart } from '../directory/mikopbx-file'
import { CommandError, UsageError, type ParsedArgs } from './args'
import { directoryOf, operatorName, type CommandContext, type StoreCommand } from './store-command'

export const KEYS_OPTIONS = ['user', 'name', 'expires'] as const

export const KEYS_HELP = `softphone-backend keys <command>
  create --user <ext> [--name NAME] [--expires <ISO date or date-time | days>]
            a stable key: any address, no idle limit; printed once, on the last line
  list [--user <ext>]
            working keys: id, user, name, prefix, created, last used, expires, made by, bound address
  revoke <id>
A running server picks the change up within a second.`

const KEY_ID = /^[1-9]\d{0,14}$/
const NAME = /^[^\x00-\x1f\x7f]{0,64}$/

/** Checks the whole command line before anything is opened: a usage error touches no file. */
export function parseKeysCommand(args: ParsedArgs): StoreCommand {
  const user = args.options.get('user')
  switch (args.positionals[1]) {
    case 'create': {
      if (!user) throw new UsageError(KEYS_HELP)
      const name = args.options.get('name') ?? ''
      if (!NAME.test(name)) throw new UsageError('--name must be at most 64 characters, no control characters')
      const expires = args.options.get('expires')
      if (expires !== undefined) checkExpiry(expires)
      return { access: 'write', run: async (context) => createKey(context, user, name, expires) }
    }
    case 'list':
      return { access: 'read', run: async (context) => listKeys(context, user) }
    case 'revoke': {
      const id = args.positionals[2]
      if (!id || !KEY_ID.test(id)) throw new UsageError('give the key id to revoke (keys list shows it)')
      return { access: 'write', run: async (context) => revokeKey(context, Number(id)) }
    }
    default:
      throw new UsageError(KEYS_HELP)
  }
}

function checkExpiry(text: string): void {
  const at = expiryOf(text, unixSeconds(systemClock))
  if (at === null) throw new UsageError('--expires must be an ISO 8601 date (2027-01-31, midnight UTC), a date-time with its offset, or a number of days')
  if (at <= unixSeconds(systemClock)) throw new UsageError('--expires is in the past')
}

function serviceOf(context: CommandContext, directory: Directory): ApiKeyService {
  return new ApiKeyService(new ApiKeyStore(context.db), directory, context.clock, { idleMinutes: context.config.api_key_idle_minutes })
}

async function createKey(context: CommandContext, username: string, name: string, expires: string | undefined): Promise<void> {
  withUserDirectory(context, (directory) => {
    const user = directory.findByUsername(username)
    if (!user || user.disabled) throw new CommandError(`no such user, or disabled: ${username}`)
    const expiresAt = expires === undefined ? null : expiryOf(expires, unixSeconds(context.clock))
    const made = serviceOf(context, directory).createStable(user, `cli:${operatorName()}`, name, expiresAt)
    const until = expiresAt === null ? 'no expiry' : `expires ${isoTime(expiresAt)}`
    context.audit('API_KEY_CREATED', user.username, `operator-made, ${until}`, made.row.id)
    console.log(`created API key ${made.row.id} for ${user.username} (${until}); it is shown only now:`)
    console.log(made.text)
  })
}

function listKeys(context: CommandContext, username: string | undefined): void {
  // Listing needs no user lookups: keys are listed as stored.
  for (const key of serviceOf(context, NO_DIRECTORY).list(username)) console.log(keyLine(key))
}

function revokeKey(context: CommandContext, id: number): void {
  const keys = serviceOf(context, NO_DIRECTORY)
  const key = keys.find(id)
  if (!key || !keys.revoke(id)) throw new CommandError(`no such API key, or revoked already: ${id}`)
  context.audit('API_KEY_REVOKED', key.username, 'revoked by operator', id)
  console.log(`revoked API key ${id} of ${key.username}`)
}

function keyLine(key: ApiKeyView): string {
  const expires = key.expires_at !== null ? isoTime(key.expires_at) : key.idle_minutes !== null ? `after ${key.idle_minutes} min unused` : 'never'
  const lastUsed = key.last_used_at === null ? '-' : isoTime(key.last_used_at)
  return [key.id, key.user, key.name || '-', key.prefix, isoTime(key.created_at), lastUsed, expires, key.created_by, key.bound_ip ?? '-'].join('\t')
}

const isoTime = (seconds: number) => new Date(seconds * 1000).toISOString()

const NO_DIRECTORY: Directory = {
  authenticate: async () => null,
  findById: () => null,
  findByUsername: () => null,
}

/** The directory the server uses: the embedded one, or MikoPBX's database, opened read-only for this command. */
function withUserDirectory(context: CommandContext, work: (directory: Directory) => void): void {
  if (context.config.directory === 'embedded') return work(directoryOf(context))
  const file = openAtStart(context.config.mikopbx_db, () => {}, context.clock)
  try {
    work(new MikoPbxDirectory(file))
  } finally {
    file.close()
  }
}
