/**
 * Which recording a request asks for, from nginx's `X-Original-URI` (the raw `$request_uri`), or
 * why it is refused (README "Recordings: check-media-access"). nginx normalises the URI it serves
 * from but passes the raw one, so anything a normaliser would rewrite is refused here rather than
 * interpreted: dot segments, double slashes, backslashes, encoded slashes, control bytes.
 * One pass over the path part and no URL object: this runs on every recording request (bench/run.ts).
 */
import { RECORDINGS_URL_PREFIX as RECORDINGS_PREFIX } from '../history/recordings'

/** `relative` is the path under the monitor directory (`Y/m/d/H/<file>`), percent-decoded once. */
export type RecordingPath = { ok: true; relative: string } | { ok: false; reason: string }

const SLASH = 0x2f
const BACKSLASH = 0x5c
const DOT = 0x2e
const PERCENT = 0x25
const DEL = 0x7f

export function recordingPathOf(uri: string): RecordingPath {
  const reason = recordingPathRefusal(uri)
  if (reason !== null) return refused(reason)
  const relative = uri.slice(RECORDINGS_PREFIX.length, pathEnd(uri))
  // recordingPathRefusal has checked that it decodes.
  return { ok: true, relative: relative.includes('%') ? decodeURIComponent(relative) : relative }
}

/**
 * Why the path of `uri` is refused, or null: recordingPathOf without building the relative path,
 * for check-media-access, which only needs the verdict.
 */
export function recordingPathRefusal(uri: string): string | null {
  if (!uri.startsWith(RECORDINGS_PREFIX)) return 'path outside the recordings location'
  const start = RECORDINGS_PREFIX.length
  const end = pathEnd(uri)
  let encoded = false
  // The current segment: how many dots (raw or %2e), and whether it has anything else.
  let dots = 0
  let other = false
  for (let i = start; i <= end; i++) {
    let code = i === end ? SLASH : uri.charCodeAt(i)
    if (code === SLASH) {
      if (!other) {
        if (dots === 0) return i === end ? 'path names no file' : 'path has a double slash'
        if (dots <= 2) return 'path has a dot segment'
      }
      dots = 0
      other = false
      continue
    }
    const raw = code !== PERCENT
    if (!raw) {
      code = hexByte(uri, i + 1)
      if (code < 0) return 'path has bad percent-encoding'
      encoded = true
      i += 2
    }
    if (code === DOT) {
      dots++
      continue
    }
    other = true
    const reason = byteRefusal(code, raw)
    if (reason !== null) return reason
  }
  // Escapes that are not UTF-8 once decoded, overlong forms of `.` and `/` among them.
  return encoded && !decodes(uri.slice(start, end)) ? 'path has bad percent-encoding' : null
}

function pathEnd(uri: string): number {
  const query = uri.indexOf('?', RECORDINGS_PREFIX.length)
  return query === -1 ? uri.length : query
}

function decodes(text: string): boolean {
  try {
    decodeURIComponent(text)
    return true
  } catch {
    return false
  }
}

function refused(reason: string): RecordingPath {
  return { ok: false, reason }
}

/** Why one path character (raw, or the byte a %XX stands for) is refused, or null. */
function byteRefusal(code: number, raw: boolean): string | null {
  if (code === 0) return 'path has a NUL byte'
  if (code < 0x20 || code === DEL) return 'path has a control character'
  if (code === BACKSLASH) return raw ? 'path has a backslash' : 'path has an encoded slash'
  if (raw) return code > DEL ? 'path has a raw non-ASCII character' : null
  if (code === SLASH) return 'path has an encoded slash'
  // %25: decoded once it is a `%` that a second decoder would read as an escape.
  if (code === PERCENT) return 'path is percent-encoded twice'
  return null
}

/** The byte `XX` at `at` stands for, or -1. Never reads past the query's `?`, which is not a hex digit. */
function hexByte(text: string, at: number): number {
  const high = hexDigit(text.charCodeAt(at))
  const low = hexDigit(text.charCodeAt(at + 1))
  return high < 0 || low < 0 ? -1 : high * 16 + low
}

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30
  const lower = code | 0x20
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10
  return -1
}
