/** Builds the HTTP app from its dependencies, so tests can pass a temp store and a movable clock. */
import { Elysia } from 'elysia'
import { accountRoutes } from './account/account-routes'
import { AccessGuard } from './auth/access-guard'
import { authRoutes } from './auth/auth-routes'
import type { Clock } from './clock'
import type { Directory } from './directory/directory'
import { healthRoutes } from './health/health-routes'
import { clientIpResolver, type PeerSource } from './http/client-ip'
import { httpPlugin, RouteIndex } from './http/http-plugin'
import { mediaRoutes } from './media/media-routes'
import type { SecurityLogSink } from './security-log/security-log'
import type { TokenService } from './tokens/tokens'
import type { SessionService } from './sessions/sessions'
import type { LoginThrottle } from './throttle/login-throttle'
import { sessionRoutes } from './sessions/session-routes'

export interface AppDeps {
  basePath: string
  trustedProxies: readonly string[]
  clock: Clock
  directory: Directory
  tokens: TokenService
  sessions: SessionService
  throttle: LoginThrottle
  securityLog: SecurityLogSink
  /** Where socket peers come from; the app's own Bun server unless a test supplies one. */
  peers?: () => PeerSource | null | undefined
}

export function buildApp(deps: AppDeps) {
  const { basePath, trustedProxies, clock, directory, tokens, sessions, throttle, securityLog } = deps
  const routes = new RouteIndex()
  const guard = new AccessGuard(tokens, directory)
  const clientIpOf = clientIpResolver(trustedProxies, deps.peers ?? (() => app.server))
  const app = new Elysia({ prefix: basePath })
    .use(httpPlugin({ clock, routes }))
    .use(authRoutes({ clock, directory, sessions, throttle, accessTtl: tokens.settings.accessTtl, guard, securityLog, clientIpOf }))
    .use(sessionRoutes({ clock, guard, sessions, securityLog, clientIpOf }))
    .use(accountRoutes({ clock, guard, lastUsersState: () => null }))
    .use(mediaRoutes({ clock, guard, securityLog, clientIpOf }))
    .use(healthRoutes({ clock }))
  routes.load(app.routes)
  return app
}

export type App = ReturnType<typeof buildApp>
