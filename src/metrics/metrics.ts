/**
 * What `/metrics` reports (README "Metrics"): counters the request path bumps, and gauges read from
 * the store, the hub and the AMI link only when scraped.
 */
import type { LoginOutcome } from '../auth/password-login'
import { unixSeconds, type Clock } from '../clock'
import type { PbxStateView } from '../pbx/pbx-state'
import { TRANSPORTS, type PresenceHub } from '../presence/hub'
import type { Services } from '../services'
import type { StoreOutage } from '../store/database'
import { CollectedFamily, Counter, CounterFamily, exposition, Histogram, HistogramFamily, type MetricFamily } from './exposition'

/** Seconds. check-media-access answers in well under a millisecond; an argon2id login takes tens to hundreds. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const
/** The routes whose latency is a histogram, below the base path. */
export const TIMED_ROUTES = ['/auth/login', '/auth/refresh', '/check-media-access'] as const
/** The route label of a request no route matched: raw paths would make a series per scanner's guess. */
export const UNMATCHED_ROUTE = 'unmatched'
/** The AMI link's state as one number: the README's table maps it back. */
const AMI_STATE_VALUE = { up: 1, down: 0, off: -1 } as const

export interface MetricSources {
  clock: Clock
  basePath: string
  hub: PresenceHub
  /** Counted in the state store (SQLite or Redis) when scraped. */
  activeSessions(now: number): Promise<number>
  revokedIds(): number
  delayedLoginKeys(): Promise<number>
  pbx?: PbxStateView
  /** The event loop's latest lag, in seconds (event-loop-lag.ts). */
  eventLoopLag(): number
}

type LoginResult = 'ok' | Extract<LoginOutcome, { ok: false }>['reason']
const LOGIN_RESULTS: readonly LoginResult[] = ['ok', 'invalid', 'throttled', 'busy']

export class Metrics {
  private readonly requests = new CounterFamily('softphone_http_requests_total', 'HTTP requests answered, by route pattern and status.')
  /** route → status → its counter, so a request costs two map lookups and an add. */
  private readonly requestCounters = new Map<string, Map<number, Counter>>()
  private readonly latency = new HistogramFamily(
    'softphone_http_request_duration_seconds',
    'Time to answer login, refresh and check-media-access, in seconds.',
    LATENCY_BUCKETS,
  )
  private readonly timed = new Map<string, Histogram>()
  private readonly logins: Record<LoginResult, Counter>
  private readonly outages: Record<StoreOutage, Counter>
  private readonly families: MetricFamily[]
  private storeCounts: Partial<Record<'activeSessions' | 'delayedLoginKeys', PromiseSettledResult<number>>> = {}

  constructor(private readonly sources: MetricSources) {
    for (const route of TIMED_ROUTES) this.timed.set(sources.basePath + route, this.latency.series({ route: sources.basePath + route }))
    const logins = new CounterFamily('softphone_logins_total', 'Password logins (auth/login and the core API), by outcome.')
    this.logins = Object.fromEntries(LOGIN_RESULTS.map((outcome) => [outcome, logins.series({ outcome })])) as Record<LoginResult, Counter>
    const outages = new CounterFamily(
      'softphone_store_errors_total',
      "Requests answered 503 because a database (the service's or MikoPBX's) was locked (busy) or could not be used (unavailable: disk full, I/O error, read-only, missing).",
    )
    this.outages = { busy: outages.series({ kind: 'busy' }), unavailable: outages.series({ kind: 'unavailable' }) }
    this.families = [this.requests, this.latency, logins, outages, ...this.scrapedFamilies()]
  }

  /** Counts one answered request; `startedAt` is performance.now() once it was parsed, 0 when it was not timed. */
  requestDone(route: string | undefined, status: number, startedAt = 0): void {
    const pattern = route || UNMATCHED_ROUTE
    let byStatus = this.requestCounters.get(pattern)
    if (!byStatus) this.requestCounters.set(pattern, (byStatus = new Map()))
    let counter = byStatus.get(status)
    if (!counter) byStatus.set(status, (counter = this.requests.series({ route: pattern, status: String(status) })))
    counter.value++
    if (startedAt > 0) this.timed.get(pattern)?.observe((performance.now() - startedAt) / 1000)
  }

