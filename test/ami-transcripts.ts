/**
 * The AMI messages the simulator sends, key for key as Asterisk 18/20 writes them. Each builder
 * names its page under https://docs.asterisk.org/Asterisk_20_Documentation/API_Documentation/
 * (AMI_Actions/<name> for responses, AMI_Events/<name> for events). List events carry the
 * action's ActionID right after `Event:`, as res_pjsip's AMI helpers write it; broadcast events get
 * `Privilege` and `Timestamp` from the simulator.
 */
export type Fields = Array<[string, string]>

export interface SimContact {
  uri: string
  status: 'Reachable' | 'Unreachable' | 'NonQualified' | 'Unknown'
  userAgent: string
  regExpire: number
  viaAddress: string
  callId: string
  roundtripUsec: number
}

export interface SimEndpoint {
  name: string
  /** EndpointList DeviceState: Not in use, In use, Busy, Unavailable, Ringing, On Hold… */
  deviceState: string
  contacts: SimContact[]
}

export interface SimRegistration {
  /** `REG-<provider id>` on MikoPBX. */
  name: string
  status: 'Registered' | 'Unregistered' | 'Rejected' | 'Failed'
  serverUri: string
  clientUri: string
  contactUser: string
}

export interface SimChannel {
  channel: string
  state: 'Up' | 'Ringing' | 'Ring' | 'Down'
  callerNum: string
  callerName: string
  connectedNum: string
  connectedName: string
  exten: string
  uniqueid: string
  linkedid: string
  bridgeId: string
  application: string
  applicationData: string
  duration: string
}

export interface ListReply {
  /** The `Message:` of the Success response that opens the list. */
  message: string
  events: Fields[]
  complete: string
  /** Fields the Complete event carries after `ListItems` (BridgeInfoComplete's bridge snapshot). */
  completeExtra?: Fields
}

export interface SimQueueMember {
  /** `Local/201@internal/n` on MikoPBX, or `PJSIP/201`. */
  location: string
  stateInterface: string
  name: string
  /** AST_DEVICE_* number: 1 not in use, 2 in use, 6 ringing… */
  status: number
  paused: boolean
}

export interface SimQueueEntry {
  channel: string
  uniqueid: string
  callerNum: string
  callerName: string
  /** Seconds waited. */
  wait: number
}

export interface SimQueue {
  name: string
  strategy: string
  members: SimQueueMember[]
  entries: SimQueueEntry[]
}

export const frame = (fields: Fields): string => `${fields.map(([key, value]) => `${key}: ${value}`).join('\r\n')}\r\n\r\n`

/** AMI_Actions/Login (failure), or any refused action. */
export const error = (id: Fields, message: string): Fields => [['Response', 'Error'], ...id, ['Message', message]]

/** AMI_Actions/Ping. */
export const pong = (id: Fields, timestamp: string): Fields => [['Response', 'Success'], ...id, ['Ping', 'Pong'], ['Timestamp', timestamp]]

/** AMI_Actions/Logoff. */
export const goodbye = (id: Fields): Fields => [['Response', 'Goodbye'], ...id, ['Message', 'Thanks for all the fish.']]

const CHANNEL_STATE: Record<SimChannel['state'], string> = { Down: '0', Ring: '4', Ringing: '5', Up: '6' }

const contactId = (endpoint: SimEndpoint, contact: SimContact) => `${endpoint.name};@${Bun.hash(contact.uri).toString(16)}`

/** AMI_Actions/PJSIPShowEndpoints → AMI_Events/EndpointList, EndpointListComplete. */
export function endpointList(id: Fields, endpoints: SimEndpoint[]): ListReply {
  return {
    message: 'A listing of endpoints follows, presented as EndpointList events',
    complete: 'EndpointListComplete',
    events: endpoints.map((endpoint) => [
      ['Event', 'EndpointList'],
      ...id,
      ['ObjectType', 'endpoint'],
      ['ObjectName', endpoint.name],
      ['Transport', 'transport-udp'],
      ['Aor', endpoint.name],
      ['Auths', endpoint.name],
      ['OutboundAuths', ''],
      ['Contacts', endpoint.contacts.map((contact) => `${endpoint.name}/${contact.uri},`).join('')],
      ['DeviceState', endpoint.deviceState],
      ['ActiveChannels', ''],
    ]),
  }
}

