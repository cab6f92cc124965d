/** `softphone-backend serve`: opens state, listens, and handles SIGTERM/SIGINT/SIGHUP (README "Command line"). */
import type { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { buildApp } from './app'
import { AccessGuard } from './auth/access-guard'
import { BearerAuthenticator } from './auth/bearer-authenticator'
import { ApiKeyAuthenticator } from './api-keys/api-key-authenticator'
import { ApiKeyService } from './api-keys/api-key-service'
import { ApiKeyStore } from './api-keys/api-key-store'
import { ExternalJwtIssuer, readKeysAtStart, reloadExternalKeys } from './auth/external-jwt'
import { DigestAuthenticator } from './auth/digest-authenticator'
import { channelSpecs, PresenceHub } from './presence/hub'
import { INGEST_LIMITS } from './presence/ingest-routes'
import { PersonalFeed } from './presence/personal/personal-feed'
import { scopeRules } from './presence/personal/scope'
import { SNAPSHOT_KINDS } from './presence/snapshot'
import { systemClock, unixSeconds, type Clock } from './clock'
import { externalJwtSettings } from './config/load'
import type { Config } from './config/schema'
import { DirectoryAdminCredentials, MikoPbxAdminCredentials } from './core-api/admin-credentials'
import { CachedDirectory } from './directory/cached'
import type { Directory, DirectoryUser } from './directory/directory'
import { EmbeddedDirectory } from './directory/embedded'
import { cdrDatabasePath } from './history/cdr-location'
import { CdrSource } from './history/cdr-reader'
import { MikoPbxDirectory } from './directory/mikopbx'
import { openAtStart } from './directory/mikopbx-file'
import { MikoPbxProviders } from './directory/mikopbx-providers'
import { AmiClient } from './pbx/ami/ami-client'
import { amiSettings } from './pbx/ami/ami-config'
import { mobileOwners } from './pbx/mobile-owners'
import { StateEngine } from './pbx/state-engine'
import { DEFAULT_LOG_LIMITS, SecurityLog } from './security-log/security-log'
import { startNotifier } from './systemd/notify'
import { checkStore } from './systemd/store-check'
import { watchDatabaseChanges } from './store/change-watch'
import { openStore } from './store/database'
import { createServices } from './services'
import { SqliteStateStore } from './store/sqlite-state-store'
import { RedisStateStore } from './store/redis/redis-state-store'
import { isRedisUrlError, parseRedisUrl, type RedisTarget } from './store/redis/redis-url'
import { producerSink } from './presence/producer-sink'
import type { StateStore } from './store/state-store'
import type { ThrottleSettings } from './throttle/throttle-rule'
import { SpaceService } from './spaces/spaces'
import { readSchema } from './health/store-status'
import { EventLoopLag } from './metrics/event-loop-lag'
import { serverMetrics } from './metrics/metrics'
import { listenMetrics, METRICS_HOST } from './metrics/metrics-listener'
import { openKeyRing, ringPathFor, watchKeyRing } from './tokens/key-ring'
import { VERSION } from './version'

/** sysexits.h EX_UNAVAILABLE: the port is taken, most likely by another instance. */
export const EX_UNAVAILABLE = 69
const SHUTDOWN_GRACE_MS = 5000
const PURGE_INTERVAL_MS = 60 * 60 * 1000
/** Open streams re-check their tokens this often (README "Presence: publish and subscribe"). */
const SWEEP_INTERVAL_MS = 1000
/** API keys' last uses are written this often, never per request (README "API keys"). */
const API_KEY_FLUSH_INTERVAL_MS = 5000
/** Largest body any route accepts (an ingested snapshot, 8 MiB), plus framing slack. */
const MAX_REQUEST_BODY = INGEST_LIMITS.maxBytes + 4096

export class ListenError extends Error {
  override name = 'ListenError'
}

export function databasePath(config: Config): string {
  return join(config.data_dir, 'softphone.db')
}

/** What `config check` and the STARTUP line say about the directory: which one, and the file it reads. */
export function directoryDescription(config: Config): string {
  return config.directory === 'mikopbx' ? `mikopbx ${config.mikopbx_db} (read-only)` : `embedded ${databasePath(config)}`
}

/**
 * The user directory, cached. MikoPBX's is opened first (a missing file is a config error) and
 * watched for the PBX's own changes; the embedded one lives in the service's store.
 */
function openUserDirectory(config: Config, clock: Clock) {
  let cached: CachedDirectory | undefined
  const pbx = config.directory === 'mikopbx' ? openAtStart(config.mikopbx_db, () => cached?.invalidate(), clock) : null
  return {
    /** MikoPBX's database, for its providers and web admin too; null with the embedded directory. */
    file: pbx,
    /** The embedded directory behind the cache, for the admin API; null with MikoPBX's. */
    embedded: null as EmbeddedDirectory | null,
    attach(db: Database): CachedDirectory {
      // The admin API sets passwords: the same rules and realm as the `users` command.
      this.embedded = pbx ? null : new EmbeddedDirectory(db, clock, config.password_min_length, config.digest_realm)
      cached = new CachedDirectory(this.embedded ?? new MikoPbxDirectory(pbx!))
      return cached
    },
    close(): void {
      pbx?.close()
    },
  }
}

/** How check-media-access decides, said at start-up (README "Recordings: check-media-access"). */
export function recordingsAccessLine(mode: Config['recordings_access'], cdrPath: string | null): string {
  if (mode === 'any') return 'recordings: any valid access token opens any recording (recordings_access = "any")'
  return cdrPath
    ? 'recordings: a user opens only its own calls\' recordings, admins any (recordings_access = "owner")'
    : 'recordings: no call-history source, so only admins open recordings (recordings_access = "owner")'
}

/** Where sessions and revocations live; Redis named by its label, which leaves the password out (README "Several nodes"). */
export function storeDescription(config: Config): string {
  if (config.store === 'sqlite') return 'sqlite'
  const target = parseRedisUrl(config.redis_url)
  return isRedisUrlError(target) ? 'redis' : `redis at ${target.label}`
}

/**
 * With `ami = "on"`, the AMI client and the state engine that publishes `users-state` and
 * `active-calls` from it (README "Live PBX state"); null otherwise. Connecting starts at once and
 * never delays the start: AMI may come up later. With several nodes on one PBX only the holder of
 * its producer lock publishes (README "Several nodes").
 */
function startPbxState(config: Config, directory: Directory, feed: PersonalFeed, store: StateStore, clock: Clock, listUsers: (() => DirectoryUser[]) | null) {
  const settings = amiSettings(config)
  if (!settings) return null
  const log = (line: string) => console.log(line)
  const link = new AmiClient({ ...settings, log })
  const producer = store.leadership(`${config.ami_host}:${config.ami_port}`)
  const engine = new StateEngine({
    link,
    clock,
    log,
    nameOf: (extension) => {
      const user = directory.findByUsername(extension)
      return user && !user.disabled ? user.displayName : null
    },
    userOfMobile: listUsers ? mobileOwners(listUsers, clock) : () => null,
    // Only the source that owns presence feeds the channels (README "Personalised presence").
    sink: config.presence_source === 'ami' ? producerSink(feed, producer) : { full: () => {} },
  })
  engine.start()
  link.start()
  producer.start()
  return {
    engine,
    stop(): void {
      engine.stop()
      link.close()
    },
  }
}

/** Where users-state and active-calls come from when AMI doesn't produce them (README "Personalised presence"). */
function presenceSourceLine(source: Exclude<Config['presence_source'], 'ami'>): string {
  return source === 'ingest'
    ? 'presence: users-state and active-calls come from PUT internal/monitor-snapshot/* on loopback (presence_source = "ingest")'
    : 'presence: users-state and active-calls come from pub/ (presence_source = "pub")'
}

/**
 * Background writes of the API keys' table: a failure (the database locked, the disk full) is
 * said and retried at the next turn. A last use not written only makes its key look idle sooner.
 */
function writeApiKeys(what: string, write: () => void): void {
  try {
    write()
  } catch (error) {
    console.error(`API keys: ${what}: ${(error as { code?: string }).code ?? (error as Error).message}`)
  }
}

function throttleSettings(config: Config): ThrottleSettings {
  return {
    accountFreeFailures: config.throttle_account_failures,
    ipFreeFailures: config.throttle_ip_failures,
    maxDelay: config.throttle_max_delay,
  }
}

/** Where sessions, revocations, throttle counters and the presence bus live (README "Several nodes"). */
function openStateStore(config: Config, db: Database, clock: Clock): StateStore {
  const throttle = throttleSettings(config)
  if (config.store === 'sqlite') return new SqliteStateStore(db, clock, throttle)
  // The configuration was validated: a redis_url that doesn't parse never gets here.
  const target = parseRedisUrl(config.redis_url) as RedisTarget
  return new RedisStateStore({ target, staleSeconds: config.redis_stale_seconds, throttle }, clock, (line) => console.log(line))
}

/** The hourly purge of what can no longer matter; a store that fails now is purged next time. */
async function purgeState(store: StateStore, now: number): Promise<void> {
  try {
    await store.purgeExpired(now)
  } catch (error) {
    console.error(`state store: purge not done: ${(error as { code?: string }).code ?? (error as Error).message}`)
  }
}

/** SIGHUP: the scope rules from the configuration as it is now; a bad one keeps the old rules. The line says which. */
export function reloadScopeRules(feed: PersonalFeed, reloadConfig: () => Config): string {
  let rules: ReturnType<typeof scopeRules>
  try {
    rules = scopeRules(reloadConfig())
  } catch (error) {
    return `presence: configuration not reloaded, scope rules kept: ${(error as Error).message}`
  }
  feed.replaceRules(rules)
  return `presence: scope rules reloaded (states "${rules.states}", calls "${rules.calls}", ${rules.groups.length} group(s))`
}

/** The data dir must exist: main.ts creates it first, so a failure there is one line and exit 73. */
/**
 * `reloadConfig` reads the configuration again for SIGHUP, from the sources it came from
 * (README "Personalised presence": presence_groups and the scopes are re-read).
 */
export async function serve(config: Config, clock: Clock = systemClock, reloadConfig?: () => Config): Promise<number> {
  // First: a missing PBX database stops the start before the log, the key or the store is created.
  const users = openUserDirectory(config, clock)
  const externalJwt = externalJwtSettings(config)
  const externalKeys = externalJwt ? readKeysAtStart(externalJwt) : null
  const securityLog = new SecurityLog(join(config.log_dir, 'security.log'), clock, {
    ...DEFAULT_LOG_LIMITS,
    maxBytes: config.security_log_max_bytes,
  })
  const { ring: keys, generated } = openKeyRing(config.secret_key_path)
  if (generated) securityLog.record({ event: 'KEY_GENERATED', reason: `new key at ${config.secret_key_path}` })
  const db = openStore(databasePath(config))
  const directory = users.attach(db)
  const store = openStateStore(config, db, clock)
  const sqliteStore = store instanceof SqliteStateStore ? store : null
  const services = createServices(store, keys, clock, directory, {
    accessTtl: config.access_ttl,
    refreshTtl: config.refresh_ttl,
    acceptLegacyTokens: config.accept_legacy_tokens,
    rotation: config.refresh_rotation,
    passwordConcurrency: config.password_hash_concurrency,
  })
  const { tokens, sessions, logins } = services
  const apiKeys = new ApiKeyService(new ApiKeyStore(db), directory, clock, { idleMinutes: config.api_key_idle_minutes })
  const purge = () => {
    writeApiKeys('dead keys not purged', () => apiKeys.purge())
    void purgeState(store, unixSeconds(clock))
  }
  // Redis isn't connected yet: its first purge is the hourly one.
  if (store.kind === 'sqlite') purge()
  const purgeTimer = setInterval(purge, PURGE_INTERVAL_MS)
  purgeTimer.unref()
  const flushApiKeyUses = () => writeApiKeys('last uses not written', () => apiKeys.flushLastUses())
  const apiKeyFlushTimer = setInterval(flushApiKeyUses, API_KEY_FLUSH_INTERVAL_MS)
  apiKeyFlushTimer.unref()

  // The `users` and `sessions` CLI commands run in other processes; their commits must reach memory.
  const spaces = new SpaceService(db, clock)
  const storeChanges = watchDatabaseChanges(db, databasePath(config), () => {
    directory.invalidate()
    sqliteStore?.revocations.reload()
    apiKeys.reload()
    spaces.reload()
  })
  // `secret rotate` runs in another process too (README "Key rotation").
  const keyChanges = watchKeyRing(ringPathFor(config.secret_key_path), keys, (line) => console.log(line))

  const external = externalJwt && externalKeys ? new ExternalJwtIssuer(externalJwt, externalKeys, directory, clock) : null
  const digest = new DigestAuthenticator({ realm: config.digest_realm, keys, clock, directory, throttle: store.throttle, securityLog })
  const guard = new AccessGuard(new BearerAuthenticator(tokens, directory, external), [new ApiKeyAuthenticator(apiKeys), digest], [spaces.check])
  const hub = new PresenceHub(
    { channels: channelSpecs(config.extra_channels), maxPerUser: config.max_subscriptions_per_user, sweepMs: SWEEP_INTERVAL_MS },
    guard,
    clock,
  )

  // The sink of full snapshots from AMI and from the ingest route (README "Personalised presence").
  const bus = store.bus(hub.sharedChannels())
  const feed = new PersonalFeed({ hub, clock, directory, rules: scopeRules(config), legacy: config.presence_legacy_channels === 'on', bus })

  const cdr = new CdrSource(cdrDatabasePath(config.cdr_db))
  const pbxState = startPbxState(config, directory, feed, store, clock, users.embedded ? () => users.embedded!.list() : null)
  // Every part registered its reconnect hooks: connect now (README "Several nodes").
  store.start()
  // README "Metrics": counted only with metrics = "on"; served on the main listener or on metrics_port.
  const eventLoopLag = config.metrics === 'on' ? new EventLoopLag().start() : null
  const metrics = eventLoopLag
    ? serverMetrics({ clock, basePath: config.base_path, hub, pbx: pbxState?.engine, services, eventLoopLag: () => eventLoopLag.lastSeconds })
    : undefined
  let metricsListener: ReturnType<typeof listenMetrics> | null = null
  const app = buildApp({
    guard,
    metrics: metrics && { registry: metrics, onMainListener: config.metrics_port === 0 },
    deepChecks: [{ name: 'db', run: () => readSchema(db) }, ...(users.file ? [{ name: 'mikopbx' as const, run: () => users.file!.read(readSchema) }] : [])],
    pbx: pbxState?.engine,
    // One source owns users-state and active-calls: with "ami" or "ingest", pub/ may not write them.
    producedHere: config.presence_source === 'pub' ? undefined : (channel) => (SNAPSHOT_KINDS as readonly string[]).includes(channel),
    providers: users.file ? new MikoPbxProviders(users.file) : null,
    coreApi:
      config.core_api === 'on'
        ? { admins: users.file ? new MikoPbxAdminCredentials(users.file) : new DirectoryAdminCredentials(directory) }
        : undefined,
    // The admin API writes on this process's own connection, which the change watch doesn't report.
    admin: { users: users.embedded, usersChanged: () => directory.invalidate(), securityLogPath: securityLog.path },
    cdr,
    recordingsAccess: config.recordings_access,
    basePath: config.base_path,
    trustedProxies: config.trusted_proxies,
    clock,
    directory,
    tokens,
    sessions,
    apiKeys,
    spaces,
    logins,
    securityLog,
    hub,
    feed,
    bus,
    presence: { longPollHoldMs: config.longpoll_hold_seconds * 1000, heartbeatMs: config.sse_heartbeat_seconds * 1000 },
    presenceSource: config.presence_source,
    snapshotSink: feed,
    storeHealth: () => store.health(),
  })
  try {
    // reusePort off: a second instance must fail loudly rather than share the port (README "Command line").
    app.listen({ hostname: config.host, port: config.port, reusePort: false, maxRequestBodySize: MAX_REQUEST_BODY })
    if (metrics && config.metrics_port) metricsListener = listenMetrics({ clock, metrics, port: config.metrics_port })
  } catch (error) {
    const where = app.server ? `${METRICS_HOST}:${config.metrics_port}` : `${config.host}:${config.port}`
    if (app.server) void app.stop(true)
    eventLoopLag?.stop()
    pbxState?.stop()
    void store.close()
    cdr.close()
    users.close()
    db.close()
    securityLog.close()
    const code = (error as NodeJS.ErrnoException).code
    const hint = code === 'EADDRINUSE' ? 'is another instance running? change port or stop it' : String(code ?? error)
    throw new ListenError(`cannot listen on ${where}: ${hint}`)
  }
  return new Promise((resolve) => {
    let stopping = false
    const shutdown = async (signal: string) => {
      if (stopping) return
      stopping = true
      console.log(`${signal}: shutting down`)
      notifier.stopping(signal)
      clearInterval(purgeTimer)
      clearInterval(apiKeyFlushTimer)
      eventLoopLag?.stop()
      void metricsListener?.stop(true)
      storeChanges.close()
      keyChanges.close()
      pbxState?.stop()
      // Streams first: plain stop() would wait for them forever.
      hub.shutdown()
      // In-flight requests get a grace period; stop(true) then cuts whatever is still open.
      await Promise.race([app.server?.stop(false), Bun.sleep(SHUTDOWN_GRACE_MS)])
      await app.stop(true)
      await store.close()
      flushApiKeyUses()
      securityLog.record({ event: 'SHUTDOWN', reason: signal })
      securityLog.close()
      cdr.close()
      users.close()
      db.close()
      resolve(0)
    }
    process.on('SIGTERM', () => void shutdown('SIGTERM'))
    process.on('SIGINT', () => void shutdown('SIGINT'))
    process.on('SIGHUP', () => {
      securityLog.reopen()
      // README "External tokens": an issuer's key rollover without a restart.
      if (external && externalJwt) console.log(reloadExternalKeys(external, externalJwt))
      if (reloadConfig) console.log(reloadScopeRules(feed, reloadConfig))
    })
    // READY only now: listening, the store open and the signals handled (README "systemd readiness and watchdog").
    const notifier = startNotifier({
      env: process.env,
      pid: process.pid,
      log: (line) => console.log(line),
      checkStore: () => checkStore(db, unixSeconds(clock)),
      ami: pbxState ? () => pbxState.engine.ami : undefined,
    })
    // Announced only once the signals are handled: a supervisor that stops us right after this
    // line gets a clean exit 0, not the default death by SIGTERM.
    const port = app.server!.port
    const host = config.host.includes(':') ? `[${config.host}]` : config.host
    console.log(`softphone-backend ${VERSION} listening on http://${host}:${port}${config.base_path}`)
    console.log(cdr.path ? `call history from ${cdr.path}` : 'no call-history source (cdr_db unset, no MikoPBX settings)')
    console.log(recordingsAccessLine(config.recordings_access, cdr.path))
    console.log(`state store: ${storeDescription(config)}${store.kind === 'redis' ? ` (stale after ${config.redis_stale_seconds} s unreachable)` : ''}`)
    console.log(pbxState ? `AMI: connecting to ${config.ami_host}:${config.ami_port}; users-state and active-calls come from it` : 'AMI: off (ami = "off")')
    if (config.presence_source !== 'ami') console.log(presenceSourceLine(config.presence_source))
    if (metricsListener) console.log(`metrics: http://${METRICS_HOST}:${metricsListener.server!.port}/metrics (metrics_port)`)
    console.log(externalKeys ? `external JWTs: issuer ${config.external_jwt_issuer}, ${externalKeys.length} key(s) from ${config.external_jwt_key_file}` : 'external JWTs: off')
    if (config.core_api === 'on') console.log('core API: /pbxcore/api/sip/* served (core_api = "on")')
    void sqliteStore?.revocations.idsLoaded.then(({ ids, ms }) => console.log(`${ids} revoked token ids in memory after ${Math.round(ms)} ms`))
    securityLog.record({ event: 'STARTUP', version: VERSION, directory: directoryDescription(config) })
  })
}
