/**
 * The presence bus of several nodes (README "Several nodes"). A publish runs one script that gives
 * the message its id by the rule of Channel.publish, appends it to the channel's buffer in Redis
 * and PUBLISHes it, so the pub/sub order is the id order. Every node, the publisher too, delivers
 * only what arrives by pub/sub; after every (re)connect it first reloads each channel's buffer, so
 * a node that missed messages while cut off catches up in order before it delivers new ones.
 *
 * Keys:
 * - `softphone:channel:<name>`: a list, the channel's buffer (oldest first), trimmed to its capacity.
 * - `softphone:presence`: the pub/sub channel every node follows.
 * Both carry the message as JSON {time, tag, channel, contentType, body}.
 */
import { unixSeconds, type Clock } from '../clock'
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import type { PresenceBus } from './bus'
import { messageOf, type Channel, type Message } from './channel'

const BUFFER_PREFIX = 'softphone:channel:'
export const PRESENCE_CHANNEL = 'softphone:presence'

/**
 * KEYS[1] = the buffer, KEYS[2] = the pub/sub channel; ARGV = now, capacity, and the rest of the
 * message as a JSON object without its opening brace. The id is read from the buffer's last message,
 * whose text starts with it; the script returns {time, tag}.
 */
const PUBLISH = new RedisScript(`
local now, capacity = tonumber(ARGV[1]), tonumber(ARGV[2])
local time, tag = now, 0
local last = redis.call('LINDEX', KEYS[1], -1)
if last then
  local lastTime, lastTag = string.match(last, '^{"time":(%d+),"tag":(%d+),')
  lastTime, lastTag = tonumber(lastTime), tonumber(lastTag)
  -- A clock that stepped back must not produce ids that sort before the buffer's last one.
  if lastTime >= time then time, tag = lastTime, lastTag + 1 end
end
local message = '{"time":' .. string.format('%d', time) .. ',"tag":' .. string.format('%d', tag) .. ',' .. ARGV[3]
redis.call('RPUSH', KEYS[1], message)
redis.call('LTRIM', KEYS[1], -capacity, -1)
redis.call('PUBLISH', KEYS[2], message)
return {time, tag}
`)

interface WireMessage {
  time: number
  tag: number
  channel: string
  contentType: string
  body: string
}

/** What the bus uses of the link. */
export type BusLink = Pick<RedisLink, 'subscribe' | 'onUp' | 'onDown' | 'send' | 'eval'>

export interface RedisBusOptions {
  link: BusLink
  clock: Clock
  /** The shared channels of this node, by name (the hub's). */
  channels: readonly Channel[]
  log: (line: string) => void
}

export class RedisBus implements PresenceBus {
  private readonly channels: Map<string, Channel>
  /**
   * Until the buffers are reloaded after a (re)connect, what arrives by pub/sub waits here: accepted
   * first, it would make the older messages the reload brings look like repeats.
   */
  private waiting: WireMessage[] | null = []

  constructor(private readonly options: RedisBusOptions) {
    this.channels = new Map(options.channels.map((channel) => [channel.name, channel]))
    options.link.subscribe(PRESENCE_CHANNEL, (text) => this.arrived(text))
    options.link.onDown(() => (this.waiting ??= []))
    options.link.onUp(() => this.reload())
  }

  async publish(channel: Channel, body: string, contentType: string): Promise<Message> {
    const rest = JSON.stringify({ channel: channel.name, contentType, body }).slice(1)
    const args = [String(unixSeconds(this.options.clock)), String(channel.capacity), rest]
    const [time, tag] = (await this.options.link.eval(PUBLISH, [bufferKey(channel.name), PRESENCE_CHANNEL], args)) as [number, number]
    return messageOf({ time, tag }, contentType, body)
  }

  close(): void {}

  private arrived(text: string): void {
    const message = this.parse(text)
    if (!message) return
    if (this.waiting) this.waiting.push(message)
    else this.deliver(message)
  }

  /** Each channel's buffer, then what arrived meanwhile; repeats are dropped by Channel.accept. */
  private async reload(): Promise<void> {
    this.waiting ??= []
    for (const channel of this.channels.values()) {
      const texts = (await this.options.link.send('LRANGE', [bufferKey(channel.name), '0', '-1'])) as string[]
      for (const text of texts) {
        const message = this.parse(text)
        if (message) this.deliver(message)
      }
    }
    const waiting = this.waiting
    this.waiting = null
    for (const message of waiting) this.deliver(message)
  }

  private deliver({ time, tag, channel, contentType, body }: WireMessage): void {
    this.channels.get(channel)?.accept(messageOf({ time, tag }, contentType, body))
  }

  private parse(text: string): WireMessage | null {
    try {
      return JSON.parse(text) as WireMessage
    } catch {
      this.options.log(`redis: presence message that is not JSON dropped (${text.length} bytes)`)
      return null
    }
  }
}

const bufferKey = (name: string) => `${BUFFER_PREFIX}${name}`