/** AMI_Actions/PJSIPShowEndpoint → EndpointDetail, AorDetail, AuthDetail, ContactStatusDetail…, EndpointDetailComplete. */
export function endpointDetail(id: Fields, endpoint: SimEndpoint): ListReply {
  const events: Fields[] = [
    [
      ['Event', 'EndpointDetail'],
      ...id,
      ['ObjectType', 'endpoint'],
      ['ObjectName', endpoint.name],
      ['Context', 'all_peers'],
      ['Disallow', 'all'],
      ['Allow', '(alaw|ulaw|opus)'],
      ['Aors', endpoint.name],
      ['Auth', endpoint.name],
      ['CalleridPrivacy', 'allowed_not_screened'],
      ['Callerid', `"${endpoint.name}" <${endpoint.name}>`],
      ['DeviceState', endpoint.deviceState],
      ['ActiveChannels', ''],
    ],
    [
      ['Event', 'AorDetail'],
      ...id,
      ['ObjectType', 'aor'],
      ['ObjectName', endpoint.name],
      ['MinimumExpiration', '60'],
      ['MaximumExpiration', '7200'],
      ['DefaultExpiration', '3600'],
      ['QualifyFrequency', '60'],
      ['MaxContacts', '5'],
      ['RemoveExisting', 'true'],
      ['TotalContacts', String(endpoint.contacts.length)],
      ['ContactsRegistered', String(endpoint.contacts.length)],
      ['EndpointName', endpoint.name],
    ],
    [
      ['Event', 'AuthDetail'],
      ...id,
      ['ObjectType', 'auth'],
      ['ObjectName', endpoint.name],
      ['Username', endpoint.name],
      // Asterisk prints the auth's password here; the simulator's is a placeholder.
      ['Password', '<hidden in simulator>'],
      ['Md5Cred', ''],
      ['Realm', ''],
      ['NonceLifetime', '32'],
      ['AuthType', 'userpass'],
      ['EndpointName', endpoint.name],
    ],
    ...endpoint.contacts.map((contact): Fields => [
      ['Event', 'ContactStatusDetail'],
      ...id,
      ['AOR', endpoint.name],
      ['URI', contact.uri],
      ['UserAgent', contact.userAgent],
      ['RegExpire', String(contact.regExpire)],
      ['ViaAddress', contact.viaAddress],
      ['CallID', contact.callId],
      ['Status', contact.status],
      ['RoundtripUsec', String(contact.roundtripUsec)],
      ['EndpointName', endpoint.name],
      ['ID', contactId(endpoint, contact)],
      ['AuthenticateQualify', '0'],
      ['OutboundProxy', ''],
      ['Path', ''],
      ['QualifyFrequency', '60'],
      ['QualifyTimeout', '3.000000'],
    ]),
  ]
  return { message: 'Following are Events for each object associated with the Endpoint', complete: 'EndpointDetailComplete', events }
}

/** AMI_Actions/PJSIPShowContacts → AMI_Events/ContactList, ContactListComplete. */
export function contactList(id: Fields, endpoints: SimEndpoint[]): ListReply {
  const events = endpoints.flatMap((endpoint) =>
    endpoint.contacts.map((contact): Fields => {
      const [viaAddr = '', viaPort = ''] = contact.viaAddress.split(':')
      return [
        ['Event', 'ContactList'],
        ...id,
        ['ObjectType', 'contact'],
        ['ObjectName', contactId(endpoint, contact)],
        ['ViaAddr', viaAddr],
        ['ViaPort', viaPort],
        ['QualifyTimeout', '3.000000'],
        ['CallId', contact.callId],
        ['RegServer', ''],
        ['PruneOnBoot', 'yes'],
        ['Path', ''],
        ['Endpoint', endpoint.name],
        ['AuthenticateQualify', 'no'],
        ['Uri', contact.uri],
        ['QualifyFrequency', '60'],
        ['UserAgent', contact.userAgent],
        ['ExpirationTime', String(contact.regExpire)],
        ['OutboundProxy', ''],
        ['Status', contact.status],
        ['RoundtripUsec', String(contact.roundtripUsec)],
      ]
    }),
  )
  return { message: 'A listing of Contacts follows, presented as ContactList events', complete: 'ContactListComplete', events }
}

