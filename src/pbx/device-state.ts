/**
 * From Asterisk's device and hint states to the `users-state` states (README "Live PBX state").
 */
export type UserState = 'Idle' | 'Ringing' | 'Up' | 'Busy' | 'Unavailable' | 'OnHold'

/** `DeviceStateChange` sends the machine names (`NOT_INUSE`); `EndpointList` the texts (`Not in use`). Both are stored as texts. */
const DEVICE_STATE_TEXTS: Readonly<Record<string, string>> = {
  NOT_INUSE: 'Not in use',
  INUSE: 'In use',
  BUSY: 'Busy',
  INVALID: 'Invalid',
  UNAVAILABLE: 'Unavailable',
  RINGING: 'Ringing',
  RINGINUSE: 'Ring+Inuse',
  ONHOLD: 'On Hold',
  UNKNOWN: 'Unknown',
}

export const deviceStateText = (raw: string): string => DEVICE_STATE_TEXTS[raw.toUpperCase()] ?? raw

const FROM_DEVICE_STATE: Readonly<Record<string, UserState>> = {
  'not in use': 'Idle',
  'in use': 'Up',
  busy: 'Up',
  ringing: 'Ringing',
  'ring+inuse': 'Ringing',
  'on hold': 'OnHold',
  unavailable: 'Unavailable',
  invalid: 'Unavailable',
  unknown: 'Unavailable',
}

export const userStateOfDevice = (text: string): UserState => FROM_DEVICE_STATE[deviceStateText(text).toLowerCase()] ?? 'Unavailable'

/** `ExtensionStatus` StatusText, or its numeric Status when the text is missing; null for Removed/Deleted/unknown values. */
const FROM_HINT: Readonly<Record<string, UserState>> = {
  idle: 'Idle',
  inuse: 'Up',
  busy: 'Up',
  unavailable: 'Unavailable',
  ringing: 'Ringing',
  'inuse&ringing': 'Ringing',
  hold: 'OnHold',
  'inuse&hold': 'Up',
}
const HINT_CODES: Readonly<Record<string, string>> = { '0': 'idle', '1': 'inuse', '2': 'busy', '4': 'unavailable', '8': 'ringing', '9': 'inuse&ringing', '16': 'hold', '17': 'inuse&hold' }

export function userStateOfHint(statusText: string | undefined, status: string | undefined): UserState | null {
  const key = statusText ? statusText.toLowerCase() : HINT_CODES[status ?? '']
  return (key && FROM_HINT[key]) || null
}

/**
 * When one user has several endpoints (`201` and `201-WS`), the higher state wins: a ringing device
 * shows the incoming call, a device in a call beats an idle one, any reachable device beats none.
 */
const RANK: Readonly<Record<UserState, number>> = { Ringing: 5, Up: 4, Busy: 3, OnHold: 2, Idle: 1, Unavailable: 0 }

export const betterState = (a: UserState, b: UserState): UserState => (RANK[b] > RANK[a] ? b : a)

/** `201-WS` (the WebRTC endpoint MikoPBX adds) belongs to `201`. */
export const extensionOfEndpoint = (endpoint: string): string => endpoint.replace(/-WS$/i, '')

/** `PJSIP/201-WS-0000001a` → `201-WS`; null for other technologies (`Local/…`). */
export function endpointOfChannel(channel: string): string | null {
  const match = /^PJSIP\/(.+)-[0-9a-f]{8}$/i.exec(channel)
  return match ? match[1]! : null
}

/**
 * The device state Asterisk's PJSIP driver reports for an endpoint, from its channels' states and
 * its contacts; used while no `DeviceStateChange` arrives (README "Live PBX state").
 */
export function derivedDeviceState(channelStates: readonly string[], contactStatuses: readonly string[]): string {
  const ringing = channelStates.some((state) => state === 'Ringing' || state === 'Pre-ring')
  const inUse = channelStates.some((state) => state !== 'Ringing' && state !== 'Pre-ring' && state !== 'Down')
  if (ringing && inUse) return 'Ring+Inuse'
  if (ringing) return 'Ringing'
  if (inUse) return 'In use'
  const reachable = contactStatuses.some((status) => status !== 'Unreachable' && status !== 'Removed')
  return reachable ? 'Not in use' : 'Unavailable'
}
