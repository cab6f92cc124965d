/**
 * How a message published on a shared channel reaches subscribers (README "Several nodes"): on one
 * node, straight into the hub's channel; with Redis (redis-bus.ts), through a script that gives it
 * its id and keeps the channel's buffer in Redis, then to every node's channel by pub/sub, so
 * every node delivers the same messages with the same ids in the same order.
 */
import type { Channel, Message } from './channel'

export interface PresenceBus {
  /**
   * Stores the message in the channel's buffer and delivers it on every node. Resolves with the
   * message as subscribers get it; rejects with a store outage (store/outage.ts) when the shared
   * store can't take it, and then nothing was published.
   */
  publish(channel: Channel, body: string, contentType: string): Promise<Message>
}