/** AMI_Actions/PJSIPShowRegistrationsOutbound → AMI_Events/OutboundRegistrationDetail, OutboundRegistrationDetailComplete. */
export function registrationList(id: Fields, registrations: SimRegistration[]): ListReply {
  const events = registrations.map((registration): Fields => [
    ['Event', 'OutboundRegistrationDetail'],
    ...id,
    ['ObjectType', 'registration'],
    ['ObjectName', registration.name],
    ['MaxRetries', '10'],
    ['ClientUri', registration.clientUri],
    ['AuthRejectionPermanent', 'true'],
    ['ServerUri', registration.serverUri],
    ['MaxRandomInitialDelay', '10'],
    ['SupportPath', 'false'],
    ['RetryInterval', '60'],
    ['ContactHeaderParams', ''],
    ['Expiration', '3600'],
    ['Transport', 'transport-udp'],
    ['Line', 'false'],
    ['ContactUser', registration.contactUser],
    ['Endpoint', registration.name],
    ['ForbiddenRetryInterval', '0'],
    ['OutboundAuth', `${registration.name}-AUTH`],
    ['OutboundProxy', ''],
    ['FatalRetryInterval', '0'],
    ['SupportOutbound', 'no'],
    ['Status', registration.status],
    ['NextReg', '3540'],
  ])
  return {
    message: 'Following are Events for each Outbound registration',
    complete: 'OutboundRegistrationDetailComplete',
    events,
  }
}

/** AMI_Actions/CoreShowChannels → AMI_Events/CoreShowChannel, CoreShowChannelsComplete. */
export function channelList(id: Fields, channels: SimChannel[]): ListReply {
  const events = channels.map((channel): Fields => [
    ['Event', 'CoreShowChannel'],
    ...id,
    ...channelSnapshot(channel),
    ['BridgeId', channel.bridgeId],
    ['Application', channel.application],
    ['ApplicationData', channel.applicationData],
    ['Duration', channel.duration],
  ])
  return { message: 'Channels will follow', complete: 'CoreShowChannelsComplete', events }
}

/** The bridge snapshot keys of AMI_Events/BridgeListItem, BridgeEnter… (ast_manager_build_bridge_state_string). */
export const bridgeSnapshot = (bridge: string, channels: number): Fields => [
  ['BridgeUniqueid', bridge],
  ['BridgeType', 'basic'],
  ['BridgeTechnology', channels > 2 ? 'softmix' : 'simple_bridge'],
  ['BridgeCreator', '<unknown>'],
  ['BridgeName', '<unknown>'],
  ['BridgeNumChannels', String(channels)],
  ['BridgeVideoSourceMode', 'none'],
]

/** The bridges the channels are in, by BridgeId, in the order first seen. */
function bridgesOf(channels: SimChannel[]): Map<string, SimChannel[]> {
  const bridges = new Map<string, SimChannel[]>()
  for (const channel of channels) if (channel.bridgeId) bridges.set(channel.bridgeId, [...(bridges.get(channel.bridgeId) ?? []), channel])
  return bridges
}

/** AMI_Actions/BridgeList → AMI_Events/BridgeListItem, BridgeListComplete. */
export function bridgeList(id: Fields, channels: SimChannel[]): ListReply {
  const events = [...bridgesOf(channels)].map(([bridge, members]): Fields => [['Event', 'BridgeListItem'], ...id, ...bridgeSnapshot(bridge, members.length)])
  return { message: 'Bridge listing will follow', complete: 'BridgeListComplete', events }
}

/** The channel snapshot keys (ast_manager_build_channel_state_string) of a listed channel. */
const channelSnapshot = (channel: SimChannel): Fields => [
  ['Channel', channel.channel],
  ['ChannelState', CHANNEL_STATE[channel.state]],
  ['ChannelStateDesc', channel.state],
  ['CallerIDNum', channel.callerNum],
  ['CallerIDName', channel.callerName],
  ['ConnectedLineNum', channel.connectedNum],
  ['ConnectedLineName', channel.connectedName],
  ['Language', 'en'],
  ['AccountCode', ''],
  ['Context', 'internal'],
  ['Exten', channel.exten],
  ['Priority', '1'],
  ['Uniqueid', channel.uniqueid],
  ['Linkedid', channel.linkedid],
]

