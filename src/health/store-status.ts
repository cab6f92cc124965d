/**
 * What `health` says about the database without touching it (README "Metrics", health): `error`
 * for a while after a request met a store outage, `ok` otherwise or once a deep check has read it.
 */
import type { Database } from 'bun:sqlite'
import { unixSeconds, type Clock } from '../clock'

/** An outage is reported this long after the last request that met it. */
export const OUTAGE_MEMORY_SECONDS = 60

export type CheckState = 'ok' | 'error'

export class StoreStatus {
  private lastOutage = Number.NEGATIVE_INFINITY

  constructor(private readonly clock: Clock) {}

  outage(): void {
    this.lastOutage = unixSeconds(this.clock)
  }

  recovered(): void {
    this.lastOutage = Number.NEGATIVE_INFINITY
  }

  get state(): CheckState {
    return unixSeconds(this.clock) - this.lastOutage < OUTAGE_MEMORY_SECONDS ? 'error' : 'ok'
  }
}

/** One read a deep health check makes; throws when the file can't be read. */
export interface DeepCheck {
  readonly name: 'db' | 'mikopbx'
  run(): void
}

/** A real read of the schema page: cheap, but it takes a read lock and reads the file. */
export const readSchema = (db: Database): void => void db.query('SELECT count(*) FROM sqlite_master').get()
