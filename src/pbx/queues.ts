/**
 * Asterisk queues (README "Presence snapshots, schema version 2"): who is a member, who waits.
 * Filled from `QueueStatus` at every load and from the queue events; published as `isQueue`
 * entries that never override their agents' states.
 */
import type { AmiMessage } from './ami/ami-link'
import type { EmployeeEntry } from '../presence/snapshot'

export interface QueueRecord {
  name: string
  /** Member extensions by interface (`PJSIP/201`, `Local/201@internal/n`). */
  members: Map<string, string>
  /** Uniqueids (or channel names) of the callers waiting. */
  waiting: Set<string>
}

/** A member's extension from its StateInterface or Interface: `PJSIP/201` → 201, `Local/201@ctx/n` → 201. */
export function extensionOfInterface(iface: string): string | null {
  const match = /^(?:PJSIP|SIP|Local)\/([A-Za-z0-9_.+=-]{1,80}?)(?:-WS)?(?:@[^/]*)?(?:\/n)?$/i.exec(iface)
  return match ? match[1]! : null
}

const memberInterface = (event: AmiMessage): string => event.get('Interface') ?? event.get('Location') ?? event.get('MemberName') ?? ''

function memberExtension(event: AmiMessage): string | null {
  for (const key of ['StateInterface', 'Interface', 'Location']) {
    const ext = extensionOfInterface(event.get(key) ?? '')
    if (ext !== null) return ext
  }
  return null
}

/** What a users-state key may be (README "Presence snapshots, schema version 2"); other queues are not published. */
const QUEUE_NAME = /^[A-Za-z0-9_.+=-]{1,80}$/

const callerKey = (event: AmiMessage): string => event.get('Uniqueid') || event.get('Channel') || ''

export class QueueTable {
  readonly queues = new Map<string, QueueRecord>()

  constructor(private readonly maxQueues: number) {}

  private queue(name: string): QueueRecord | undefined {
    if (!QUEUE_NAME.test(name)) return undefined
    let queue = this.queues.get(name)
    if (!queue && this.queues.size < this.maxQueues) {
      queue = { name, members: new Map(), waiting: new Set() }
      this.queues.set(name, queue)
    }
    return queue
  }

  /** QueueMember (a load), QueueMemberAdded, QueueMemberStatus, AgentCalled/Connect/Complete: the member exists. */
  member(event: AmiMessage): boolean {
    const queue = this.queue(event.get('Queue') ?? '')
    const ext = memberExtension(event)
    if (!queue || ext === null) return false
    queue.members.set(memberInterface(event) || ext, ext)
    return true
  }

  memberRemoved(event: AmiMessage): boolean {
    const queue = this.queues.get(event.get('Queue') ?? '')
    return queue !== undefined && queue.members.delete(memberInterface(event))
  }

  /** QueueEntry (a load) or QueueCallerJoin. */
  callerJoined(event: AmiMessage): boolean {
    const queue = this.queue(event.get('Queue') ?? '')
    const key = callerKey(event)
    if (!queue || !key) return false
    queue.waiting.add(key)
    return true
  }

  /** QueueCallerLeave, QueueCallerAbandon, AgentConnect (the caller is answered). */
  callerLeft(event: AmiMessage): boolean {
    const queue = this.queues.get(event.get('Queue') ?? '')
    return queue !== undefined && queue.waiting.delete(callerKey(event))
  }

  /** A hung-up channel waits nowhere, even if its QueueCallerLeave was lost. */
  channelGone(uniqueid: string, name: string): void {
    for (const queue of this.queues.values()) {
      queue.waiting.delete(uniqueid)
      queue.waiting.delete(name)
    }
  }

  /** A load's QueueStatus: QueueParams, QueueMember and QueueEntry events. */
  replaceWith(events: readonly AmiMessage[]): void {
    this.queues.clear()
    for (const event of events) {
      const kind = event.get('Event')
      if (kind === 'QueueParams') this.queue(event.get('Queue') ?? '')
      else if (kind === 'QueueMember') this.member(event)
      else if (kind === 'QueueEntry') this.callerJoined(event)
    }
  }

  /** The `isQueue` entries by queue name, members sorted so the JSON is deterministic. */
  entries(): Map<string, EmployeeEntry> {
    const entries = new Map<string, EmployeeEntry>()
    for (const queue of this.queues.values()) {
      entries.set(queue.name, {
        name: queue.name,
        state: queue.waiting.size > 0 ? 'Ringing' : 'Idle',
        channels: {},
        isQueue: true,
        members: [...new Set(queue.members.values())].sort(),
      })
    }
    return entries
  }
}
