/** A scripted AmiLink for the state engine's tests, and timers that move only when told. */
import type { AmiLink, AmiMessage, AmiReply, AmiStatus } from '../src/pbx/ami/ami-link'
import { amiMessage } from '../src/pbx/ami/ami-message'
import type { Timers } from '../src/pbx/state-engine'

export type Fields = Record<string, string>

export const listReply = (events: Fields[], response = 'Success'): AmiReply => ({
  response: amiMessage({ Response: response }),
  events: events.map((fields) => amiMessage(fields)),
})

export class FakeAmiLink implements AmiLink {
  status: AmiStatus = 'down'
  readonly actions: Array<{ name: string; params: Readonly<Record<string, string>> }> = []
  /** The reply to each action by name; an unscripted action answers Error. */
  readonly script = new Map<string, (params: Readonly<Record<string, string>>) => AmiReply | Promise<AmiReply>>()
  private readonly eventListeners: Array<(event: AmiMessage) => void> = []
  private readonly statusListeners: Array<(status: AmiStatus) => void> = []

  action(name: string, params: Readonly<Record<string, string>> = {}): Promise<AmiReply> {
    this.actions.push({ name, params })
    const answer = this.script.get(name)
    return Promise.resolve().then(() => (answer ? answer(params) : listReply([], 'Error')))
  }

  onEvent(listener: (event: AmiMessage) => void): void {
    this.eventListeners.push(listener)
  }

  onStatus(listener: (status: AmiStatus) => void): void {
    this.statusListeners.push(listener)
  }

  emit(fields: Fields): void {
    const event = amiMessage(fields)
    for (const listener of this.eventListeners) listener(event)
  }

  setStatus(status: AmiStatus): void {
    this.status = status
    for (const listener of this.statusListeners) listener(status)
  }
}

export class ManualTimers implements Timers {
  private now = 0
  private nextId = 1
  private readonly pending = new Map<number, { at: number; callback: () => void }>()

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++
    this.pending.set(id, { at: this.now + ms, callback })
    return id
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number)
  }

  /** Moves time forward, running every timer that falls due, in order. */
  advance(ms: number): void {
    const until = this.now + ms
    for (;;) {
      const due = [...this.pending].filter(([, timer]) => timer.at <= until).sort(([, a], [, b]) => a.at - b.at)[0]
      if (!due) break
      this.pending.delete(due[0])
      this.now = due[1].at
      due[1].callback()
    }
    this.now = until
  }
}
