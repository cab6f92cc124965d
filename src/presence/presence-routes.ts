/**
 * `pub/<channel>` and `sub/<channel>` (README "Presence: publish and subscribe"), replacing
 * nginx+nchan: publish from the box itself; subscribe by long-poll, EventSource or WebSocket, as
 * nchan's own client library does.
 */
import { Elysia, status } from 'elysia'
import * as v from 'valibot'
import type { AccessGuard, AccessOutcome } from '../auth/access-guard'
import { accessDetail } from '../auth/route-access'
import { applyRefusalHeaders, refusalOf, streamCredentialRequest } from '../auth/auth-plugin'
import type { ClientIpOf } from '../http/client-ip'
import { queryOf } from '../auth/credentials'
import { unixSeconds, type Clock } from '../clock'
import { ERRORS, errorBody, HttpError } from '../http/errors'
import { parseJsonText } from '../http/json-body'
import { Channel, parseId, type MessageId } from './channel'
import { openEventStream } from './event-stream'
import type { PresenceHub, Subscription } from './hub'
import { longPoll } from './long-poll'
import type { PersonalFeed } from './personal/personal-feed'
import type { PresenceBus } from './bus'
import { isLocalPublisher } from './publisher'
import { SNAPSHOT_KINDS, type SnapshotKind } from './snapshot'
import { CLOSE, handleClientMessage, NCHAN_SUBPROTOCOL, subscribeSocket, type SocketHandlers, type Upgrade } from './websocket'

const MAX_MESSAGE_BYTES = 1024 * 1024
/** Unread messages an EventSource subscriber may have queued before it is dropped. */
const SSE_QUEUE_LIMIT = 256
/** Unsent bytes a WebSocket subscriber may have queued before it is dropped. */
const WS_BUFFER_LIMIT = 4 * 1024 * 1024

export interface PresenceSettings {
  longPollHoldMs: number
  heartbeatMs: number
}

export interface PresenceRoutesDeps {
  clock: Clock
  guard: AccessGuard
  clientIpOf: ClientIpOf
  hub: PresenceHub
  settings: PresenceSettings
  /** The socket peer of a request, and a way to lift its idle timeout (Bun's server in production). */
  peerOf: (request: Request) => string | undefined
  keepOpen: (request: Request) => void
  /** Bun's server.upgrade: false when the request can't become a WebSocket. */
  upgrade: Upgrade
  /** Channels another source produces (the AMI engine, the ingest route); `pub/` refuses them (README "Personalised presence"). */
  producedHere?: (channel: string) => boolean
  /** The personalised channels `sub/me/*`, and the legacy shared ones' switch (README "Personalised presence"). */
  feed: PersonalFeed
  /** How a publish reaches every node's channel (presence/bus.ts). */
  bus: PresenceBus
}

/** The channel a subscriber gets once its token names its user, or why there is none. */
type ChannelLookup = (username: string) => Channel | ErrorKind

type ErrorKind = (typeof ERRORS)[keyof typeof ERRORS]

const isSnapshotKind = (name: string): name is SnapshotKind => (SNAPSHOT_KINDS as readonly string[]).includes(name)

/** What the parse hook below makes of a publish request. */
const PublishedBody = v.object({ text: v.string(), contentType: v.string() })

const ChannelParams = v.object({ channel: v.pipe(v.string(), v.regex(/^[a-z0-9-]{1,64}$/, 'must be a channel name')) })

