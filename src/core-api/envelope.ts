/**
 * MikoPBX's REST envelope, byte for byte (README "MikoPBX core-compatible API"). The processor
 * builds `{result, data, messages, function, processor, pid}`; PHP's json_encode writes it; the
 * response wraps that text as `{"jsonapi":…, <the same members>, "meta":{timestamp, hash}}` with
 * `hash` = sha1(timestamp + text) and an `E-Tag` header of sha1(text).
 */
import type { Clock } from '../clock'

/** The class and method MikoPBX 2024 names in `processor` (PHP's `__METHOD__`). */
const LIB = 'MikoPBX\\PBXCoreREST\\Lib'
export const PROCESSORS = {
  getPeersStatuses: `${LIB}\\Sip\\GetPeersStatusesAction::main`,
  getSipPeer: `${LIB}\\Sip\\GetPeerStatusAction::main`,
  getRegistry: `${LIB}\\Sip\\GetRegistryAction::main`,
  /** Refusals happen before an action runs: the SIP processor's dispatcher answers them. */
  refused: `${LIB}\\SIPStackProcessor::callBack`,
} as const

export type CoreFunction = 'getPeersStatuses' | 'getSipPeer' | 'getRegistry'

export interface CoreResult {
  result: boolean
  /** A list or an object; PHP's empty array encodes as `[]`. */
  data: unknown
  /** `[]` on success, `{"error":["…"]}` on failure. */
  messages: readonly string[] | { error: string[] }
  function: CoreFunction
  processor: string
}

export interface CoreAnswer {
  body: string
  etag: string
}

export function coreAnswer(clock: Clock, result: CoreResult): CoreAnswer {
  const inner = phpJson({ ...result, pid: process.pid })
  const timestamp = isoWithOffset(new Date(clock.now()))
  const meta = phpJson({ timestamp, hash: sha1(timestamp + inner) })
  return { body: `{"jsonapi":{"version":"1.0"},${inner.slice(1, -1)},"meta":${meta}}`, etag: sha1(inner) }
}

export function coreError(clock: Clock, fn: CoreFunction, message: string): CoreAnswer {
  return coreAnswer(clock, { result: false, data: [], messages: { error: [message] }, function: fn, processor: PROCESSORS.refused })
}

const sha1 = (text: string): string => new Bun.CryptoHasher('sha1').update(text).digest('hex')

/**
 * JSON as PHP's json_encode writes it without flags: `/` as `\/` and every character past ASCII
 * as `\uXXXX` (UTF-16 units). Both occur only inside strings, so replacing them in the output is exact.
 */
export function phpJson(value: unknown): string {
  return JSON.stringify(value).replace(/[/\u0080-\uffff]/g, (char) =>
    char === '/' ? '\\/' : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/** PHP's `date('c')`: local time with its offset, `2026-11-30T18:00:00+00:00`. */
export function isoWithOffset(date: Date): string {
  const offsetMinutes = -date.getTimezoneOffset()
  const local = new Date(date.getTime() + offsetMinutes * 60_000).toISOString().slice(0, 19)
  const sign = offsetMinutes < 0 ? '-' : '+'
  const hours = String(Math.floor(Math.abs(offsetMinutes) / 60)).padStart(2, '0')
  const minutes = String(Math.abs(offsetMinutes) % 60).padStart(2, '0')
  return `${local}${sign}${hours}:${minutes}`
}
