/**
 * `pub/<channel>` and `sub/<channel>` (README "Presence: publish and subscribe"), replacing
 * nginx+nchan: publish from the box itself; subscribe by long-poll, EventSource or WebSocket, as
 * nchan's own client library does.
 */
import { Elysia } from 'elysia'
import * as v from 'valibot'
import type { AccessGuard, AccessOutcome } from '../auth/access-guard'
import { authPlugin } from '../auth/auth-plugin'
import { queryOf } from '../auth/credentials'
import { unixSeconds, type Clock } from '../clock'
import { ERRORS, errorBody, HttpError } from '../http/errors'
import { parseJsonText } from '../http/json-body'
import { parseId, type MessageId } from './channel'
import { openEventStream } from './event-stream'
import type { PresenceHub, Subscription } from './hub'
import { longPoll } from './long-poll'
import { isLocalPublisher } from './publisher'
import { CLOSE, handleClientMessage, NCHAN_SUBPROTOCOL, subscribeSocket, type Socket } from './websocket'

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
  hub: PresenceHub
  settings: PresenceSettings
  /** The socket peer of a request, and a way to lift its idle timeout (Bun's server in production). */
  peerOf: (request: Request) => string | undefined
  keepOpen: (request: Request) => void
}

/** What the parse hook below makes of a publish request. */
const PublishedBody = v.object({ text: v.string(), contentType: v.string() })

const ChannelParams = v.object({ channel: v.pipe(v.string(), v.regex(/^[a-z0-9-]{1,64}$/, 'must be a channel name')) })

export function presenceRoutes({ clock, guard, hub, settings, peerOf, keepOpen }: PresenceRoutesDeps) {
  const fail = (kind: (typeof ERRORS)[keyof typeof ERRORS]) => errorBody(kind, unixSeconds(clock))
  const sockets = new WeakMap<object, Subscription>()

  return new Elysia({ name: 'presence-routes' })
    .use(authPlugin({ guard, clock }))
    .post(
      '/pub/:channel',
      ({ params, body, status }) => {
        const channel = hub.channel(params.channel)
        if (!channel) return status(404, fail(ERRORS.notFound))
        // Counted before delivery: answered long-polls leave the channel as they get the message.
        const subscribers = channel.subscribers.size
        const message = hub.publish(channel, body.text, body.contentType)
        return { success: true, channel: channel.name, id: message.idText, subscribers }
      },
      {
        params: ChannelParams,
        body: PublishedBody,
        // The publisher check comes before reading up to 1 MiB of body.
        parse: async (context) => {
          if (!isLocalPublisher(peerOf(context.request), context.request.headers)) throw new HttpError(ERRORS.publishForbidden)
          const { text } = await parseJsonText(MAX_MESSAGE_BYTES)(context)
          return { text, contentType: context.request.headers.get('content-type')! }
        },
      },
    )
    .get(
      '/sub/:channel',
      async ({ params, principal, request, set, status }) => {
        const channel = hub.channel(params.channel)
        if (!channel) return status(404, fail(ERRORS.notFound))
        const identity = { username: principal.user.username, token: principal.credential }
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
        return status(401, fail(ERRORS.unauthorized))
      },
      { auth: 'stream', params: ChannelParams },
    )
    .ws('/sub/:channel', {
      upgrade({ request, set }) {
        if (wantsNchanMeta(request)) set.headers['sec-websocket-protocol'] = NCHAN_SUBPROTOCOL
      },
      open(ws) {
        const request = (ws.data as { request: Request }).request
        const socket = ws.raw as unknown as Socket
        const headers = request.headers
        const outcome = guard.check({ authorization: headers.get('authorization'), cookie: headers.get('cookie'), query: queryOf(request.url) }, 'access')
        if (!outcome.ok) return socket.close(...socketRefusal(outcome))
        const channel = hub.channel((ws.data as { params: { channel: string } }).params.channel)
        const resumeAfter = resumePoint(request)
        if (!channel || resumeAfter === undefined) return socket.close(CLOSE.protocolError, 'unknown channel or bad last_event_id')
        const username = outcome.principal.user.username
        if (!hub.acquire(username)) return socket.close(CLOSE.policy, 'too many subscriptions')
        const identity = { username, token: outcome.principal.credential }
        const subscription = subscribeSocket(hub, channel, socket, identity, { meta: wantsNchanMeta(request), resumeAfter }, { bufferLimit: WS_BUFFER_LIMIT })
        sockets.set(ws.raw, subscription)
      },
      message(ws, message) {
        const subscription = sockets.get(ws.raw)
        if (subscription) handleClientMessage(subscription, message, guard)
      },
      close(ws) {
        const subscription = sockets.get(ws.raw)
        if (subscription) hub.unsubscribe(subscription)
      },
    })
}

function socketRefusal(outcome: Extract<AccessOutcome, { ok: false }>): [number, string] {
  if (outcome.failure === 'missing') return [CLOSE.noToken, 'token required']
  if (outcome.reason === 'TokenExpiredError') return [CLOSE.tokenExpired, 'token expired']
  return [CLOSE.authFailed, 'authentication failed']
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