export function presenceRoutes({ clock, guard, clientIpOf, hub, settings, peerOf, keepOpen, upgrade, producedHere = () => false, feed, bus }: PresenceRoutesDeps) {
  const fail = (kind: ErrorKind) => errorBody(kind, unixSeconds(clock))
  /** A shared channel; with presence_legacy_channels = "off", users-state and active-calls are gone. */
  const sharedChannel =
    (name: string): ChannelLookup =>
    () => {
      if (!feed.legacy && isSnapshotKind(name)) return ERRORS.channelOff
      return hub.channel(name) ?? ERRORS.notFound
    }
  const personalChannel =
    (kind: SnapshotKind): ChannelLookup =>
    (username) =>
      feed.channelFor(kind, username)

  const routes = new Elysia({ name: 'presence-routes' })
    .post(
      '/pub/:channel',
      async ({ params, body, status }) => {
        const channel = hub.channel(params.channel)
        if (!channel) return status(404, fail(ERRORS.notFound))
        if (producedHere(channel.name)) return status(409, fail(ERRORS.channelProducedHere))
        // Counted before delivery: answered long-polls leave the channel as they get the message.
        // This node's only: with several nodes, the others' subscribers get it too (README "Several nodes").
        const subscribers = channel.subscribers.size
        const message = await bus.publish(channel, body.text, body.contentType)
        return { success: true, channel: channel.name, id: message.idText, subscribers }
      },
      {
        params: ChannelParams,
        // Loopback only, judged by address (README "Presence: publish and subscribe").
        detail: {
          ...accessDetail('public'),
          // What travels: any JSON, kept as text (README "OpenAPI"); PublishedBody is what the parse hook hands on.
          requestBody: { required: true, content: { 'application/json': { schema: {} } } },
        },
        body: PublishedBody,
        // The publisher check comes before reading up to 1 MiB of body.
        parse: async (context) => {
          if (!isLocalPublisher(peerOf(context.request), context.request.headers)) throw new HttpError(ERRORS.publishForbidden)
          const { text } = await parseJsonText(MAX_MESSAGE_BYTES)(context)
          return { text, contentType: context.request.headers.get('content-type')! }
        },
      },
    )
    .get('/sub/:channel', ({ params, request, set }) => subscribe(request, set, sharedChannel(params.channel)), {
      params: ChannelParams,
      // Streams take our access tokens only: they re-check them every second while open.
      detail: accessDetail('token'),
    })
    .get('/sub/me/users-state', ({ request, set }) => subscribe(request, set, personalChannel('users-state')), {
      detail: { ...accessDetail('token'), description: 'users-state cut to what the token\'s user may see (README "Personalised presence").' },
    })
    .get('/sub/me/active-calls', ({ request, set }) => subscribe(request, set, personalChannel('active-calls')), {
      detail: { ...accessDetail('token'), description: 'active-calls cut to what the token\'s user may see (README "Personalised presence").' },
    })

  /** One subscription by long-poll or EventSource, or the upgrade to a WebSocket one. */
  async function subscribe(request: Request, set: { headers: Record<string, string | number> }, lookup: ChannelLookup) {
    // A browser can't read the status of a refused upgrade: WebSockets learn of failures as close codes.
    if (isWebSocketUpgrade(request)) return upgradeToSocket(request, lookup) ? undefined : status(400, fail(ERRORS.upgradeFailed))
    const outcome = guard.checkOwnToken(streamCredentialRequest(request, clientIpOf), 'access')
    if (!outcome.ok) {
      const refusal = refusalOf('token', outcome, clock)
      applyRefusalHeaders(set.headers, refusal)
      return status(refusal.status as 401, refusal.body)
    }
    const identity = { username: outcome.principal.user.username, token: outcome.principal.credential }
    const channel = lookup(identity.username)
    if (!(channel instanceof Channel)) return status(channel.status as 404, fail(channel))
    const eventStream = (request.headers.get('accept') ?? '').includes('text/event-stream')
    const cursor = eventStream ? resumePoint(request) : pollCursor(request.headers)
    if (cursor === undefined) return status(400, fail(ERRORS.invalidCursor))
    if (!hub.acquire(identity.username)) return status(429, fail(ERRORS.tooManySubscriptions))

    if (eventStream) {
      keepOpen(request)
      set.headers['content-type'] = 'text/event-stream; charset=utf-8'
      set.headers['x-accel-buffering'] = 'no'
      return new Response(openEventStream(hub, channel, identity, cursor, { heartbeatMs: settings.heartbeatMs, queueLimit: SSE_QUEUE_LIMIT }))
    }
    const result = await longPoll(hub, channel, identity, cursor, settings.longPollHoldMs, request.signal)
    if ('message' in result) {
      const { message } = result
      set.headers['content-type'] = message.contentType
      set.headers['last-modified'] = new Date(message.id.time * 1000).toUTCString()
      set.headers['etag'] = String(message.id.tag)
      return new Response(message.body)
    }
    if ('timeout' in result) return new Response(null, { status: 304 })
    if (result.closed === 'shutdown') return status(503, fail(ERRORS.shuttingDown))
    if (result.closed === 'unavailable') return status(503, fail(ERRORS.storeUnavailable))
    return status(401, fail(ERRORS.unauthorized))
  }

  /**
   * Upgrades from the GET handler rather than through Elysia's ws(), so the route stays in Bun's
   * own router, which matches on the path whatever the Host header says (test/unit/routing.test.ts).
   * The request is judged now; the verdict is delivered once the socket is open.
   */
  function upgradeToSocket(request: Request, lookup: ChannelLookup): boolean {
    const outcome = guard.checkOwnToken(streamCredentialRequest(request, clientIpOf), 'access')
    const resumeAfter = resumePoint(request)
    const meta = wantsNchanMeta(request)
    let subscription: Subscription | undefined
    const handlers: SocketHandlers = {
      open(socket) {
        if (!outcome.ok) return socket.close(...socketRefusal(outcome))
        const username = outcome.principal.user.username
        const channel = lookup(username)
        if (channel === ERRORS.channelOff) return socket.close(CLOSE.protocolError, 'channel off: subscribe to sub/me/users-state or sub/me/active-calls')
        if (!(channel instanceof Channel) || resumeAfter === undefined) return socket.close(CLOSE.protocolError, 'unknown channel or bad last_event_id')
        if (!hub.acquire(username)) return socket.close(CLOSE.policy, 'too many subscriptions')
        const identity = { username, token: outcome.principal.credential }
        subscription = subscribeSocket(hub, channel, socket, identity, { meta, resumeAfter }, { bufferLimit: WS_BUFFER_LIMIT })
      },
      message(_socket, message) {
        if (subscription) handleClientMessage(subscription, message, guard)
      },
      close() {
        if (subscription) hub.unsubscribe(subscription)
      },
    }
    return upgrade(request, { headers: meta ? { 'sec-websocket-protocol': NCHAN_SUBPROTOCOL } : undefined, data: handlers })
  }

  return routes
}

