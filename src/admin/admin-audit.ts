/** Every admin action is a security-log line naming its actor (README "Admin API"). */
import type { DirectoryUser } from '../directory/directory'
import type { ClientIpOf } from '../http/client-ip'
import type { SecurityEvent, SecurityLogSink } from '../security-log/security-log'

export type AdminAction = Pick<SecurityEvent, 'event' | 'user' | 'reason' | 'sid'>

export type AdminAudit = (request: Request, actor: DirectoryUser, action: AdminAction) => void

export function adminAudit(securityLog: SecurityLogSink, clientIpOf: ClientIpOf): AdminAudit {
  return (request, actor, action) =>
    securityLog.record({ ...action, ...clientIpOf(request), actor: actor.username, ua: request.headers.get('user-agent') })
}
