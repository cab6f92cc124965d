/** The answers of `peers`, `peers/<ext>` and `registry` (README "Live PBX state"), as valibot schemas for documentation and tests. */
import * as v from 'valibot'

const Freshness = {
  success: v.literal(true),
  /** `up`: live; `down`: AMI lost, the last state served; `off`: no AMI configured. */
  ami: v.picklist(['up', 'down', 'off']),
  /** True while AMI is down after having been up: the state may be old. */
  stale: v.boolean(),
}

export const PeerSchema = v.object({
  extension: v.string(),
  display_name: v.string(),
  state: v.picklist(['Idle', 'Ringing', 'Up', 'Busy', 'Unavailable', 'OnHold']),
  /** Asterisk's DeviceState of the endpoint that decided `state`. */
  device_state: v.string(),
  /** Whether any of its endpoints has a contact with an address. */
  registered: v.boolean(),
})

export const PeersResponse = v.object({ ...Freshness, peers: v.array(PeerSchema) })

export const ContactSchema = v.object({
  /** `201` or its WebRTC twin `201-WS`. */
  endpoint: v.string(),
  uri: v.string(),
  user_agent: v.string(),
  /** Asterisk's qualify status: `Reachable`, `Unreachable`, `NonQualified`, `Unknown`, … */
  status: v.string(),
  /** The last qualify round trip in microseconds, or null when not measured. */
  rtt_usec: v.nullable(v.number()),
  /** When the registration expires, unix seconds, or null for a static contact. */
  expires: v.nullable(v.number()),
})

export const PeerContactsResponse = v.object({ ...Freshness, extension: v.string(), contacts: v.array(ContactSchema) })

export const RegistryEntrySchema = v.object({ id: v.string(), state: v.string(), host: v.string(), username: v.string() })

export const RegistryResponse = v.object({ ...Freshness, providers: v.array(RegistryEntrySchema) })
