/** The bus of one node (store = "sqlite"): a publish goes straight into the hub's channel. */
import { unixSeconds, type Clock } from '../clock'
import type { PresenceBus } from './bus'
import type { Channel, Message } from './channel'

export class LocalBus implements PresenceBus {
  constructor(private readonly clock: Clock) {}

  publish(channel: Channel, body: string, contentType: string): Promise<Message> {
    return Promise.resolve(channel.publish(body, contentType, unixSeconds(this.clock)))
  }
}
