/** Builds the real app on a temp SQLite file with a movable clock; every part is the production one. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Database } from 'bun:sqlite'
import { buildApp, type App } from '../src/app'
import { AccessGuard } from '../src/auth/access-guard'
import { ApiKeyAuthenticator } from '../src/api-keys/api-key-authenticator'
import { ApiKeyService } from '../src/api-keys/api-key-service'
import { ApiKeyStore } from '../src/api-keys/api-key-store'
import { BearerAuthenticator, type ExternalIssuer } from '../src/auth/bearer-authenticator'
import { DEFAULT_DIGEST_REALM } from '../src/auth/digest'
import { DigestAuthenticator } from '../src/auth/digest-authenticator'
import { channelSpecs, PresenceHub } from '../src/presence/hub'
import { PersonalFeed } from '../src/presence/personal/personal-feed'
import type { ScopeRules } from '../src/presence/personal/scope'
import type { Clock } from '../src/clock'
import type { Directory } from '../src/directory/directory'
import { EmbeddedDirectory } from '../src/directory/embedded'
import { CdrSource } from '../src/history/cdr-reader'
import { SecurityLog } from '../src/security-log/security-log'
import { openStore } from '../src/store/database'
import { createServices, type ServiceSettings, type Services } from '../src/services'
import { SqliteStateStore } from '../src/store/sqlite-state-store'
import type { StateStore } from '../src/store/state-store'
import type { ThrottleSettings } from '../src/throttle/throttle-rule'
import { KeyRing } from '../src/tokens/key-ring'
import type { RecordingsAccess } from '../src/media/recording-owners'
import type { AppDeps } from '../src/app'
import { readSchema } from '../src/health/store-status'
import { serverMetrics, type Metrics } from '../src/metrics/metrics'
import { SpaceService } from '../src/spaces/spaces'

export const BASE = '/pbxcore/api/module-softphone-backend/v1'
/** A fixed, obviously fake key: 64 hex chars. */
export const TEST_KEY_TEXT = 'a1'.repeat(32)

export class ManualClock implements Clock {
  constructor(private ms = Date.UTC(2026, 10, 23, 12, 0, 0)) {}
  now(): number {
    return this.ms
  }
  advance(seconds: number): void {
    this.ms += seconds * 1000
  }
  get seconds(): number {
    return Math.floor(this.ms / 1000)
  }
}

export interface Harness {
  app: App
  clock: ManualClock
  db: Database
  dir: string
  directory: EmbeddedDirectory
  tokens: Services['tokens']
  services: Services
  apiKeys: ApiKeyService
  spaces: SpaceService
  hub: PresenceHub
  feed: PersonalFeed
  metrics: Metrics
  /** What the metrics' event-loop lag gauge reads, in seconds. */
  eventLoopLag: { seconds: number }
  securityLog: SecurityLog
  key: Uint8Array
  /** The signing keys: `key` as the legacy key, and no ring until a test rotates (`keys.replace`). */
  keys: KeyRing
  /** With `listen`: where the real server listens. */
  readonly url: string
  /** `peer` is the socket address the request comes from; default 127.0.0.1 (nginx). */
  request(path: string, init?: RequestInit & { peer?: string }): Promise<Response>
  json(path: string, body: unknown, init?: RequestInit & { peer?: string }): Promise<Response>
  login(username?: string, password?: string): Promise<{ access_token: string; refresh_token: string }>
  logLines(): Array<Record<string, unknown>>
  close(): void
}

export interface HarnessOptions extends Partial<ServiceSettings> {
  /** Login throttling's settings (README "Login throttling"). */
  throttle?: ThrottleSettings
  /** The state store; SQLite in the harness's own file by default. */
  stateStore?: (db: Database, clock: ManualClock, throttle: ThrottleSettings) => StateStore
  /** Serve on a real loopback port (for WebSocket), instead of in-process requests with a fake peer. */
  listen?: boolean
  /** MikoPBX's CDR file for `history` and `calls` (test/cdr-fixture.ts); none by default. */
  cdrPath?: string
  /** check-media-access's rule (README "Recordings: check-media-access"); `owner` by default, as in production. */
  recordingsAccess?: RecordingsAccess
  /** Serves this directory instead of the embedded one (which `directory` still names). */
  userDirectory?: Directory
  /** The PBX state cache (test/pbx-fake.ts), providers and core API, passed on to buildApp. */
  pbx?: AppDeps['pbx']
  producedHere?: AppDeps['producedHere']
  /** `presence_source` and the ingest routes' sink; "pub" and none by default. */
  presenceSource?: AppDeps['presenceSource']
  snapshotSink?: AppDeps['snapshotSink']
  /** Where service log lines go; console by default. */
  log?: AppDeps['log']
  /** presence_legacy_channels; "on" by default, as in production. */
  legacyChannels?: 'on' | 'off'
  /** The scope rules of sub/me/*; the production defaults (states "all", calls "own", no groups) by default. */
  scopeRules?: ScopeRules
  providers?: AppDeps['providers']
  coreApi?: AppDeps['coreApi']
  /** false: `metrics = "off"`, nothing counted (bench/metrics.ts compares both). */
  metrics?: boolean
  /** false: `metrics_port` serves /metrics, so the main listener doesn't. */
  metricsOnMainListener?: boolean
  /** health?deep=1's checks; the store's own by default. */
  deepChecks?: AppDeps['deepChecks']
  /** The shared store's state for health; "ok" (SQLite) by default. */
  storeHealth?: AppDeps['storeHealth']
  /** `api_key_idle_minutes`; 60 by default, as in production. */
  apiKeyIdleMinutes?: number
  /** The API keys' table; a test may pass one that counts writes. */
  apiKeyStore?: (db: Database) => ApiKeyStore
  /**
   * The external JWT issuer (README "External tokens"), built once the harness's directory and
   * clock exist, e.g. `(directory, clock) => new ExternalJwtIssuer(settings, keys, directory, clock)`.
   */
  externalIssuer?: (directory: Directory, clock: ManualClock) => ExternalIssuer
}

