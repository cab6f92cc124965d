/** The state of one node in the service's SQLite file (store = "sqlite", the default; README "Several nodes"). */
import type { Database } from 'bun:sqlite'
import type { Clock } from '../clock'
import { LocalBus } from '../presence/local-bus'
import { SqliteSessionRecords } from '../sessions/sqlite-session-records'
import { SqliteLoginThrottle } from '../throttle/sqlite-login-throttle'
import type { ThrottleSettings } from '../throttle/throttle-rule'
import { SqliteRevocations, type IdLoading } from '../tokens/sqlite-revocations'
import { SOLE_PRODUCER, type Leadership, type StateStore } from './state-store'

export class SqliteStateStore implements StateStore {
  readonly kind = 'sqlite'
  readonly revocations: SqliteRevocations
  readonly sessions: SqliteSessionRecords
  readonly throttle: SqliteLoginThrottle

  /** The database stays the caller's to close: the user directory and API keys live in it too. */
  constructor(
    db: Database,
    private readonly clock: Clock,
    throttle: ThrottleSettings,
    loading?: IdLoading,
  ) {
    this.revocations = new SqliteRevocations(db, clock, loading)
    this.sessions = new SqliteSessionRecords(db, this.revocations)
    this.throttle = new SqliteLoginThrottle(db, clock, throttle)
  }

  health(): 'ok' {
    return 'ok'
  }

  bus(): LocalBus {
    return new LocalBus(this.clock)
  }

  leadership(): Leadership {
    return SOLE_PRODUCER
  }

  start(): void {}

  async purgeExpired(now: number): Promise<void> {
    this.revocations.purgeExpired()
    await this.sessions.purgeExpired(now)
    await this.throttle.purgeExpired()
  }

  async close(): Promise<void> {}
}
