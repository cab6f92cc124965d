/** The admin API under `<base>/admin/` (README "Admin API"): users, their sessions, the security log. */
import { Elysia } from 'elysia'
import type { AuthPlugin } from '../auth/auth-plugin'
import type { Clock } from '../clock'
import type { Directory } from '../directory/directory'
import type { EmbeddedDirectory } from '../directory/embedded'
import type { ClientIpOf } from '../http/client-ip'
import type { SecurityLogSink } from '../security-log/security-log'
import type { SessionService } from '../sessions/sessions'
import { adminAudit } from './admin-audit'
import { SecurityLogQuery } from './admin-schemas'
import { adminSessionRoutes } from './admin-session-routes'
import { adminUserRoutes } from './admin-user-routes'
import { tailSecurityLog } from './security-log-tail'

export interface AdminRoutesDeps {
  clock: Clock
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  /** The directory users log in with, for the role of a session's owner. */
  directory: Directory
  /** The embedded directory, which the user routes change; null with MikoPBX's (409 there). */
  users: EmbeddedDirectory | null
  usersChanged: () => void
  sessions: SessionService
  securityLog: SecurityLogSink
  /** `security.log`; its rotations `.1` … `.5` are read after it. */
  securityLogPath: string
  clientIpOf: ClientIpOf
}

export function adminRoutes(deps: AdminRoutesDeps) {
  const { clock, auth, directory, users, usersChanged, sessions, securityLog, securityLogPath, clientIpOf } = deps
  const audit = adminAudit(securityLog, clientIpOf)
  return new Elysia({ name: 'admin-routes' })
    .use(auth)
    .use(adminUserRoutes({ clock, auth, users, usersChanged, sessions, audit }))
    .use(adminSessionRoutes({ clock, auth, directory, sessions, audit }))
    .get(
      '/admin/security-log',
      async ({ query: { limit, ...filter } }) => {
        const tail = await tailSecurityLog(securityLogPath, filter, limit)
        return { success: true, events: tail.events, more: tail.more }
      },
      { auth: 'admin', query: SecurityLogQuery },
    )
}
