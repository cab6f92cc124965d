/**
 * The presence snapshots, schema version 2 (README "Presence snapshots, schema version 2"): the
 * `users-state` and `active-calls` bodies that the AMI engine produces, the ingest route accepts,
 * and the personalised `sub/me/*` channels carry. Version 1 clients read the same bodies: every
 * field they knew keeps its name and meaning; the new ones are additions they ignore.
 *
 * The valibot schemas are the allowlist for what an external producer may send: `v.object` drops
 * unknown keys, so an AMI variable, a secret or a token in an ingested body never reaches a subscriber.
 */
import * as v from 'valibot'
import type { Clock } from '../clock'

export const SCHEMA_VERSION = 2
export const SNAPSHOT_KINDS = ['users-state', 'active-calls'] as const
export type SnapshotKind = (typeof SNAPSHOT_KINDS)[number]

export const USER_STATES = ['Idle', 'Ringing', 'Up', 'Busy', 'Unavailable', 'OnHold'] as const
/** Where one channel of a call is (README "Presence snapshots, schema version 2"). */
export const ANSWER_STATES = ['new', 'dialing', 'ringing', 'answered', 'bridged', 'held', 'cancelled', 'ended'] as const
export type AnswerState = (typeof ANSWER_STATES)[number]

/**
 * The channels a snapshot may name: a full PJSIP channel (`PJSIP/<endpoint>-<8 hex>`) or one half
 * of a Local pair. Anything else is dropped by the engine and refused by the ingest route.
 */
export const PJSIP_CHANNEL = /^PJSIP\/([A-Za-z0-9_.+=-]{1,80})-([0-9a-f]{8})$/
export const LOCAL_CHANNEL = /^Local\/[A-Za-z0-9_.+*#@=-]{1,120};[12]$/
export const isStrictChannelName = (name: string): boolean => PJSIP_CHANNEL.test(name) || LOCAL_CHANNEL.test(name)

/** `PJSIP/268-000003d8` → `000003d8`; '' for anything but a full PJSIP channel. */
export const channelIdOf = (name: string): string => PJSIP_CHANNEL.exec(name)?.[2] ?? ''

const Text = (max: number) => v.pipe(v.string(), v.maxLength(max))
const ChannelName = v.pipe(v.string(), v.check(isStrictChannelName, 'must be a PJSIP or Local channel name'))
/** The peer of a channel may be unknown: then ''. */
const PeerChannelName = v.union([v.literal(''), ChannelName])
const Extension = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.+=-]{1,80}$/))
const AmiId = Text(80)

export const ChannelEntry = v.object({
  /** The other party's channel, through bridges and Local pairs; '' when not known. */
  channel: PeerChannelName,
  /** The other party's extension or number. */
  number: Text(80),
  /** From this employee's side: the destination of a Dial edge is incoming, its source outgoing. */
  direction: v.picklist(['incoming', 'outgoing']),
  linkedid: AmiId,
  uniqueid: AmiId,
  /** The suffix of the employee's own channel name, `000003d8` (README). */
  channelId: v.pipe(v.string(), v.regex(/^([0-9a-f]{8})?$/)),
  answerState: v.picklist(ANSWER_STATES),
  /** True only on a ringing incoming leg of a user's own PJSIP channel no other fork has answered. */
  pickupAvailable: v.boolean(),
})
export type ChannelEntry = v.InferOutput<typeof ChannelEntry>

export const EmployeeEntry = v.object({
  name: Text(200),
  state: v.picklist(USER_STATES),
  /** By the employee's own channel name; always an object, `{}` when idle. */
  channels: v.pipe(v.record(ChannelName, ChannelEntry), v.check((channels) => Object.keys(channels).length <= 100, 'too many channels')),
  /** A queue: never overrides its agents' states; seen only by its members and admins. */
  isQueue: v.optional(v.literal(true)),
  /** A queue's member extensions. */
  members: v.optional(v.pipe(v.array(Extension), v.maxLength(1000))),
})
export type EmployeeEntry = v.InferOutput<typeof EmployeeEntry>

export const CallLeg = v.object({
  channel: ChannelName,
  number: Text(80),
  uniqueid: v.optional(AmiId),
  channelId: v.optional(v.pipe(v.string(), v.regex(/^([0-9a-f]{8})?$/))),
  answerState: v.optional(v.picklist(ANSWER_STATES)),
})
export type CallLeg = v.InferOutput<typeof CallLeg>

/** One call by Linkedid, in the shape ModuleMonitorActiveCalls published, plus the version 2 leg fields. */
export const ActiveCall = v.object({
  start: v.number(),
  answer: v.union([v.number(), v.literal('')]),
  typeCall: v.picklist(['inner', 'outgoing', 'incoming']),
  src_chan: PeerChannelName,
  src_num: Text(80),
  dst_chan: PeerChannelName,
  dst_num: Text(80),
  did: Text(80),
  linkedid: AmiId,
  calledChannels: v.pipe(v.array(CallLeg), v.maxLength(100)),
  bridgeChannels: v.pipe(v.array(CallLeg), v.maxLength(100)),
})
export type ActiveCall = v.InferOutput<typeof ActiveCall>

const Envelope = {
  schemaVersion: v.literal(SCHEMA_VERSION),
  /** The producer's boot UUID: a new one resets `sequence`. */
  instanceId: v.pipe(v.string(), v.uuid()),
  /** Grows by one with every snapshot a producer instance publishes. */
  sequence: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER)),
  /** Unix seconds with a fraction, when the producer built it. */
  generatedAt: v.number(),
}

export const UsersStateSnapshot = v.object({ ...Envelope, states: v.pipe(v.record(Extension, EmployeeEntry), v.check((states) => Object.keys(states).length <= 20_000, 'too many entries')) })
export type UsersStateSnapshot = v.InferOutput<typeof UsersStateSnapshot>
export const ActiveCallsSnapshot = v.object({ ...Envelope, calls: v.pipe(v.array(ActiveCall), v.maxLength(20_000)) })
export type ActiveCallsSnapshot = v.InferOutput<typeof ActiveCallsSnapshot>

/** What the ingest route accepts: a full snapshot (`kind: "full"`), the only kind there is. */
export const IngestBody = {
  'users-state': v.object({ ...UsersStateSnapshot.entries, kind: v.literal('full') }),
  'active-calls': v.object({ ...ActiveCallsSnapshot.entries, kind: v.literal('full') }),
} as const

export type SnapshotOf<K extends SnapshotKind> = K extends 'users-state' ? UsersStateSnapshot : ActiveCallsSnapshot
export type SnapshotBody<K extends SnapshotKind> = K extends 'users-state' ? { states: Record<string, EmployeeEntry> } : { calls: ActiveCall[] }

/** Where full snapshots go: the personalised channels and, while they are on, the legacy shared ones. */
export interface SnapshotSink {
  full<K extends SnapshotKind>(kind: K, snapshot: SnapshotOf<K>): void
}

/** Stamps a producer's snapshots: one boot UUID, one sequence across both kinds. */
export class SnapshotStamper {
  readonly instanceId = crypto.randomUUID()
  private sequence = 0

  constructor(private readonly clock: Clock) {}

  stamp<K extends SnapshotKind>(body: SnapshotBody<K>): SnapshotOf<K> {
    return { schemaVersion: SCHEMA_VERSION, instanceId: this.instanceId, sequence: ++this.sequence, generatedAt: this.clock.now() / 1000, ...body } as SnapshotOf<K>
  }
}
