/**
 * The presence bus of several nodes (README "Several nodes"). A publish runs one script that gives
 * the message its id by the rule of Channel.publish, appends it to the channel's buffer in Redis
 * and PUBLISHes it, so the pub/sub order is the id order. Every node, the publisher too, delivers
 * only what arrives by pub/sub; after every (re)connect it first reloads each channel's buffer, so
 * a node that missed messages while cut off catches up in order before it delivers new ones, and
 * puts back what it has that Redis lost.
 *
 * Keys:
 * - `softphone:channel:<name>`: a list, the channel's buffer (oldest first), trimmed to its capacity.
 * - `softphone:presence`: the pub/sub channel every node follows.
 * Both carry the message as JSON {time, tag, channel, contentType, body}.
 */
import { unixSeconds, type Clock } from '../clock'
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import type { PresenceBus } from './bus'
import { messageOf, type Channel, type Message, type MessageId } from './channel'

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

/**
 * KEYS and ARGV[1] as for PUBLISH; ARGV[2..] = whole messages, oldest first. Appends and publishes
 * those newer than the buffer's last message; returns how many.
 */
const RESTORE = new RedisScript(`
local function idOf(message)
  local time, tag = string.match(message, '^{"time":(%d+),"tag":(%d+),')
  return tonumber(time), tonumber(tag)
end
local lastTime, lastTag = -1, -1
local last = redis.call('LINDEX', KEYS[1], -1)
if last then lastTime, lastTag = idOf(last) end
local restored = 0
for i = 2, #ARGV do
  local time, tag = idOf(ARGV[i])
  if time > lastTime or (time == lastTime and tag > lastTag) then
    redis.call('RPUSH', KEYS[1], ARGV[i])
    redis.call('PUBLISH', KEYS[2], ARGV[i])
    lastTime, lastTag, restored = time, tag, restored + 1
  end
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
return restored
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
    const args = [String(unixSeconds(this.options.clock)), String(channel.capacity), wireRest(channel.name, contentType, body)]
    const [time, tag] = (await this.options.link.eval(PUBLISH, [bufferKey(channel.name), PRESENCE_CHANNEL], args)) as [number, number]
    return messageOf({ time, tag }, contentType, body)
  }

  private arrived(text: string): void {
    const message = this.parse(text)
    if (!message) return
    if (this.waiting) this.waiting.push(message)
    else this.deliver(message)
  }

  /**
   * Each channel's buffer, then what arrived meanwhile; repeats are dropped by Channel.accept.
   * Then what this node has that Redis lost (a restart lost the last second of an `everysec` AOF)
   * goes back, so that ids keep growing and nodes that missed those messages get them.
   */
  private async reload(): Promise<void> {
    this.waiting ??= []
    const lastInRedis = new Map<Channel, MessageId | null>()
    for (const channel of this.channels.values()) {
      const texts = (await this.options.link.send('LRANGE', [bufferKey(channel.name), '0', '-1'])) as string[]
      const messages = texts.map((text) => this.parse(text)).filter((message) => message !== null)
      for (const message of messages) this.deliver(message)
      lastInRedis.set(channel, messages.at(-1) ?? null)
    }
    const waiting = this.waiting
    this.waiting = null
    for (const message of waiting) this.deliver(message)
    for (const [channel, last] of lastInRedis) await this.restore(channel, last)
  }

  private async restore(channel: Channel, lastInRedis: MessageId | null): Promise<void> {
    const missing = channel.since(lastInRedis)
    if (missing.length === 0) return
    const texts = missing.map(({ id, contentType, body }) => `{"time":${id.time},"tag":${id.tag},${wireRest(channel.name, contentType, body)}`)
    const restored = Number(await this.options.link.eval(RESTORE, [bufferKey(channel.name), PRESENCE_CHANNEL], [String(channel.capacity), ...texts]))
    if (restored > 0) this.options.log(`redis: ${restored} message(s) of channel ${channel.name} missing in Redis put back from this node`)
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

/** A message's JSON after its id, without the opening brace: the scripts put the id in front. */
const wireRest = (channel: string, contentType: string, body: string) => JSON.stringify({ channel, contentType, body }).slice(1)