export async function createHarness({
  listen = false,
  cdrPath,
  recordingsAccess,
  userDirectory,
  pbx,
  producedHere,
  presenceSource,
  snapshotSink,
  log,
  legacyChannels = 'on',
  scopeRules = { states: 'all', calls: 'own', groups: [] },
  providers,
  coreApi,
  metrics: metricsOn = true,
  metricsOnMainListener = true,
  deepChecks,
  storeHealth,
  apiKeyIdleMinutes = 60,
  apiKeyStore = (db) => new ApiKeyStore(db),
  externalIssuer,
  throttle = { accountFreeFailures: 5, ipFreeFailures: 20, maxDelay: 900 },
  stateStore = (db, clock, throttle) => new SqliteStateStore(db, clock, throttle),
  ...settings
}: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'softphone-test-'))
  const clock = new ManualClock()
  const db = openStore(join(dir, 'softphone.db'))
  const key = Buffer.from(TEST_KEY_TEXT, 'latin1')
  const directory = new EmbeddedDirectory(db, clock)
  const served = userDirectory ?? directory
  const keys = new KeyRing(key)
  const store = stateStore(db, clock, throttle)
  const services = createServices(store, keys, clock, served, {
    accessTtl: 3600,
    refreshTtl: 2592000,
    acceptLegacyTokens: true,
    rotation: 'compatible',
    passwordConcurrency: 2,
    ...settings,
  })
  const { tokens, sessions, logins } = services
  const securityLog = new SecurityLog(join(dir, 'log', 'security.log'), clock)
  // In-process requests have no socket: by default they arrive as nginx's would, from loopback.
  const peers = new WeakMap<Request, string>()
  const apiKeys = new ApiKeyService(apiKeyStore(db), served, clock, { idleMinutes: apiKeyIdleMinutes })
  const spaces = new SpaceService(db, clock)
  const digest = new DigestAuthenticator({ realm: DEFAULT_DIGEST_REALM, keys, clock, directory: served, throttle: services.throttle, securityLog })
  const guard = new AccessGuard(new BearerAuthenticator(tokens, served, externalIssuer?.(served, clock) ?? null), [new ApiKeyAuthenticator(apiKeys), digest], [spaces.check])
  const hub = new PresenceHub(
    { channels: channelSpecs(['extra-news:3']), maxPerUser: 10, sweepMs: 20 },
    guard,
    clock,
  )
  const bus = store.bus(hub.sharedChannels())
  const feed = new PersonalFeed({ hub, clock, directory: served, rules: scopeRules, legacy: legacyChannels === 'on', bus })
  const cdr = new CdrSource(cdrPath ?? null)
  const eventLoopLag = { seconds: 0 }
  const metrics = serverMetrics({ clock, basePath: BASE, hub, pbx, services, eventLoopLag: () => eventLoopLag.seconds })
  const app = buildApp({
    guard,
    metrics: metricsOn ? { registry: metrics, onMainListener: metricsOnMainListener } : undefined,
    deepChecks: deepChecks ?? [{ name: 'db', run: () => readSchema(db) }],
    storeHealth,
    server: listen ? undefined : () => ({ requestIP: (request: Request) => ({ address: peers.get(request) ?? '127.0.0.1' }) }),
    hub,
    feed,
    bus,
    presence: { longPollHoldMs: 300, heartbeatMs: 50 },
    basePath: BASE,
    trustedProxies: ['127.0.0.1', '::1'],
    clock,
    directory: served,
    tokens,
    sessions,
    apiKeys,
    spaces,
    logins,
    securityLog,
    cdr,
    recordingsAccess,
    admin: { users: userDirectory ? null : directory, securityLogPath: securityLog.path },
    pbx,
    producedHere,
    presenceSource,
    snapshotSink,
    log,
    providers,
    coreApi,
  })
  if (listen) app.listen({ hostname: '127.0.0.1', port: 0 })
  const request = (path: string, init?: RequestInit & { peer?: string }) => {
    const built = new Request(`http://localhost${path}`, init)
    if (init?.peer) peers.set(built, init.peer)
    return app.handle(built)
  }
  const json = (path: string, body: unknown, init: RequestInit & { peer?: string } = {}) =>
    request(path, {
      method: 'POST',
      ...init,
      headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })
  return {
    app,
    clock,
    db,
    dir,
    directory,
    tokens,
    services,
    apiKeys,
    spaces,
    hub,
    feed,
    metrics,
    eventLoopLag,
    securityLog,
    key,
    keys,
    request,
    json,
    async login(username = '201', password = 'secret-201') {
      const response = await json(`${BASE}/auth/login`, { username, password })
      if (response.status !== 200) throw new Error(`login failed: ${response.status}`)
      return (await response.json()) as { access_token: string; refresh_token: string }
    },
    logLines() {
      const text = readFileSync(join(dir, 'log', 'security.log'), 'utf8')
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
    },
    get url() {
      return app.server ? `http://127.0.0.1:${app.server.port}` : ''
    },
    close() {
      hub.shutdown()
      if (app.server) void app.stop(true)
      securityLog.close()
      cdr.close()
      db.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
