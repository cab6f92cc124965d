/**
 * nchan-compatible long-poll (README "Presence: publish and subscribe"): the next message after the
 * client's cursor at once if it is buffered, else the first one published within the hold time,
 * else nothing (the route answers 304 and the client polls again).
 */
import type { Channel, Message, MessageId } from './channel'
import type { CloseReason, PresenceHub, Subscription } from './hub'

export type PollResult = { message: Message } | { timeout: true } | { closed: CloseReason }

export function longPoll(
  hub: PresenceHub,
  channel: Channel,
  identity: { username: string; token: string },
  cursor: MessageId | null,
  holdMs: number,
  abort: AbortSignal,
): Promise<PollResult> {
  const buffered = channel.next(cursor)
  if (buffered) {
    hub.release(identity.username)
    return Promise.resolve({ message: buffered })
  }
  return new Promise((resolve) => {
    let done = false
    const finish = (result: PollResult | null) => {
      if (done) return
      done = true
      clearTimeout(timer)
      abort.removeEventListener('abort', onAbort)
      hub.unsubscribe(subscription)
      if (result) resolve(result)
    }
    const onAbort = () => finish({ timeout: true })
    const subscription: Subscription = {
      username: identity.username,
      transport: 'longpoll',
      token: identity.token,
      deliver(message) {
        finish({ message })
        return false
      },
      close(reason) {
        finish({ closed: reason })
      },
    }
    const timer = setTimeout(() => finish({ timeout: true }), holdMs)
    abort.addEventListener('abort', onAbort)
    hub.subscribe(channel, subscription)
  })
}
