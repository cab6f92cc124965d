/** `softphone-backend users add|list|passwd|disable|enable|remove` for the embedded directory. */
import * as v from 'valibot'
import { ROLES, type Role } from '../directory/directory'
import { DOMAIN_RULE, normalizeDomain } from '../spaces/space-input'
import { SpaceStore } from '../spaces/space-store'
import { CommandError, UsageError, type ParsedArgs } from './args'
import { unixSeconds } from '../clock'
import { sqliteSessionRecords } from '../sessions/sqlite-session-records'
import { openSessionRecords } from './redis-once'
import { readPassword } from './password-input'
import { directoryOf, existingUser, type CommandContext, type OperatorEventName, type StoreCommand } from './store-command'

export const USERS_OPTIONS = ['name', 'role', 'mobile', 'space'] as const
export const USERS_SWITCHES = ['password-stdin'] as const

export const USERS_HELP = `softphone-backend users <command>
  add <ext> [--name NAME] [--role user|admin|superadmin] [--mobile DIGITS] [--space DOMAIN] [--password-stdin]
  list
  passwd <ext> [--password-stdin]
  move <ext> --space DOMAIN
  disable <ext> | enable <ext> | remove <ext>
Without --space a new user joins the default space (spaces --help).
Without --password-stdin the password is asked for twice on the terminal.
Passwords need at least password_min_length (8) characters.`

const Username = v.pipe(v.string(), v.regex(/^[A-Za-z0-9._@+-]{1,64}$/))
const Mobile = v.pipe(v.string(), v.regex(/^\d{0,10}$/))

type AccountChange = 'disable' | 'enable' | 'remove'

const ACCOUNT_CHANGES: Record<AccountChange, { event: OperatorEventName; done: string }> = {
  disable: { event: 'USER_DISABLED', done: 'disabled' },
  enable: { event: 'USER_ENABLED', done: 'enabled' },
  remove: { event: 'USER_REMOVED', done: 'removed' },
}

/** Checks the whole command line before anything is opened: a usage error touches no file. */
export function parseUsersCommand(args: ParsedArgs): StoreCommand {
  const [, command, username] = args.positionals
  const needUser = (): string => {
    if (!username || !v.is(Username, username)) throw new UsageError('give an extension: 1-64 characters of A-Z a-z 0-9 . _ @ + -')
    return username
  }
  const passwordFromStdin = args.switches.has('password-stdin')
  switch (command) {
    case 'add':
      return addCommand(needUser(), args, passwordFromStdin)
    case 'list':
      return { access: 'read', run: async (context) => listUsers(context) }
    case 'passwd': {
      const name = needUser()
      return { access: 'write', run: (context) => changePassword(context, name, passwordFromStdin) }
    }
    case 'move': {
      const name = needUser()
      const domain = spaceOption(args)
      if (domain === undefined) throw new UsageError('move needs --space DOMAIN')
      return { access: 'write', run: async (context) => moveUser(context, name, domain) }
    }
    case 'disable':
    case 'enable':
    case 'remove': {
      const name = needUser()
      return { access: 'write', run: async (context) => changeAccount(context, command, name) }
    }
    default:
      throw new UsageError(USERS_HELP)
  }
}

function addCommand(username: string, args: ParsedArgs, passwordFromStdin: boolean): StoreCommand {
  const role = (args.options.get('role') ?? 'user') as Role
  if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`)
  const mobile = args.options.get('mobile') ?? ''
  if (!v.is(Mobile, mobile)) throw new UsageError('--mobile must be at most 10 digits')
  const displayName = args.options.get('name') ?? ''
  const domain = spaceOption(args)
  return {
    access: 'create',
    run: async (context) => {
      const directory = directoryOf(context)
      // Before the prompt: nobody should type a password twice to learn the user exists, or that the space doesn't.
      if (directory.findByUsername(username)) throw new CommandError(`user ${username} already exists`)
      const space = domain === undefined ? undefined : existingSpace(context, domain)
      const password = await readPassword(passwordFromStdin)
      const user = await directory.add({ username, password, displayName, role, mobile, spaceId: space?.id })
      context.audit('USER_ADDED', username, `role ${role}${space ? `, space ${space.domain}` : ''}`)
      console.log(`added ${user.username} (id ${user.id}, role ${user.role}${space ? `, space ${space.domain}` : ''})`)
    },
  }
}

function listUsers(context: CommandContext): void {
  for (const user of directoryOf(context).list()) {
    console.log([user.id, user.username, user.role, user.disabled ? 'disabled' : 'enabled', user.displayName].join('\t'))
  }
}

async function changePassword(context: CommandContext, username: string, passwordFromStdin: boolean): Promise<void> {
  existingUser(context, username)
  await directoryOf(context).setPassword(username, await readPassword(passwordFromStdin))
  context.audit('USER_PASSWORD_CHANGED', username)
  console.log(`password changed for ${username}`)
}

/** The normalized `--space` domain, undefined without the option. */
function spaceOption(args: ParsedArgs): string | undefined {
  const text = args.options.get('space')
  if (text === undefined) return undefined
  const domain = normalizeDomain(text)
  if (domain === null) throw new UsageError(`--space must be ${DOMAIN_RULE}`)
  return domain
}

function existingSpace(context: CommandContext, domain: string) {
  const space = new SpaceStore(context.db).find(domain)
  if (!space) throw new CommandError(`no such space: ${domain} (spaces list shows them)`)
  return space
}

function moveUser(context: CommandContext, username: string, domain: string): void {
  existingUser(context, username)
  const space = existingSpace(context, domain)
  directoryOf(context).setSpace(username, space.id)
  context.audit('USER_SPACE_CHANGED', username, `space ${space.domain}`)
  console.log(`moved ${username} to space ${space.domain}`)
}

/**
 * The user and its sessions go in one transaction: someone added later under the same name must
 * not inherit the removed user's logins (README "Command line"). With Redis
 * (README "Several nodes") the sessions end right after the removal; should that fail (exit 75),
 * `sessions revoke` ends them.
 */
async function removeUser(context: CommandContext, username: string): Promise<void> {
  const { config, db, clock } = context
  if (config.store === 'sqlite') {
    db.transaction(() => {
      directoryOf(context).remove(username)
      sqliteSessionRecords(db, clock).endAllNow(username, 'user removed', unixSeconds(clock))
    }).immediate()
    return
  }
  const { records, close } = await openSessionRecords(config, clock, db)
  try {
    directoryOf(context).remove(username)
    await records.endAll(username, 'user removed', unixSeconds(clock))
  } finally {
    close()
  }
}

async function changeAccount(context: CommandContext, change: AccountChange, username: string): Promise<void> {
  existingUser(context, username)
  const directory = directoryOf(context)
  if (change === 'remove') await removeUser(context, username)
  else directory.setDisabled(username, change === 'disable')
  context.audit(ACCOUNT_CHANGES[change].event, username)
  console.log(`${ACCOUNT_CHANGES[change].done} ${username}`)
}
