/**
 * `admin/security-log` (README "Admin API"): the newest lines of the security log that match, read
 * from the end of `security.log` and then of its own rotations `.1` … `.5`, newest first. The read
 * is bounded in bytes, so a large log costs at most TAIL_READ_BYTES however few lines match.
 * Lines are returned as written; one that doesn't parse (cut by a rotation) is skipped.
 */
import { DEFAULT_LOG_LIMITS } from '../security-log/security-log'

export const TAIL_READ_BYTES = 4 * 1024 * 1024
const CHUNK_BYTES = 256 * 1024
const NEWLINE = 0x0a

export interface TailFilter {
  event?: string
  user?: string
  ip?: string
  /** Milliseconds, inclusive. */
  since?: number
  until?: number
}

export interface Tail {
  events: Array<Record<string, unknown>>
  /** True when `limit` or the read budget ended the answer before the oldest line (or `since`) was reached. */
  more: boolean
}

export async function tailSecurityLog(path: string, filter: TailFilter, limit: number, budget = TAIL_READ_BYTES): Promise<Tail> {
  const events: Array<Record<string, unknown>> = []
  const reader = { left: budget }
  for (const file of logFiles(path)) {
    for await (const line of linesFromEnd(file, reader)) {
      const event = parse(line)
      if (!event) continue
      const at = typeof event.ts === 'string' ? Date.parse(event.ts) : Number.NaN
      // Lines are in time order: everything further back is older still.
      if (filter.since !== undefined && at < filter.since) return { events, more: false }
      if (!matches(event, at, filter)) continue
      if (events.length === limit) return { events, more: true }
      events.push(event)
    }
    if (reader.left <= 0) return { events, more: true }
  }
  return { events, more: false }
}

function logFiles(path: string): string[] {
  return [path, ...Array.from({ length: DEFAULT_LOG_LIMITS.keep }, (_, index) => `${path}.${index + 1}`)]
}

function matches(event: Record<string, unknown>, at: number, filter: TailFilter): boolean {
  if (filter.event !== undefined && event.event !== filter.event) return false
  if (filter.user !== undefined && event.user !== filter.user) return false
  if (filter.ip !== undefined && event.ip !== filter.ip) return false
  if (filter.until !== undefined && !(at <= filter.until)) return false
  return true
}

function parse(line: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null
  } catch {
    return null
  }
}

/**
 * The file's complete lines, last first, reading backwards in chunks while `reader.left` lasts. A
 * line cut by the budget is dropped. A missing file has no lines.
 */
async function* linesFromEnd(path: string, reader: { left: number }): AsyncGenerator<string> {
  const file = Bun.file(path)
  if (!(await file.exists())) return
  let end = file.size
  let carry = Buffer.alloc(0)
  while (end > 0 && reader.left > 0) {
    const start = Math.max(0, end - Math.min(CHUNK_BYTES, reader.left))
    const chunk = Buffer.from(await file.slice(start, end).arrayBuffer())
    reader.left -= chunk.length
    end = start
    const joined = carry.length === 0 ? chunk : Buffer.concat([chunk, carry])
    // Before the first newline is the tail of an earlier line, unless this is the file's start.
    const cut = start === 0 ? -1 : joined.indexOf(NEWLINE)
    if (cut === -1 && start > 0) {
      carry = joined
      continue
    }
    carry = cut === -1 ? Buffer.alloc(0) : joined.subarray(0, cut)
    const lines = joined.subarray(cut + 1).toString('utf8').split('\n')
    for (let index = lines.length - 1; index >= 0; index--) if (lines[index]) yield lines[index]!
  }
}