  loginDone(outcome: { ok: true } | { ok: false; reason: Exclude<LoginResult, 'ok'> }): void {
    this.logins[outcome.ok ? 'ok' : outcome.reason].value++
  }

  storeOutage(outage: StoreOutage): void {
    this.outages[outage].value++
  }

  /** The store's counts are read first; one that fails (the store locked or unreachable) leaves its series out. */
  async text(): Promise<string> {
    const [activeSessions, delayedLoginKeys] = await Promise.allSettled([
      this.sources.activeSessions(unixSeconds(this.sources.clock)),
      this.sources.delayedLoginKeys(),
    ])
    this.storeCounts = { activeSessions, delayedLoginKeys }
    return exposition(this.families)
  }

  private storeCount(name: 'activeSessions' | 'delayedLoginKeys'): number {
    const counted = this.storeCounts[name]
    if (counted?.status !== 'fulfilled') throw new Error(`${name} not counted`)
    return counted.value
  }

  private scrapedFamilies(): MetricFamily[] {
    const { hub, pbx, clock } = this.sources
    return [
      new CollectedFamily('softphone_login_delayed_keys', 'gauge', 'Account-and-address and address keys whose logins are delayed right now (README "Login throttling").', () =>
        this.storeCount('delayedLoginKeys'),
      ),
      new CollectedFamily('softphone_sessions_active', 'gauge', 'Sessions neither revoked nor expired, counted in the state store.', () => this.storeCount('activeSessions')),
      new CollectedFamily('softphone_revoked_token_ids', 'gauge', 'Revoked token ids held in memory until they expire.', () => this.sources.revokedIds()),
      new CollectedFamily('softphone_presence_subscribers', 'gauge', 'Open presence subscriptions, by channel and transport.', function* () {
        for (const [channel, counts] of hub.subscriberCounts()) {
          for (const transport of TRANSPORTS) yield [{ channel, transport }, counts[transport]] as const
        }
      }),
      new CollectedFamily('softphone_presence_messages_published_total', 'counter', 'Messages published, by channel (pub/ and the AMI state engine).', function* () {
        for (const [channel, { published }] of hub.channelTotals()) yield [{ channel }, published] as const
      }),
      new CollectedFamily('softphone_presence_messages_dropped_total', 'counter', 'Messages not delivered because a subscriber could not keep up (it is then closed), by channel.', function* () {
        for (const [channel, { dropped }] of hub.channelTotals()) yield [{ channel }, dropped] as const
      }),
      new CollectedFamily('softphone_ami_up', 'gauge', 'The AMI link: 1 up, 0 down, -1 off (ami = "off").', () => AMI_STATE_VALUE[pbx?.ami ?? 'off']),
      new CollectedFamily('softphone_ami_events_received_total', 'counter', 'AMI events received from Asterisk.', () => pbx?.counters?.eventsReceived ?? 0),
      new CollectedFamily('softphone_process_resident_memory_bytes', 'gauge', 'Resident set size of the process, in bytes.', () => process.memoryUsage.rss()),
      new CollectedFamily('softphone_event_loop_lag_seconds', 'gauge', 'How late the last event-loop probe timer fired, in seconds.', () => this.sources.eventLoopLag()),
    ]
  }
}

/** The metrics of one server: its store's services, its hub and AMI link, and an event-loop probe. */
export function serverMetrics({
  clock,
  basePath,
  hub,
  pbx,
  services,
  eventLoopLag,
}: {
  clock: Clock
  basePath: string
  hub: PresenceHub
  pbx?: PbxStateView
  services: Pick<Services, 'sessionRecords' | 'revocations' | 'throttle'>
  eventLoopLag: () => number
}): Metrics {
  const { sessionRecords, revocations, throttle } = services
  return new Metrics({
    clock,
    basePath,
    hub,
    pbx,
    eventLoopLag,
    activeSessions: (now) => sessionRecords.countActive(now),
    revokedIds: () => revocations.revokedIdCount,
    delayedLoginKeys: () => throttle.delayedCount(),
  })
}
