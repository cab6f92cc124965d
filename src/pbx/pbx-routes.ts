/**
 * `peers`, `peers/<ext>`, `registry` (README "Live PBX state"): live PBX state for softphones,
 * read from the state engine's cache; a request never waits on AMI. Every answer says how fresh
 * it is (`ami`, `stale`).
 */
import { Elysia } from 'elysia'
import { unixSeconds, type Clock } from '../clock'
import type { AuthPlugin } from '../auth/auth-plugin'
import { bearerChallenge } from '../auth/challenge'
import type { Directory, DirectoryUser } from '../directory/directory'
import { ErrorEnvelope } from '../http/envelope-schema'
import { ERRORS, errorBody } from '../http/errors'
import { jsonResponses } from '../openapi/responses'
import type { ContactDetail, EndpointState, PbxStateView } from './pbx-state'
import { PeerContactsResponse, PeersResponse, RegistryResponse } from './pbx-schemas'
import { endpointsOf, hasUri, mergedPeers, registryOf, type MergedPeer, type ProviderSource } from './peer-state'

/** What a directory lookup may be asked for: an extension-like name, never a path or text from elsewhere. */
const EXTENSION_NAME = /^[A-Za-z0-9_]{1,64}$/

export interface PbxRoutesDeps {
  clock: Clock
  /** The `auth` macro (auth/auth-plugin.ts). */
  auth: AuthPlugin
  directory: Directory
  pbx: PbxStateView | undefined
  /** MikoPBX's providers; none in embedded mode. */
  providers: ProviderSource | null
}

export function pbxRoutes({ clock, auth, directory, pbx, providers }: PbxRoutesDeps) {
  const freshness = () => ({ success: true as const, ami: pbx?.ami ?? 'off', stale: pbx?.stale ?? false })
  const knownUser = (name: string): DirectoryUser | null => {
    if (!EXTENSION_NAME.test(name)) return null
    const user = directory.findByUsername(name)
    return user && !user.disabled ? user : null
  }
  return new Elysia({ name: 'pbx-routes' })
    .use(auth)
    .get(
      '/peers',
      () => {
        const peers = mergedPeers(pbx?.endpoints().values() ?? []).flatMap((peer) => {
          const user = knownUser(peer.name)
          return user ? [peerView(peer, user)] : []
        })
        return { ...freshness(), peers }
      },
      { auth: 'user', detail: { responses: jsonResponses({ 200: PeersResponse }) } },
    )
    .get(
      '/peers/:ext',
      ({ params: { ext }, status }) => {
        if (!knownUser(ext)) return status(404, errorBody(ERRORS.notFound, unixSeconds(clock)))
        const contacts = endpointsOf(pbx, ext).flatMap((endpoint) => endpoint.contacts.filter(hasUri).map((contact) => contactView(endpoint, contact)))
        return { ...freshness(), extension: ext, contacts }
      },
      { auth: 'user', detail: { responses: jsonResponses({ 200: PeerContactsResponse, 404: ErrorEnvelope }) } },
    )
    .get(
      '/registry',
      () => ({ ...freshness(), providers: registryOf(pbx, providers?.list() ?? []) }),
      { auth: 'admin', detail: { responses: jsonResponses({ 200: RegistryResponse }) } },
    )
}

export const isAdmin = (user: DirectoryUser): boolean => user.role === 'admin' || user.role === 'superadmin'

function peerView(peer: MergedPeer, user: DirectoryUser) {
  return {
    extension: peer.name,
    display_name: user.displayName,
    state: peer.state,
    device_state: peer.deviceState,
    registered: peer.endpoints.some((endpoint) => endpoint.contacts.some(hasUri)),
  }
}

function contactView(endpoint: EndpointState, contact: ContactDetail) {
  return {
    endpoint: endpoint.name,
    uri: contact['URI'] ?? '',
    user_agent: contact['UserAgent'] ?? '',
    status: contact['Status'] ?? '',
    rtt_usec: numberOrNull(contact['RoundtripUsec']),
    expires: numberOrNull(contact['RegExpire']),
  }
}

/** Asterisk sends `N/A` or nothing for a contact never qualified, `0` for a static contact's expiry. */
function numberOrNull(text: string | undefined): number | null {
  if (!text || !/^\d{1,15}$/.test(text)) return null
  const value = Number(text)
  return value === 0 ? null : value
}
