/** `softphone-backend sessions list|revoke --user <ext>`: what an operator does for a lost phone. */
import { unixSeconds } from '../clock'
import { openSessionRecords } from './redis-once'
import { UsageError, type ParsedArgs } from './args'
import { existingUser, type CommandContext, type StoreCommand } from './store-command'

export const SESSIONS_OPTIONS = ['user'] as const

export const SESSIONS_HELP = `softphone-backend sessions <command> --user <ext>
  list      the user's active sessions: id, created, last used, IP, user agent
  revoke    end every session of the user, and every legacy token issued so far
A running server picks the change up within a second.`

/** Checks the whole command line before anything is opened: a usage error touches no file. */
export function parseSessionsCommand(args: ParsedArgs): StoreCommand {
  const username = args.options.get('user')
  if (!username) throw new UsageError(SESSIONS_HELP)
  switch (args.positionals[1]) {
    case 'list':
      return { access: 'read', run: (context) => listSessions(context, username) }
    case 'revoke':
      return { access: 'write', run: (context) => revokeSessions(context, username) }
    default:
      throw new UsageError(SESSIONS_HELP)
  }
}

async function listSessions(context: CommandContext, username: string): Promise<void> {
  existingUser(context, username)
  const time = (seconds: number) => new Date(seconds * 1000).toISOString()
  const { records, close } = await openSessionRecords(context.config, context.clock, context.db)
  try {
    for (const session of await records.activeForUser(username, unixSeconds(context.clock))) {
      console.log([session.id, time(session.created_at), time(session.last_used_at), session.ip, session.user_agent].join('\t'))
    }
  } finally {
    close()
  }
}

async function revokeSessions(context: CommandContext, username: string): Promise<void> {
  existingUser(context, username)
  const { config, db, clock } = context
  // A running server's in-memory copy reloads when it sees this commit (store/change-watch.ts), or,
  // with Redis, notes the announcement.
  const { records, close } = await openSessionRecords(config, clock, db)
  let ended: number
  try {
    ended = (await records.endAll(username, 'revoked by operator', unixSeconds(clock))).length
  } finally {
    close()
  }
  context.audit('SESSION_REVOKED', username, `operator revoke: ${ended} sessions`)
  console.log(`ended ${ended} sessions of ${username}`)
}