function socketRefusal(outcome: Extract<AccessOutcome, { ok: false }>): [number, string] {
  if (outcome.failure === 'missing') return [CLOSE.noToken, 'token required']
  if (outcome.failure === 'unavailable') return [CLOSE.tryAgainLater, 'try again later']
  if (outcome.reason === 'TokenExpiredError') return [CLOSE.tokenExpired, 'token expired']
  return [CLOSE.authFailed, 'authentication failed']
}

/** RFC 6455 §4.2.1: an upgrade asks for `websocket` in Upgrade; Connection's tokens are Bun's to check. */
function isWebSocketUpgrade(request: Request): boolean {
  return request.headers.get('upgrade')?.toLowerCase() === 'websocket'
}

function wantsNchanMeta(request: Request): boolean {
  const offered = request.headers.get('sec-websocket-protocol') ?? ''
  return offered.split(',').some((protocol) => protocol.trim() === NCHAN_SUBPROTOCOL)
}

/**
 * EventSource and WebSocket resume after `Last-Event-ID` or `?last_event_id=` (nchan's id text).
 * null: from the start of the buffer; undefined: present but not an id.
 */
function resumePoint(request: Request): MessageId | null | undefined {
  const text = request.headers.get('last-event-id') ?? new URLSearchParams(queryOf(request.url) ?? '').get('last_event_id')
  if (text === null || text === '') return null
  return parseId(text) ?? undefined
}

/**
 * nchan long-poll cursor: `If-Modified-Since` is the message time, `If-None-Match` its tag.
 * null: no cursor; undefined: present but unreadable.
 */
function pollCursor(headers: Headers): MessageId | null | undefined {
  const since = headers.get('if-modified-since')
  const match = headers.get('if-none-match')
  if (since === null && match === null) return null
  const time = since === null ? 0 : Date.parse(since) / 1000
  const tag = match === null ? 0 : Number(match.replace(/^W\//, '').replaceAll('"', ''))
  return Number.isInteger(time) && time >= 0 && Number.isInteger(tag) && tag >= 0 ? { time, tag } : undefined
}
