import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { AmiParser } from '../../src/pbx/ami/ami-parser'
import type { FieldsMessage } from '../../src/pbx/ami/ami-message'

/** A recorded-style session: banner, login, a list with an event interleaved, ping, a call event, command output, an error. */
const SESSION = readFileSync('test/fixtures/ami/mixed-session.txt')

interface Parsed {
  banners: string[]
  messages: Array<ReadonlyArray<readonly [string, string]>>
  overflows: number
}

function parse(chunks: Iterable<Uint8Array | string>, maxFrameChars?: number): Parsed {
  const parsed: Parsed = { banners: [], messages: [], overflows: 0 }
  const parser = new AmiParser(
    {
      onBanner: (version) => parsed.banners.push(version),
      onMessage: (message: FieldsMessage) => parsed.messages.push(message.fields),
      onOverflow: () => parsed.overflows++,
    },
    maxFrameChars,
  )
  for (const chunk of chunks) parser.push(chunk)
  return parsed
}

describe('AMI parser', () => {
  const whole = parse([SESSION])

  test('reads the banner, then every message with keys in order and case', () => {
    expect(whole.banners).toEqual(['5.0.2'])
    expect(whole.messages.map((fields) => fields[0]!.join(': '))).toEqual([
      'Response: Success',
      'Event: FullyBooted',
      'Response: Success',
      'Event: EndpointList',
      'Event: DeviceStateChange',
      'Event: EndpointList',
      'Event: EndpointListComplete',
      'Response: Success',
      'Event: Newchannel',
      'Response: Follows',
      'Response: Error',
    ])
    expect(whole.messages[0]).toEqual([
      ['Response', 'Success'],
      ['ActionID', 'sb-1'],
      ['Message', 'Authentication accepted'],
    ])
  })

  test('keeps repeated keys, empty values and UTF-8 caller names', () => {
    const newchannel = whole.messages[8]!
    expect(newchannel.filter(([key]) => key === 'ChanVariable').map(([, value]) => value)).toEqual(['MIKO_CALLID=abc', '__pt1c_IS_DST=1', ''])
    expect(newchannel).toContainEqual(['AccountCode', ''])
    expect(newchannel).toContainEqual(['CallerIDName', 'Алиса'])
    expect(whole.messages[3]).toContainEqual(['OutboundAuths', ''])
  })

  test('keeps bare lines of Response: Follows as Output, without the end marker', () => {
    expect(whole.messages[9]).toEqual([
      ['Response', 'Follows'],
      ['ActionID', 'sb-4'],
      ['Privilege', 'Command'],
      ['Output', 'core show uptime'],
      ['Output', 'System uptime: 1 hour'],
    ])
  })

  test('split at every byte position gives the same messages', () => {
    for (let at = 1; at < SESSION.length; at++) {
      expect(parse([SESSION.subarray(0, at), SESSION.subarray(at)])).toEqual(whole)
    }
  })

  test('byte by byte gives the same messages', () => {
    const bytes = Array.from({ length: SESSION.length }, (_, index) => SESSION.subarray(index, index + 1))
    expect(parse(bytes)).toEqual(whole)
  })

  test('\\r\\n\\n ends a frame (asterisk#761), stray blank lines and bare LF are accepted', () => {
    const text = 'Asterisk Call Manager/9.0.0\r\n\r\n\r\nEvent: A\r\nX: 1\r\n\nEvent: B\nY: 2\n\n\r\n\nEvent: C\r\nZ:\r\n\r\n'
    expect(parse([text]).messages).toEqual([
      [['Event', 'A'], ['X', '1']],
      [['Event', 'B'], ['Y', '2']],
      [['Event', 'C'], ['Z', '']],
    ])
  })

  test('Output keys of Asterisk 14+ command replies, unknown keys and values with colons are kept', () => {
    const text = 'Response: Success\r\nMessage: Command output follows\r\nOutput: Name/username: 201\r\nOutput: \r\nX-Custom-Key: a:b\r\n\r\n'
    expect(parse([text]).messages).toEqual([
      [['Response', 'Success'], ['Message', 'Command output follows'], ['Output', 'Name/username: 201'], ['Output', ''], ['X-Custom-Key', 'a:b']],
    ])
  })

  test('garbage lines without a key are dropped; a blank-line-only garbage frame yields nothing', () => {
    const text = 'Asterisk Call Manager/5.0.2\r\n%%%garbage%%%\r\n\r\nEvent: Ok\r\nnot a key line\r\n\r\n'
    expect(parse([text]).messages).toEqual([[['Event', 'Ok']]])
  })

  test('a frame past the limit without a blank line is reported once and the rest is ignored', () => {
    const chunk = 'X'.repeat(1000)
    const parsed = parse(['Event: Big\r\nData: ', ...Array.from({ length: 5000 }, () => chunk), '\r\n\r\nEvent: After\r\n\r\n'], 1024 * 1024)
    expect(parsed.overflows).toBe(1)
    expect(parsed.messages).toEqual([])
  })

  test('many lines that never end a frame also overflow', () => {
    const parsed = parse(Array.from({ length: 2000 }, () => 'Key: value\r\n'), 10_000)
    expect(parsed.overflows).toBe(1)
  })

  test('frames under the limit never overflow however many there are', () => {
    const parsed = parse(Array.from({ length: 2000 }, (_, index) => `Event: E\r\nN: ${index}\r\n\r\n`), 100)
    expect(parsed.overflows).toBe(0)
    expect(parsed.messages).toHaveLength(2000)
  })
})
