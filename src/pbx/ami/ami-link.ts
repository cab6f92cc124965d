/**
 * What the rest of the program sees of the Asterisk Manager Interface (README "Live PBX state"):
 * messages as ordered key/value lists, actions that resolve with their response and list events,
 * and a status. The TCP client (ami-client.ts) implements it; tests may pass a fake.
 */

/** One AMI message. Keys keep their case and order; a repeated key (`ChanVariable`) keeps every value. */
export interface AmiMessage {
  readonly fields: ReadonlyArray<readonly [key: string, value: string]>
  /** The first value of `key` (exact case, then case-insensitive), or undefined. */
  get(key: string): string | undefined
  /** Every value of `key`, in order. */
  all(key: string): string[]
}

export interface AmiReply {
  /** The `Response:` message (`Success`, `Error`, `Goodbye`, `Follows`). */
  response: AmiMessage
  /** For list actions (`EventList: start`): the events up to, not including, the `…Complete` event. */
  events: AmiMessage[]
}

export type AmiStatus = 'up' | 'down' | 'off'

export interface AmiLink {
  readonly status: AmiStatus
  /**
   * Sends one action with a fresh ActionID. Resolves with its reply once complete; rejects with
   * AmiDisconnected if the link drops first, or AmiActionTimeout after `timeoutMs`.
   */
  action(name: string, params?: Readonly<Record<string, string>>, timeoutMs?: number): Promise<AmiReply>
  /** Events not consumed by a pending list action. */
  onEvent(listener: (event: AmiMessage) => void): void
  /** Called on every change: `up` after a successful login, `down` when the link drops. */
  onStatus(listener: (status: AmiStatus) => void): void
}

export class AmiDisconnected extends Error {
  override readonly name = 'AmiDisconnected'
}

export class AmiActionTimeout extends Error {
  override readonly name = 'AmiActionTimeout'
}
