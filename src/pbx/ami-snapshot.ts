/**
 * One full read of the PBX state through AMI list actions (README "Live PBX state"): endpoints,
 * contacts, outbound registrations, channels, bridges and queues. The engine loads it at every
 * login and reconciliation.
 */
import type { AmiLink, AmiMessage, AmiReply } from './ami/ami-link'
import { snapshotOf, type ChannelSnapshot } from './call-graph'
import { deviceStateText } from './device-state'
import type { ContactDetail, OutboundRegistration } from './pbx-state'

export interface LoadedEndpoint {
  deviceState: string
  /** By URI. */
  contacts: Map<string, ContactDetail>
}

export interface LoadedChannel {
  snapshot: ChannelSnapshot
  bridge: string | null
  /** Application `AppDial`: the channel was created by a Dial, so it is that Dial's destination. */
  dialDestination: boolean
}

export interface PbxSnapshot {
  endpoints: Map<string, LoadedEndpoint>
  registrations: Map<string, OutboundRegistration>
  channels: LoadedChannel[]
  /** BridgeList's bridges by BridgeUniqueid; their members come from CoreShowChannel's BridgeId. */
  bridges: Set<string>
  /** QueueStatus's QueueParams, QueueMember and QueueEntry events, in order. */
  queueEvents: AmiMessage[]
}

const NOT_DETAILS = new Set(['event', 'actionid', 'objecttype'])

/** A list event's own fields, without the envelope ones. */
function detailsOf(message: AmiMessage): Record<string, string> {
  const details: Record<string, string> = {}
  for (const [key, value] of message.fields) if (!NOT_DETAILS.has(key.toLowerCase()) && !(key in details)) details[key] = value
  return details
}

/** `ContactList` (PJSIPShowContacts) names some fields differently from `ContactStatusDetail`; the cache keeps the latter's names. */
const CONTACT_LIST_RENAMES: Readonly<Record<string, string>> = {
  Uri: 'URI',
  Endpoint: 'EndpointName',
  CallId: 'CallID',
  ExpirationTime: 'RegExpire',
  ObjectName: 'ID',
}

function contactFromList(event: AmiMessage): Record<string, string> {
  const contact: Record<string, string> = {}
  for (const [key, value] of Object.entries(detailsOf(event))) contact[CONTACT_LIST_RENAMES[key] ?? key] = value
  // ObjectName is `<aor>;@<hash>`.
  contact.AOR ??= (contact.ID ?? '').split(';@')[0]!
  if (contact.ViaAddr !== undefined) {
    contact.ViaAddress = contact.ViaPort ? `${contact.ViaAddr}:${contact.ViaPort}` : contact.ViaAddr
    delete contact.ViaAddr
    delete contact.ViaPort
  }
  return contact
}

export class AmiPermissionDenied extends Error {
  override readonly name = 'AmiPermissionDenied'
}

const failed = (reply: AmiReply): boolean => reply.response.get('Response')?.toLowerCase() === 'error'

/**
 * A list action's events. An `Error` answer is an empty list (Asterisk answers `No endpoints found`
 * that way), except a refusal, which must not pass for an empty PBX.
 */
function eventsNamed(action: string, reply: AmiReply, name: string): AmiMessage[] {
  if (failed(reply) && /permission denied/i.test(reply.response.get('Message') ?? '')) throw new AmiPermissionDenied(`${action}: permission denied`)
  return name ? reply.events.filter((event) => event.get('Event') === name) : reply.events
}

async function listed(link: AmiLink, action: string, eventName: string, timeoutMs: number): Promise<AmiMessage[]> {
  return eventsNamed(action, await link.action(action, {}, timeoutMs), eventName)
}

function addContact(endpoints: Map<string, LoadedEndpoint>, endpointName: string, contact: ContactDetail): void {
  const endpoint = endpoints.get(endpointName)
  if (endpoint && contact.URI) endpoint.contacts.set(contact.URI, contact)
}

async function loadContacts(link: AmiLink, endpoints: Map<string, LoadedEndpoint>, timeoutMs: number): Promise<void> {
  const reply = await link.action('PJSIPShowContacts', {}, timeoutMs)
  if (!failed(reply)) {
    for (const contact of eventsNamed('PJSIPShowContacts', reply, 'ContactList').map(contactFromList)) addContact(endpoints, contact.EndpointName ?? '', contact)
    return
  }
  // Asterisks before PJSIPShowContacts: one PJSIPShowEndpoint per endpoint.
  for (const name of endpoints.keys()) {
    const detail = await link.action('PJSIPShowEndpoint', { Endpoint: name }, timeoutMs)
    for (const event of eventsNamed('PJSIPShowEndpoint', detail, 'ContactStatusDetail')) addContact(endpoints, name, detailsOf(event))
  }
}

function registrationOf(event: AmiMessage): OutboundRegistration {
  return {
    objectName: event.get('ObjectName') ?? '',
    status: event.get('Status') ?? '',
    serverUri: event.get('ServerUri') ?? '',
    clientUri: event.get('ClientUri') ?? '',
  }
}

export async function loadPbxSnapshot(link: AmiLink, timeoutMs: number): Promise<PbxSnapshot> {
  const endpoints = new Map<string, LoadedEndpoint>()
  for (const event of await listed(link, 'PJSIPShowEndpoints', 'EndpointList', timeoutMs)) {
    const name = event.get('ObjectName')
    if (name) endpoints.set(name, { deviceState: deviceStateText(event.get('DeviceState') ?? 'Unavailable'), contacts: new Map() })
  }
  await loadContacts(link, endpoints, timeoutMs)
  const registrations = new Map<string, OutboundRegistration>()
  for (const event of await listed(link, 'PJSIPShowRegistrationsOutbound', 'OutboundRegistrationDetail', timeoutMs)) {
    const registration = registrationOf(event)
    registrations.set(registration.objectName, registration)
  }
  const channels: LoadedChannel[] = []
  for (const event of await listed(link, 'CoreShowChannels', 'CoreShowChannel', timeoutMs)) {
    const snapshot = snapshotOf(event)
    if (snapshot) channels.push({ snapshot, bridge: event.get('BridgeId') || null, dialDestination: event.get('Application') === 'AppDial' })
  }
  const bridges = new Set<string>()
  for (const event of await listed(link, 'BridgeList', 'BridgeListItem', timeoutMs)) {
    const bridge = event.get('BridgeUniqueid')
    if (bridge) bridges.add(bridge)
  }
  const queueEvents = (await link.action('QueueStatus', {}, timeoutMs).then((reply) => eventsNamed('QueueStatus', reply, ''))).filter((event) =>
    QUEUE_STATUS_EVENTS.has(event.get('Event') ?? ''),
  )
  return { endpoints, registrations, channels, bridges, queueEvents }
}

const QUEUE_STATUS_EVENTS = new Set(['QueueParams', 'QueueMember', 'QueueEntry'])
