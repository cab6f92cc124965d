/**
 * The state nodes must share (README "Several nodes"): sessions and their rotation, revocations,
 * login-throttle counters, the presence bus and who produces presence snapshots.
 * `store = "sqlite"` keeps them in the service's SQLite file (one node, the default);
 * `store = "redis"` in Redis, for an HA pair or several PBX nodes behind one endpoint. Routes and
 * services see only this interface.
 */
import type { Channel } from '../presence/channel'
import type { PresenceBus } from '../presence/bus'
import type { SessionRecords } from '../sessions/session-records'
import type { LoginThrottle } from '../throttle/throttle-rule'
import type { Revocations } from '../tokens/revocations'

export const STORE_KINDS = ['sqlite', 'redis'] as const
export type StoreKind = (typeof STORE_KINDS)[number]

/** `degraded`: the shared store is unreachable; state changes answer 503 meanwhile. */
export type StoreHealth = 'ok' | 'degraded'

/** Whether this node is the one that publishes a PBX's presence snapshots (presence/producer-sink.ts). */
export interface Leadership {
  isLeader(): boolean
  onChange(listener: (leader: boolean) => void): void
  start(): void
  close(): Promise<void>
}

export interface StateStore {
  readonly kind: StoreKind
  readonly sessions: SessionRecords
  readonly throttle: LoginThrottle
  /** This node's in-memory copy of every revocation, read on every request. */
  readonly revocations: Revocations
  health(): StoreHealth
  /** The bus for the hub's shared channels; made before start(), once. */
  bus(channels: readonly Channel[]): PresenceBus
  /** Who among the nodes publishes the snapshots of the PBX called `name`; made before start(). */
  leadership(name: string): Leadership
  /** Connects, where there is anything to connect to. */
  start(): void
  /** The hourly purge of what can no longer matter. */
  purgeExpired(now: number): Promise<void>
  close(): Promise<void>
}

/** One node: always the producer. */
export const SOLE_PRODUCER: Leadership = {
  isLeader: () => true,
  onChange: () => {},
  start: () => {},
  close: async () => {},
}
