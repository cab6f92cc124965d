/**
 * What the routes make of the cached PBX state (README "Live PBX state"): an extension's WebRTC
 * twin `<ext>-WS` folded into it, Asterisk's device states mapped to the users-state names, and
 * the provider registrations as MikoPBX's core lists them.
 */
import { betterState, extensionOfEndpoint, userStateOfDevice, type UserState } from './device-state'
import type { ContactDetail, EndpointState, OutboundRegistration, PbxStateView } from './pbx-state'

export interface MergedPeer {
  name: string
  /** The raw device state of the endpoint whose state won (device-state.ts betterState, as users-state merges). */
  deviceState: string
  state: UserState
  /** The extension's endpoints in the cache: itself and/or its `-WS` twin. */
  endpoints: EndpointState[]
}

/** Every endpoint but Asterisk's `anonymous`, `-WS` twins folded into their extension, in cache order. */
export function mergedPeers(endpoints: Iterable<EndpointState>): MergedPeer[] {
  const byName = new Map<string, MergedPeer>()
  for (const endpoint of endpoints) {
    if (endpoint.name === 'anonymous') continue
    const name = extensionOfEndpoint(endpoint.name)
    const state = userStateOfDevice(endpoint.deviceState)
    const known = byName.get(name)
    if (!known) byName.set(name, { name, deviceState: endpoint.deviceState, state, endpoints: [endpoint] })
    else {
      known.endpoints.push(endpoint)
      if (betterState(known.state, state) !== known.state) Object.assign(known, { deviceState: endpoint.deviceState, state })
    }
  }
  return [...byName.values()]
}

/** The endpoint and its `-WS` twin, the twin first, as MikoPBX's core reads them for getSipPeer. */
export function endpointsOf(pbx: PbxStateView | undefined, name: string): EndpointState[] {
  const endpoints = pbx?.endpoints()
  if (!endpoints) return []
  return [endpoints.get(`${name}-WS`), endpoints.get(name)].filter((endpoint) => endpoint !== undefined)
}

/** A contact Asterisk has an address for: registered, or configured statically. */
export const hasUri = (contact: ContactDetail): boolean => (contact['URI'] ?? '') !== ''

/** A provider trunk as MikoPBX's `m_Sip` describes it (type 'friend'). */
export interface Provider {
  uniqid: string
  disabled: boolean
  host: string
  username: string
  registrationType: 'outbound' | 'inbound' | 'none' | string
}

export interface ProviderSource {
  /** Every provider, in the PBX's order. May throw an outage (store/database.ts storeOutageOf). */
  list(): Provider[]
}

export interface RegistryEntry {
  id: string
  state: string
  host: string
  username: string
}

const REGISTRATION_PREFIX = 'REG-'

/**
 * MikoPBX's getRegistry: Asterisk's outbound registrations, named by provider id; then disabled
 * providers as `OFF`; then providers that don't register out (`inbound`, `none`), by whether their
 * endpoint has a contact with an address: `REGISTERED` for a registered inbound one, `OK` for a
 * static one, else `UNKNOWN`. Enabled outbound providers Asterisk doesn't list are left out, as
 * MikoPBX's core does. Without MikoPBX's database the registrations alone.
 */
export function registryOf(pbx: PbxStateView | undefined, providers: readonly Provider[]): RegistryEntry[] {
  const entries = [...(pbx?.registrations().values() ?? [])].map(registrationEntry)
  for (const provider of providers) {
    const entry = { id: provider.uniqid, host: provider.host, username: provider.username }
    if (provider.disabled) entries.push({ ...entry, state: 'OFF' })
    else if (provider.registrationType === 'inbound' || provider.registrationType === 'none') {
      const reachable = endpointsOf(pbx, provider.uniqid).some((endpoint) => endpoint.contacts.some(hasUri))
      const state = !reachable ? 'UNKNOWN' : provider.registrationType === 'inbound' ? 'REGISTERED' : 'OK'
      entries.push({ ...entry, state })
    }
  }
  return entries
}

function registrationEntry(registration: OutboundRegistration): RegistryEntry {
  const { objectName, status, serverUri, clientUri } = registration
  const id = objectName.startsWith(REGISTRATION_PREFIX) ? objectName.slice(REGISTRATION_PREFIX.length) : objectName
  return { id, state: status.toUpperCase(), host: uriParts(serverUri).host, username: uriParts(clientUri).user }
}

/** `sip:user@host:port;params` → user and host; either may be empty. */
export function uriParts(uri: string): { user: string; host: string } {
  const match = /^(?:<)?(?:sips?:)?(?:([^@;>]*)@)?(\[[^\]]*\]|[^:;>]*)/i.exec(uri.trim())
  return { user: match?.[1] ?? '', host: match?.[2] ?? '' }
}
