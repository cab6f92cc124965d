/** recordingPathOf: the recording an nginx `X-Original-URI` names, or why it is refused (README "Recordings: check-media-access"). */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { RECORDINGS_URL_PREFIX as RECORDINGS_PREFIX } from '../../src/history/recordings'
import { recordingPathOf, recordingPathRefusal } from '../../src/media/recording-path'

const P = RECORDINGS_PREFIX

describe('recordingPathOf maps a recording URI to its path under the monitor directory', () => {
  for (const [uri, relative] of [
    [`${P}2026/11/23/14/mikopbx-1732370000.12_Ab3dEf.mp3`, '2026/11/23/14/mikopbx-1732370000.12_Ab3dEf.mp3'],
    [`${P}2026/11/23/14/call.mp3?authorization=a.b.c&x=..%2f`, '2026/11/23/14/call.mp3'],
    [`${P}call.mp3?`, 'call.mp3'],
    [`${P}2026/11/23/14/call%20201.mp3`, '2026/11/23/14/call 201.mp3'],
    [`${P}2026/%31%31/call.mp3`, '2026/11/call.mp3'],
    [`${P}%D0%B7%D0%B2%D0%BE%D0%BD%D0%BE%D0%BA.mp3`, 'звонок.mp3'],
    [`${P}.hidden.mp3`, '.hidden.mp3'],
    [`${P}a..b/..c/d../...`, 'a..b/..c/d../...'],
    [`${P}2026/call.mp3%3Fnot-a-query`, '2026/call.mp3?not-a-query'],
  ] as const) {
    test(`${uri} → ${relative}`, () => {
      expect(recordingPathOf(uri)).toEqual({ ok: true, relative })
      expect(recordingPathRefusal(uri)).toBeNull()
    })
  }
})

const TRICKS: ReadonlyArray<readonly [string, string, string]> = [
  ['a dot-dot segment', `${P}2026/../call.mp3`, 'path has a dot segment'],
  ['a dot-dot segment at the end', `${P}2026/..`, 'path has a dot segment'],
  ['a dot-dot segment before the query', `${P}..?token=x`, 'path has a dot segment'],
  ['a dot segment', `${P}2026/./call.mp3`, 'path has a dot segment'],
  ['%2e%2e', `${P}%2e%2e/secret.mp3`, 'path has a dot segment'],
  ['.%2E', `${P}2026/.%2E/call.mp3`, 'path has a dot segment'],
  ['%2E.', `${P}2026/%2E./call.mp3`, 'path has a dot segment'],
  ['%2e', `${P}2026/%2e/call.mp3`, 'path has a dot segment'],
  ['%2f', `${P}..%2fsecret.mp3`, 'path has an encoded slash'],
  ['%2F', `${P}2026%2F11/call.mp3`, 'path has an encoded slash'],
  ['%5c', `${P}..%5csecret.mp3`, 'path has an encoded slash'],
  ['%5C', `${P}2026%5C11/call.mp3`, 'path has an encoded slash'],
  ['a backslash', `${P}2026\\..\\call.mp3`, 'path has a backslash'],
  ['a double slash', `${P}2026//call.mp3`, 'path has a double slash'],
  ['a double slash right after the prefix', `${P}/etc/passwd`, 'path has a double slash'],
  ['a raw NUL byte', `${P}call.mp3\0.txt`, 'path has a NUL byte'],
  ['%00', `${P}call.mp3%00.txt`, 'path has a NUL byte'],
  ['a raw tab', `${P}call\t.mp3`, 'path has a control character'],
  ['%0a', `${P}call%0a.mp3`, 'path has a control character'],
  ['%0D', `${P}call%0D.mp3`, 'path has a control character'],
  ['%7f', `${P}call%7f.mp3`, 'path has a control character'],
  ['a raw DEL', `${P}call\x7f.mp3`, 'path has a control character'],
  ['a raw non-ASCII character', `${P}call\xe9.mp3`, 'path has a raw non-ASCII character'],
  ['a lone %', `${P}call%.mp3`, 'path has bad percent-encoding'],
  ['% with one hex digit at the end', `${P}call.mp3%2`, 'path has bad percent-encoding'],
  ['% with one hex digit before the query', `${P}call.mp3%2?token=x`, 'path has bad percent-encoding'],
  ['%zz', `${P}call%zz.mp3`, 'path has bad percent-encoding'],
  ['an overlong UTF-8 dot', `${P}%c0%ae%c0%ae/secret.mp3`, 'path has bad percent-encoding'],
  ['an overlong UTF-8 slash', `${P}..%c0%afsecret.mp3`, 'path has bad percent-encoding'],
  ['%25 (double encoding)', `${P}%252e%252e/secret.mp3`, 'path is percent-encoded twice'],
  ['a trailing slash', `${P}2026/11/`, 'path names no file'],
  ['the prefix alone', P, 'path names no file'],
  ['the prefix alone with a query', `${P}?token=x`, 'path names no file'],
  ['the prefix without its slash', '/pbxcore/softphone/recordings', 'path outside the recordings location'],
  ['another location', '/pbxcore/api/module-softphone-backend/v1/profile', 'path outside the recordings location'],
  ['an encoded prefix', '/pbxcore/softphone/recording%73/call.mp3', 'path outside the recordings location'],
  ['a prefix in another case', '/PBXCORE/softphone/recordings/call.mp3', 'path outside the recordings location'],
  ['a prefix reached by dot segments', '/pbxcore/x/../softphone/recordings/call.mp3', 'path outside the recordings location'],
  ['a prefix with a double slash', '/pbxcore//softphone/recordings/call.mp3', 'path outside the recordings location'],
  ['an absolute URL', 'http://pbx/pbxcore/softphone/recordings/call.mp3', 'path outside the recordings location'],
  ['an empty URI', '', 'path outside the recordings location'],
]

describe('recordingPathOf refuses every path trick', () => {
  for (const [name, uri, reason] of TRICKS) {
    test(name, () => {
      expect(recordingPathOf(uri)).toEqual({ ok: false, reason })
      expect(recordingPathRefusal(uri)).toBe(reason)
    })
  }
})

test('whatever it accepts is under the prefix with no dot segment, empty segment, backslash or control byte', () => {
  const pathChar = fc.constantFrom('a', '1', '.', '/', '\\', '%', '2', 'e', 'E', 'f', 'F', '5', 'c', '0', '?', '\0', '\n', '\xe9')
  fc.assert(
    fc.property(fc.array(pathChar, { maxLength: 24 }), (chars) => {
      const path = recordingPathOf(P + chars.join(''))
      expect(recordingPathRefusal(P + chars.join(''))).toBe(path.ok ? null : path.reason)
      if (!path.ok) return
      const segments = path.relative.split('/')
      expect(segments.filter((segment) => segment === '' || segment === '.' || segment === '..')).toEqual([])
      expect(path.relative).not.toMatch(/[\\\x00-\x1f\x7f]/)
    }),
    { seed: 20261130, numRuns: 2000 },
  )
})