/** AMI_Actions/BridgeInfo → AMI_Events/BridgeInfoChannel, BridgeInfoComplete (with the bridge snapshot); null for an unknown bridge. */
export function bridgeInfo(id: Fields, channels: SimChannel[], bridge: string): ListReply | null {
  const members = bridgesOf(channels).get(bridge)
  if (!members) return null
  return {
    message: 'Bridge channel listing will follow',
    complete: 'BridgeInfoComplete',
    events: members.map((channel): Fields => [['Event', 'BridgeInfoChannel'], ...id, ...channelSnapshot(channel)]),
    completeExtra: bridgeSnapshot(bridge, members.length),
  }
}

/**
 * AMI_Actions/QueueStatus → AMI_Events/QueueParams, QueueMember, QueueEntry, QueueStatusComplete.
 * app_queue writes the ActionID last in these three, unlike res_pjsip's lists.
 */
export function queueStatus(id: Fields, queues: SimQueue[]): ListReply {
  const events: Fields[] = []
  for (const queue of queues) {
    events.push([
      ['Event', 'QueueParams'],
      ['Queue', queue.name],
      ['Max', '0'],
      ['Strategy', queue.strategy],
      ['Calls', String(queue.entries.length)],
      ['Holdtime', '0'],
      ['TalkTime', '0'],
      ['Completed', '0'],
      ['Abandoned', '0'],
      ['ServiceLevel', '60'],
      ['ServicelevelPerf', '0.0'],
      ['ServicelevelPerf2', '0.0'],
      ['Weight', '0'],
      ...id,
    ])
    for (const member of queue.members) {
      events.push([
        ['Event', 'QueueMember'],
        ['Queue', queue.name],
        ['Name', member.name],
        ['Location', member.location],
        ['StateInterface', member.stateInterface],
        ['Membership', 'static'],
        ['Penalty', '0'],
        ['CallsTaken', '0'],
        ['LastCall', '0'],
        ['LastPause', '0'],
        ['LoginTime', '1795431600'],
        ['InCall', '0'],
        ['Status', String(member.status)],
        ['Paused', member.paused ? '1' : '0'],
        ['PausedReason', ''],
        ['Wrapuptime', '0'],
        ...id,
      ])
    }
    for (const [index, entry] of queue.entries.entries()) {
      events.push([
        ['Event', 'QueueEntry'],
        ['Queue', queue.name],
        ['Position', String(index + 1)],
        ['Channel', entry.channel],
        ['Uniqueid', entry.uniqueid],
        ['CallerIDNum', entry.callerNum],
        ['CallerIDName', entry.callerName],
        ['ConnectedLineNum', '<unknown>'],
        ['ConnectedLineName', '<unknown>'],
        ['Wait', String(entry.wait)],
        ['Priority', '0'],
        ...id,
      ])
    }
  }
  return { message: 'Queue status will follow', complete: 'QueueStatusComplete', events }
}

export interface CallParty {
  channel: string
  number: string
  name: string
  uniqueid: string
}

export interface Call {
  caller: CallParty
  callee: CallParty
  bridge: string
}

/** The channel snapshot keys every channel event carries (AMI_Events/Newchannel), optionally prefixed (`Dest`). */
function snapshot(party: CallParty, state: SimChannel['state'], connected: CallParty | null, exten: string, linkedid: string, prefix = ''): Fields {
  const fields: Fields = [
    ['Channel', party.channel],
    ['ChannelState', CHANNEL_STATE[state]],
    ['ChannelStateDesc', state],
    ['CallerIDNum', party.number],
    ['CallerIDName', party.name],
    ['ConnectedLineNum', connected?.number ?? '<unknown>'],
    ['ConnectedLineName', connected?.name ?? '<unknown>'],
    ['Language', 'en'],
    ['AccountCode', ''],
    ['Context', 'internal'],
    ['Exten', exten],
    ['Priority', '1'],
    ['Uniqueid', party.uniqueid],
    ['Linkedid', linkedid],
  ]
  return fields.map(([key, value]) => [`${prefix}${key}`, value])
}

