/** `softphone-backend users add|list|passwd|disable|enable|remove` for the embedded directory. */
import type { Database } from 'bun:sqlite'
import * as v from 'valibot'
import type { Clock } from '../clock'
import { ROLES, type Role } from '../directory/directory'
import { EmbeddedDirectory } from '../directory/embedded'
import { LOGIN_LIMITS } from '../auth/auth-routes'
import { UsageError, type ParsedArgs } from './args'
import { readPassword } from './password-input'

export const USERS_OPTIONS = ['name', 'role', 'mobile'] as const
export const USERS_SWITCHES = ['password-stdin'] as const

export const USERS_HELP = `softphone-backend users <command>
  add <ext> [--name NAME] [--role user|admin|superadmin] [--mobile DIGITS] [--password-stdin]
  list
  passwd <ext> [--password-stdin]
  disable <ext> | enable <ext> | remove <ext>
Without --password-stdin the password is asked for on the terminal.`

const Username = v.pipe(v.string(), v.regex(/^[A-Za-z0-9._@+-]{1,64}$/))
const Mobile = v.pipe(v.string(), v.regex(/^\d{0,10}$/))

export async function usersCommand(args: ParsedArgs, db: Database, clock: Clock, hashConcurrency: number): Promise<void> {
  const directory = new EmbeddedDirectory(db, clock, hashConcurrency)
  const [, command, username] = args.positionals
  const needUser = (): string => {
    if (!username || !v.is(Username, username)) throw new UsageError('give an extension: 1-64 characters of A-Z a-z 0-9 . _ @ + -')
    return username
  }
  switch (command) {
    case 'add': {
      const name = needUser()
      const role = (args.options.get('role') ?? 'user') as Role
      if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`)
      const mobile = args.options.get('mobile') ?? ''
      if (!v.is(Mobile, mobile)) throw new UsageError('--mobile must be at most 10 digits')
      const password = await newPassword(args)
      const user = await directory.add({ username: name, password, displayName: args.options.get('name') ?? '', role, mobile })
      console.log(`added ${user.username} (id ${user.id}, role ${user.role})`)
      return
    }
    case 'list':
      for (const user of directory.list()) {
        console.log([user.id, user.username, user.role, user.disabled ? 'disabled' : 'enabled', user.displayName].join('\t'))
      }
      return
    case 'passwd':
      await directory.setPassword(needUser(), await newPassword(args))
      console.log(`password changed for ${username}`)
      return
    case 'disable':
    case 'enable':
      directory.setDisabled(needUser(), command === 'disable')
      console.log(`${command}d ${username}`)
      return
    case 'remove':
      directory.remove(needUser())
      console.log(`removed ${username}`)
      return
    default:
      throw new UsageError(USERS_HELP)
  }
}

async function newPassword(args: ParsedArgs): Promise<string> {
  const password = await readPassword(args.switches.has('password-stdin'))
  if (password.length === 0) throw new UsageError('the password is empty')
  if (Buffer.byteLength(password) > LOGIN_LIMITS.passwordBytes) throw new UsageError('the password is longer than 1024 bytes')
  return password
}
