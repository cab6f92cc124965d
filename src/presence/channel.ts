/**
 * A channel: a bounded buffer of messages and its subscribers
 * (README "Presence: publish and subscribe"). Messages carry nchan's ids, `<unix seconds>:<tag>`,
 * where the tag tells apart messages stored in the same second.
 */
export interface MessageId {
  time: number
  tag: number
}

export interface Message {
  id: MessageId
  /** `time:tag`, as nchan writes it in EventSource ids and ws+meta.nchan frames. */
  idText: string
  contentType: string
  body: string
}

export interface Subscriber {
  /** Returns false when the subscriber can't keep up; the channel then drops it. */
  deliver(message: Message): boolean
}

function formatId({ time, tag }: MessageId): string {
  return `${time}:${tag}`
}

/** `1795337185:0` → the id; anything else → null. */
export function parseId(text: string): MessageId | null {
  const match = /^(\d{1,12}):(\d{1,9})$/.exec(text.trim())
  return match ? { time: Number(match[1]), tag: Number(match[2]) } : null
}

export function messageOf(id: MessageId, contentType: string, body: string): Message {
  return { id, idText: formatId(id), contentType, body }
}

const isAfter = (id: MessageId, cursor: MessageId) => id.time > cursor.time || (id.time === cursor.time && id.tag > cursor.tag)

export class Channel {
  private readonly messages: Message[] = []
  readonly subscribers = new Set<Subscriber>()
  /** Told of every message stored, before subscribers get it: the personal feed reads snapshots here. */
  private readonly observers: Array<(message: Message) => void> = []
  /** Messages published, and messages not delivered because a subscriber could not keep up (README "Metrics"). */
  published = 0
  dropped = 0

  constructor(
    readonly name: string,
    readonly capacity: number,
  ) {}

  publish(body: string, contentType: string, now: number): Message {
    const last = this.messages.at(-1)
    // A clock that stepped back must not produce ids that sort before the buffer's last one.
    const time = Math.max(now, last?.id.time ?? 0)
    const id = { time, tag: last && last.id.time === time ? last.id.tag + 1 : 0 }
    const message = messageOf(id, contentType, body)
    this.accept(message)
    return message
  }

  /**
   * Stores and delivers a message whose id was given elsewhere (presence/bus.ts). One not newer
   * than the last stored is a repeat and is dropped: false.
   */
  accept(message: Message): boolean {
    const last = this.messages.at(-1)
    if (last && !isAfter(message.id, last.id)) return false
    this.published++
    this.messages.push(message)
    if (this.messages.length > this.capacity) this.messages.shift()
    for (const observer of this.observers) observer(message)
    for (const subscriber of this.subscribers) {
      if (!subscriber.deliver(message)) this.subscribers.delete(subscriber)
    }
    return true
  }

  observe(observer: (message: Message) => void): void {
    this.observers.push(observer)
  }

  /** The oldest buffered message after `cursor`, or the oldest of all without one. */
  next(cursor: MessageId | null): Message | undefined {
    return cursor ? this.messages.find((message) => isAfter(message.id, cursor)) : this.messages[0]
  }

  /** Every buffered message after `cursor` (all of them without one), oldest first. */
  since(cursor: MessageId | null): Message[] {
    return cursor ? this.messages.filter((message) => isAfter(message.id, cursor)) : [...this.messages]
  }

  last(): Message | undefined {
    return this.messages.at(-1)
  }
}
