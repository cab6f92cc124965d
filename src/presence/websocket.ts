/**
 * WebSocket transport (README "Presence: publish and subscribe"). The browser can't read an HTTP
 * status from a failed upgrade, so authentication happens after it and failures are close codes:
 * 4001 no token, 4002 auth failed, 4003 token expired, 4004 protocol error. A client renews in-band
 * with {"op":"token","token":…}. With the `ws+meta.nchan` subprotocol each frame carries nchan's id
 * and content-type header lines.
 */
import type { AccessGuard } from '../auth/access-guard'
import type { Channel, Message, MessageId } from './channel'
import { closeReasonOf, type CloseReason, type PresenceHub, type Subscription } from './hub'

export const NCHAN_SUBPROTOCOL = 'ws+meta.nchan'

export const CLOSE = {
  noToken: 4001,
  authFailed: 4002,
  tokenExpired: 4003,
  protocolError: 4004,
  /** RFC 6455 §7.4.1: going away (server shutdown). */
  goingAway: 1001,
  /** IANA's WebSocket close code registry: "Try Again Later", for a server that can't judge tokens now. */
  tryAgainLater: 1013,
  /** RFC 6455 policy violation: the client stopped reading, or has too many subscriptions. */
  policy: 1008,
} as const

const CLOSE_FOR: Record<CloseReason, [number, string]> = {
  token_expired: [CLOSE.tokenExpired, 'token expired'],
  auth_failed: [CLOSE.authFailed, 'authentication failed'],
  overflow: [CLOSE.policy, 'subscriber too slow'],
  shutdown: [CLOSE.goingAway, 'server shutting down'],
  protocol_error: [CLOSE.protocolError, 'expected {"op":"token","token":...}'],
  unavailable: [CLOSE.tryAgainLater, 'try again later'],
}

/** The parts of Bun's ServerWebSocket this transport uses. */
export interface Socket {
  send(data: string): number
  close(code: number, reason: string): void
  getBufferedAmount(): number
}

/**
 * Per-connection handlers, carried as the upgrade's `data`: Elysia installs Bun's websocket
 * callbacks for the server and forwards each to `socket.data.<name>`.
 */
export interface SocketHandlers {
  open(socket: Socket): void
  message(socket: Socket, message: string | Buffer): void
  close(socket: Socket): void
}

export type Upgrade = (request: Request, options: { headers?: Record<string, string>; data: SocketHandlers }) => boolean

export interface WebSocketSettings {
  /** Bytes that may wait unsent before the subscriber is dropped. */
  bufferLimit: number
}

function wsFrame(message: Message, meta: boolean): string {
  return meta ? `id: ${message.idText}\ncontent-type: ${message.contentType}\n\n${message.body}` : message.body
}

export function subscribeSocket(
  hub: PresenceHub,
  channel: Channel,
  socket: Socket,
  identity: { username: string; token: string },
  options: { meta: boolean; resumeAfter: MessageId | null },
  settings: WebSocketSettings,
): Subscription {
  let closed = false
  const subscription: Subscription = {
    username: identity.username,
    transport: 'websocket',
    token: identity.token,
    deliver(message) {
      if (closed) return false
      if (socket.getBufferedAmount() > settings.bufferLimit) {
        hub.dropped(subscription)
        subscription.close('overflow')
        return false
      }
      socket.send(wsFrame(message, options.meta))
      return true
    },
    close(reason) {
      if (closed) return
      closed = true
      hub.unsubscribe(subscription)
      socket.close(...CLOSE_FOR[reason])
    },
  }
  for (const message of channel.since(options.resumeAfter)) socket.send(wsFrame(message, options.meta))
  hub.subscribe(channel, subscription)
  return subscription
}

/**
 * The only client message: {"op":"token","token":"<new access token>"}. A valid token for the same
 * user replaces the subscription's; anything else closes the socket.
 */
export function handleClientMessage(subscription: Subscription, raw: unknown, guard: AccessGuard): void {
  const message = typeof raw === 'string' ? safeJson(raw) : raw
  if (!isTokenRenewal(message)) {
    subscription.close('protocol_error')
    return
  }
  const outcome = guard.checkToken(message.token, 'access')
  if (outcome.ok && outcome.principal.user.username === subscription.username) {
    subscription.token = message.token
    return
  }
  subscription.close(outcome.ok ? 'auth_failed' : closeReasonOf(outcome))
}

function isTokenRenewal(value: unknown): value is { op: 'token'; token: string } {
  const candidate = value as { op?: unknown; token?: unknown } | null
  return typeof candidate === 'object' && candidate !== null && candidate.op === 'token' && typeof candidate.token === 'string'
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}
