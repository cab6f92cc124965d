/**
 * EventSource transport (README "Presence: publish and subscribe"): buffered messages after the
 * resume point, then live ones, each with `id: <time>:<tag>`; a comment line as heartbeat; a final
 * `close` event when the server ends the stream. A subscriber that stops reading fills its queue
 * and is dropped.
 */
import type { Channel, Message, MessageId } from './channel'
import type { CloseReason, PresenceHub, Subscription } from './hub'

export interface EventStreamSettings {
  heartbeatMs: number
  /** Messages that may wait unread before the subscriber is dropped. */
  queueLimit: number
}

const encoder = new TextEncoder()

/** data: lines may not contain line breaks, so a multi-line body becomes several data: lines. */
function eventFrame(message: Message): Uint8Array {
  const data = message.body.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join('')
  return encoder.encode(`id: ${message.idText}\n${data}\n`)
}

export function openEventStream(
  hub: PresenceHub,
  channel: Channel,
  identity: { username: string; token: string },
  resumeAfter: MessageId | null,
  settings: EventStreamSettings,
): ReadableStream<Uint8Array> {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let heartbeat: ReturnType<typeof setInterval> | undefined
  let closed = false

  const finish = () => {
    closed = true
    clearInterval(heartbeat)
    hub.unsubscribe(subscription)
  }
  const subscription: Subscription = {
    username: identity.username,
    transport: 'eventsource',
    token: identity.token,
    deliver(message) {
      if (closed) return false
      // With a high-water mark of 0, -desiredSize is the number of chunks the client hasn't taken.
      if (-(controller.desiredSize ?? 0) >= settings.queueLimit) {
        hub.dropped(subscription)
        subscription.close('overflow')
        return false
      }
      controller.enqueue(eventFrame(message))
      return true
    },
    close(reason: CloseReason) {
      if (closed) return
      finish()
      try {
        if (reason !== 'overflow') controller.enqueue(encoder.encode(`event: close\ndata: {"reason":"${reason}"}\n\n`))
        controller.close()
      } catch {
        // Already cancelled by the client.
      }
    },
  }

  return new ReadableStream<Uint8Array>(
    {
      start(streamController) {
        controller = streamController
        controller.enqueue(encoder.encode(': softphone-backend\n\n'))
        for (const message of channel.since(resumeAfter)) controller.enqueue(eventFrame(message))
        hub.subscribe(channel, subscription)
        heartbeat = setInterval(() => {
          if (!closed) controller.enqueue(encoder.encode(': heartbeat\n\n'))
        }, settings.heartbeatMs)
      },
      // The client went away.
      cancel: finish,
    },
    { highWaterMark: 0 },
  )
}
