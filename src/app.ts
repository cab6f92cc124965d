/** Builds the HTTP app from its dependencies, so tests can pass a temp store and a movable clock. */
import { Elysia } from 'elysia'
import { accountRoutes } from './account/account-routes'
import type { ApiKeyService } from './api-keys/api-key-service'
import { apiKeyRoutes } from './api-keys/api-key-routes'
import { adminRoutes } from './admin/admin-routes'
import type { AccessGuard } from './auth/access-guard'
import { authPlugin } from './auth/auth-plugin'
import { authRoutes } from './auth/auth-routes'
import type { PasswordLogin } from './auth/password-login'
import type { Clock } from './clock'
import type { AdminCredentials } from './core-api/admin-credentials'
import { AdminSessions } from './core-api/admin-sessions'
import { coreApiRoutes } from './core-api/core-api-routes'
import type { Directory } from './directory/directory'
import type { EmbeddedDirectory } from './directory/embedded'
import { healthRoutes } from './health/health-routes'
import { StoreStatus, type DeepCheck } from './health/store-status'
import { clientIpResolver } from './http/client-ip'
import { httpPlugin, RouteIndex } from './http/http-plugin'
import { CallHistory } from './history/call-history'
import { CdrSource } from './history/cdr-reader'
import { historyRoutes } from './history/history-routes'
import { mediaRoutes } from './media/media-routes'
import type { Metrics } from './metrics/metrics'
import type { DocumentedRoute } from './openapi/openapi-document'
import { openApiRoutes } from './openapi/openapi-routes'
import { metricsHooks, metricsRoutes } from './metrics/metrics-routes'
import type { PbxStateView } from './pbx/pbx-state'
import { pbxRoutes } from './pbx/pbx-routes'
import type { ProviderSource } from './pbx/peer-state'
import { RecordingOwners, type RecordingsAccess } from './media/recording-owners'
import type { PresenceHub } from './presence/hub'
import { ingestRoutes, type PresenceSource } from './presence/ingest-routes'
import type { PresenceBus } from './presence/bus'
import type { PersonalFeed } from './presence/personal/personal-feed'
import { presenceRoutes, type PresenceSettings } from './presence/presence-routes'
import type { SnapshotSink } from './presence/snapshot'
import type { Upgrade } from './presence/websocket'
import type { SecurityLogSink } from './security-log/security-log'
import type { StoreOutage } from './store/database'
import type { StoreHealth } from './store/state-store'
import type { TokenService } from './tokens/tokens'
import type { SessionService } from './sessions/sessions'
import { sessionRoutes } from './sessions/session-routes'
import { spaceRoutes } from './spaces/space-routes'
import type { SpaceService } from './spaces/spaces'

export interface AppDeps {
  basePath: string
  trustedProxies: readonly string[]
  clock: Clock
  directory: Directory
  tokens: TokenService
  /** Every credential the app accepts (auth/access-guard.ts); the presence hub re-checks streams with it too. */
  guard: AccessGuard
  sessions: SessionService
  /** API keys (README "API keys"); its authenticator is one of the guard's. */
  apiKeys: ApiKeyService
  /** README "Spaces": refuses logins in an expired space, and serves `admin/spaces`. Its check is among the guard's. */
  spaces: SpaceService
  logins: PasswordLogin
  securityLog: SecurityLogSink
  hub: PresenceHub
  presence: PresenceSettings
  /** Where full presence snapshots go: the personalised `sub/me/*` channels and the legacy shared ones (README "Personalised presence"). */
  feed: PersonalFeed
  /** Shared channels' publishes (README "Several nodes"); the feed must use the same one. */
  bus: PresenceBus
  /** MikoPBX's CDR file (README "Call history"); without it `history` and `calls` are empty. */
  cdr?: CdrSource
  /** README "Recordings: check-media-access"; default `owner`. */
  recordingsAccess?: RecordingsAccess
  /** The state engine's cache (README "Live PBX state"); absent when AMI is off. */
  pbx?: PbxStateView
  /** Channels that engine publishes itself, refused to `pub/`. */
  producedHere?: (channel: string) => boolean
  /** `presence_source` (README "Personalised presence"); default "pub". The ingest routes answer 409 unless it is "ingest". */
  presenceSource?: PresenceSource
  /** Where ingested snapshots go (README "Ingest from an external producer"); required with presenceSource "ingest". */
  snapshotSink?: SnapshotSink
  /** Service log lines (a producer instance change); console by default. */
  log?: (line: string) => void
  /** MikoPBX's provider trunks, for `registry` and getRegistry; absent in embedded mode. */
  providers?: ProviderSource | null
  /** The MikoPBX core-compatible routes (README "MikoPBX core-compatible API"); not served when absent (`core_api = "off"`). */
  coreApi?: { admins: AdminCredentials; sessions?: AdminSessions }
  /** README "Metrics": absent with `metrics = "off"`. `onMainListener` false when `metrics_port` serves them instead. */
  metrics?: { registry: Metrics; onMainListener: boolean }
  /** The database's last-known state for `health`; a fresh one when absent. */
  storeStatus?: StoreStatus
  /** The shared store's state for `health` (README "Several nodes"): StateStore.health; "ok" when absent. */
  storeHealth?: () => StoreHealth
  /** What `health?deep=1` reads: the store, and the MikoPBX file when that directory is active. */
  deepChecks?: readonly DeepCheck[]
  /**
   * The admin API (README "Admin API"): the embedded directory it changes (null with MikoPBX's,
   * whose user routes answer 409), what to tell after a change, and security.log's path.
   * Not served when absent.
   */
  admin?: { users: EmbeddedDirectory | null; usersChanged?: () => void; securityLogPath: string }
  /** Socket peers and per-request timeouts: the app's own Bun server unless a test supplies one. */
  server?: () => ServerControls | null | undefined
}

