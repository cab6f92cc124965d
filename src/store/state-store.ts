/**
 * The state nodes must share (README "Several nodes"): sessions and their rotation, revocations,
 * login-throttle counters and the presence bus. `store = "sqlite"` keeps them in the service's
 * SQLite file (one node, the default); `store = "redis"` in Redis, for an HA pair or several PBX
 * nodes behind one endpoint. Routes and services see only this interface.
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

export interface StateStore {
  readonly kind: StoreKind
  readonly sessions: SessionRecords
  readonly throttle: LoginThrottle
  /** This node's in-memory copy of every revocation, read on every request. */
  readonly revocations: Revocations
  health(): StoreHealth
  /** The bus for the hub's shared channels; `channelNamed` finds the channel a message from another node belongs to. */
  bus(channelNamed: (name: string) => Channel | undefined): PresenceBus
  close(): Promise<void>
}