/** AMI_Events/BridgeEnter and BridgeLeave: the bridge snapshot keys. */
const bridgeFields = (call: Call, channels: number): Fields => bridgeSnapshot(call.bridge, channels)

export type CallEvent = [name: string, privilege: string, fields: Fields]

export interface CallPhases {
  /** The caller's channel appears and dials; the callee rings. */
  ring: CallEvent[]
  /** The callee answers; both channels enter one bridge. */
  answer: CallEvent[]
  /** Both leave the bridge and hang up (Cause 16, Normal Clearing). */
  hangup: CallEvent[]
}

/**
 * A basic answered call with Dial(): AMI_Events/Newchannel, DialBegin, Newstate, DialEnd,
 * BridgeEnter, BridgeLeave, Hangup, DeviceStateChange and ExtensionStatus, in the order Asterisk
 * raises them.
 */
export function callPhases(call: Call): CallPhases {
  const { caller, callee } = call
  const linkedid = caller.uniqueid
  const device = (party: CallParty, state: string): CallEvent => ['DeviceStateChange', 'call,all', [['Device', `PJSIP/${party.number}`], ['State', state]]]
  const extension = (party: CallParty, status: string, text: string): CallEvent => [
    'ExtensionStatus',
    'call,all',
    [['Exten', party.number], ['Context', 'internal-hints'], ['Hint', `PJSIP/${party.number}`], ['Status', status], ['StatusText', text]],
  ]
  const hangup = (party: CallParty, connected: CallParty, exten: string): CallEvent => [
    'Hangup',
    'call,all',
    [...snapshot(party, 'Up', connected, exten, linkedid), ['Cause', '16'], ['Cause-txt', 'Normal Clearing']],
  ]
  return {
    ring: [
      ['Newchannel', 'call,all', snapshot(caller, 'Ring', null, callee.number, linkedid)],
      device(caller, 'INUSE'),
      extension(caller, '1', 'InUse'),
      ['Newchannel', 'call,all', snapshot(callee, 'Down', caller, 's', linkedid)],
      ['DialBegin', 'call,all', [...snapshot(caller, 'Ring', null, callee.number, linkedid), ...snapshot(callee, 'Down', caller, 's', linkedid, 'Dest'), ['DialString', callee.number]]],
      ['Newstate', 'call,all', snapshot(callee, 'Ringing', caller, 's', linkedid)],
      device(callee, 'RINGING'),
      extension(callee, '8', 'Ringing'),
    ],
    answer: [
      ['Newstate', 'call,all', snapshot(callee, 'Up', caller, 's', linkedid)],
      device(callee, 'INUSE'),
      extension(callee, '1', 'InUse'),
      ['DialEnd', 'call,all', [...snapshot(caller, 'Ring', callee, callee.number, linkedid), ...snapshot(callee, 'Up', caller, 's', linkedid, 'Dest'), ['DialStatus', 'ANSWER']]],
      ['Newstate', 'call,all', snapshot(caller, 'Up', callee, callee.number, linkedid)],
      ['BridgeEnter', 'call,all', [...bridgeFields(call, 1), ...snapshot(callee, 'Up', caller, 's', linkedid)]],
      ['BridgeEnter', 'call,all', [...bridgeFields(call, 2), ...snapshot(caller, 'Up', callee, callee.number, linkedid)]],
    ],
    hangup: [
      ['BridgeLeave', 'call,all', [...bridgeFields(call, 1), ...snapshot(caller, 'Up', callee, callee.number, linkedid)]],
      ['BridgeLeave', 'call,all', [...bridgeFields(call, 0), ...snapshot(callee, 'Up', caller, 's', linkedid)]],
      hangup(callee, caller, 's'),
      device(callee, 'NOT_INUSE'),
      extension(callee, '0', 'Idle'),
      hangup(caller, callee, callee.number),
      device(caller, 'NOT_INUSE'),
      extension(caller, '0', 'Idle'),
    ],
  }
}
