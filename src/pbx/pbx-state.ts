/**
 * The cache of live PBX state that the state engine (state-engine.ts) keeps from AMI and the routes
 * read without ever waiting on AMI (README "Live PBX state"). Raw AMI values are kept as Asterisk
 * sends them; each route maps them to its own shape.
 */
import type { AmiStatus } from './ami/ami-link'

/** One PJSIP contact, the `ContactStatusDetail` fields as sent (`URI`, `UserAgent`, `Status`, `RoundtripUsec`, `RegExpire`, …). */
export type ContactDetail = Readonly<Record<string, string>>

export interface EndpointState {
  /** The PJSIP endpoint name as Asterisk knows it: `201`, `201-WS`, or a provider's `SIP-…` id. */
  name: string
  /** Asterisk's device state text: `Not in use`, `In use`, `Busy`, `Ringing`, `Unavailable`, `On Hold`, … */
  deviceState: string
  contacts: readonly ContactDetail[]
}

export interface OutboundRegistration {
  /** `REG-<provider uniqid>` on MikoPBX. */
  objectName: string
  /** As Asterisk sends it: `Registered`, `Unregistered`, `Rejected`, … */
  status: string
  serverUri: string
  clientUri: string
}

export interface PbxStateView {
  readonly ami: AmiStatus
  /** AMI events received so far, for the metrics (README "Metrics"); absent in fakes. */
  readonly counters?: { readonly eventsReceived: number }
  /** True while AMI is down after having been up: the last state is served but may be old. */
  readonly stale: boolean
  endpoints(): ReadonlyMap<string, EndpointState>
  registrations(): ReadonlyMap<string, OutboundRegistration>
}