/** The parts of Bun's server the routes use. Reading `server` from Elysia's context would cost every request. */
export interface ServerControls {
  requestIP(request: Request): { address: string } | null
  timeout?(request: Request, seconds: number): void
  upgrade?: Upgrade
}

export function buildApp(deps: AppDeps) {
  const { basePath, trustedProxies, clock, directory, tokens, sessions, spaces, logins, securityLog, hub, guard } = deps
  const routes = new RouteIndex()
  const server: () => ServerControls | null | undefined = deps.server ?? (() => app.server)
  const peerOf = (request: Request): string | undefined => server()?.requestIP(request)?.address
  // Streams must outlive the server's idle timeout (Bun's 10 s, Elysia's 30 s).
  const keepOpen = (request: Request): void => server()?.timeout?.(request, 0)
  const upgrade: Upgrade = (request, options) => server()?.upgrade?.(request, options) ?? false
  const clientIpOf = clientIpResolver(trustedProxies, peerOf)
  const auth = authPlugin({ guard, clock, clientIpOf })
  const cdr = deps.cdr ?? new CdrSource(null)
  const history = new CallHistory(cdr, (number) => isExtension(directory, number))
  const owners = (deps.recordingsAccess ?? 'owner') === 'owner' ? new RecordingOwners(cdr, clock) : null
  const { pbx, providers = null, coreApi } = deps
  const metrics = deps.metrics?.registry
  const storeStatus = deps.storeStatus ?? new StoreStatus(clock)
  if (metrics) logins.onOutcome((outcome) => metrics.loginDone(outcome))
  const ingest = ingestDeps(deps)
  const moduleRoutes = new Elysia({ prefix: basePath })
    .use(authRoutes({ clock, logins, sessions, accessTtl: tokens.settings.accessTtl, auth, securityLog, clientIpOf, spaces }))
    .use(sessionRoutes({ clock, auth, sessions, securityLog, clientIpOf }))
    .use(accountRoutes({ clock, auth, lastUsersState: (user) => usersStateFor(deps.feed, hub, user.username), history }))
    .use(apiKeyRoutes({ clock, auth, apiKeys: deps.apiKeys, directory, securityLog, clientIpOf }))
    .use(historyRoutes({ clock, auth, history }))
    .use(mediaRoutes({ clock, guard, securityLog, clientIpOf, owners }))
    .use(healthRoutes({ clock, pbx, storeStatus, storeHealth: deps.storeHealth ?? (() => 'ok'), deepChecks: deps.deepChecks ?? [], peerOf }))
    .use(ingestRoutes({ clock, peerOf, ...ingest }))
    .use(presenceRoutes({ clock, guard, clientIpOf, hub, settings: deps.presence, peerOf, keepOpen, upgrade, producedHere: deps.producedHere, feed: deps.feed, bus: deps.bus }))
    .use(pbxRoutes({ clock, auth, directory, pbx, providers }))
    .use(spaceRoutes({ clock, auth, spaces, securityLog, clientIpOf }))
    .use(
      deps.admin
        ? adminRoutes({ clock, auth, directory, sessions, securityLog, clientIpOf, usersChanged: () => {}, ...deps.admin })
        : new Elysia({ name: 'admin-off' }),
    )
    .use(openApiRoutes({ auth, basePath, routes: (): readonly DocumentedRoute[] => app.routes }))
  // The core-compatible routes live outside the base path, where MikoPBX's core serves them.
  const errorObserver = {
    answered: (route: string | undefined, status: number) => metrics?.requestDone(route, status),
    storeOutage: (outage: StoreOutage) => {
      storeStatus.outage()
      metrics?.storeOutage(outage)
    },
  }
  const app = new Elysia()
    .use(metrics ? metricsHooks(metrics) : new Elysia({ name: 'metrics-off' }))
    .use(httpPlugin({ clock, routes, observer: errorObserver }))
    .use(moduleRoutes)
    .use(metrics && deps.metrics!.onMainListener ? metricsRoutes({ clock, metrics, peerOf }) : new Elysia({ name: 'metrics-elsewhere' }))
    .use(
      coreApi
        ? coreApiRoutes({
            clock,
            guard,
            logins,
            admins: coreApi.admins,
            sessions: coreApi.sessions ?? new AdminSessions(clock),
            securityLog,
            clientIpOf,
            peerOf,
            pbx,
            providers,
          })
        : new Elysia({ name: 'core-api-off' }),
    )
  routes.load(app.routes)
  return app
}

/** The ingest routes' source and sink; without "ingest" nothing reaches the sink, so none is needed. */
function ingestDeps({ presenceSource: source = 'pub', snapshotSink, log = (line) => console.log(line) }: AppDeps) {
  if (source === 'ingest' && !snapshotSink) throw new Error('presence_source "ingest" needs a snapshot sink')
  return { source, sink: snapshotSink ?? { full: () => {} }, log }
}

/** Only extension-like numbers (up to 6 digits) are looked up, so external numbers never fill the directory's cache. */
function isExtension(directory: Directory, number: string): boolean {
  return /^\d{1,6}$/.test(number) && directory.findByUsername(number) !== null
}

export type App = ReturnType<typeof buildApp>

/**
 * What `users` shows a user (README "Personalised presence"): its personalised users-state, as
 * `sub/me/users-state` would; while the shared channel is on and holds a body the feed couldn't
 * read (a free-form `pub/` message), that body, which the user may read from the channel anyway.
 */
function usersStateFor(feed: PersonalFeed, hub: PresenceHub, username: string): unknown {
  return feed.snapshotFor('users-state', username) ?? (feed.legacy ? hub.lastSnapshot('users-state') : null)
}
