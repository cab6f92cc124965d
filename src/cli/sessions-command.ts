/** `softphone-backend sessions list|revoke --user <ext>`: what an operator does for a lost phone. */
import type { Database } from 'bun:sqlite'
import { unixSeconds, type Clock } from '../clock'
import { SessionStore } from '../sessions/session-store'
import { endAllSessions } from '../sessions/sessions'
import { Revocations } from '../tokens/revocations'
import { UsageError, type ParsedArgs } from './args'

export const SESSIONS_OPTIONS = ['user'] as const

export const SESSIONS_HELP = `softphone-backend sessions <command> --user <ext>
  list      the user's active sessions: id, created, last used, IP, user agent
  revoke    end every session of the user, and every legacy token issued so far
A running server picks the change up within a second.`

export function sessionsCommand(args: ParsedArgs, db: Database, clock: Clock): void {
  const username = args.options.get('user')
  if (!username) throw new UsageError(SESSIONS_HELP)
  const store = new SessionStore(db)
  switch (args.positionals[1]) {
    case 'list':
      for (const session of store.activeForUser(username, unixSeconds(clock))) {
        const time = (seconds: number) => new Date(seconds * 1000).toISOString()
        console.log([session.id, time(session.created_at), time(session.last_used_at), session.ip, session.user_agent].join('\t'))
      }
      return
    case 'revoke': {
      // The server's in-memory copy reloads when it sees this commit (store/change-watch.ts).
      const ended = endAllSessions(store, new Revocations(db, clock), username, 'revoked by operator', unixSeconds(clock))
      console.log(`ended ${ended} sessions of ${username}`)
      return
    }
    default:
      throw new UsageError(SESSIONS_HELP)
  }
}
