/**
 * The replay transcripts (test/fixtures/ami-replay/) and the player's channel list
 * (test/ami-replay.ts): what test/binary/presence-replay.test.ts relies on before any binary runs.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { isStrictChannelName } from '../../src/presence/snapshot'
import { ChannelListModel, loadTranscript, parseTranscript, TRANSCRIPTS_DIR, type ReplayStep } from '../ami-replay'
import type { SimChannel } from '../ami-simulator'
import { transcriptTexts } from '../fixtures/ami-replay/generate'

const TEXTS = transcriptTexts()
const NAMES = Object.keys(TEXTS)

const events = (steps: ReplayStep[]) => steps.flatMap((step) => step.actions.flatMap((action) => (action.kind === 'event' ? [action] : [])))
const field = (fields: Array<[string, string]>, key: string) => fields.find(([name]) => name === key)?.[1]

function playAll(steps: ReplayStep[], until?: string): SimChannel[] {
  const channels: SimChannel[] = []
  const model = new ChannelListModel(channels)
  for (const step of steps) {
    for (const action of step.actions) if (action.kind === 'event') model.apply(action.fields)
    if (step.name === until) break
  }
  return channels
}

describe('the replay transcripts', () => {
  test('the committed files are what generate.ts writes', () => {
    expect(NAMES.length).toBe(10)
    for (const name of NAMES) expect(readFileSync(join(TRANSCRIPTS_DIR, `${name}.ami`), 'utf8')).toBe(TEXTS[name]!)
  })

  test('each parses into named steps of AMI frames that start with Event, Privilege, Timestamp', () => {
    for (const name of NAMES) {
      const steps = loadTranscript(name)
      expect(steps.length).toBeGreaterThanOrEqual(2)
      for (const { fields } of events(steps)) expect(fields.slice(0, 3).map(([key]) => key)).toEqual(['Event', 'Privilege', 'Timestamp'])
    }
  })

  test('timestamps never go back, and every channel is named as Asterisk names them', () => {
    for (const name of NAMES) {
      const all = events(loadTranscript(name))
      const stamps = all.map(({ fields }) => Number(field(fields, 'Timestamp')))
      expect(stamps).toEqual([...stamps].sort((a, b) => a - b))
      for (const { fields } of all) {
        for (const [key, value] of fields) {
          // The one exception is real: a masqueraded channel hangs up as `<name><ZOMBIE>` (07-pickup-by-204).
          if (key.endsWith('Channel') && key !== 'LocalOneChannel' && key !== 'LocalTwoChannel') expect(isStrictChannelName(value) || value.endsWith('<ZOMBIE>')).toBe(true)
        }
      }
    }
  })

  test('bad syntax is refused: LF line ends, a frame before any step, a line without a colon', () => {
    expect(() => parseTranscript('## step: a\nEvent: X\n\n')).toThrow('CRLF')
    expect(() => parseTranscript('Event: X\r\n\r\n')).toThrow('before its first step')
    expect(() => parseTranscript('## step: a\r\nno colon here\r\n\r\n')).toThrow('not a "Key: value" line')
  })

  test('every call ends: after each transcript the channel list is empty, lost Hangups included', () => {
    for (const name of NAMES) expect({ name, channels: playAll(loadTranscript(name)) }).toEqual({ name, channels: [] })
  })

  test('the lost Hangups never reach the simulator, yet the list follows them', () => {
    const steps = loadTranscript('08-lost-hangup-reconciled')
    const lost = events(steps).filter((action) => action.lost)
    expect(lost.map(({ fields }) => field(fields, 'Event'))).toEqual(['Hangup', 'Hangup', 'ExtensionStatus', 'ExtensionStatus'])
  })

  test('mid-call the list holds both channels Up in one bridge, as CoreShowChannels shows them after a restart', () => {
    const channels = playAll(loadTranscript('09-ami-restart-mid-call'), 'talking')
    expect(channels.map(({ channel, state, bridgeId, linkedid }) => ({ channel, state, bridgeId, linkedid }))).toEqual([
      { channel: 'PJSIP/233-00000401', state: 'Up', bridgeId: '8d0f2a5e-3c41-4b7a-9e55-0c6d2b1f7a0c', linkedid: 'mikopbx-1795435740.9001' },
      { channel: 'PJSIP/268-00000402', state: 'Up', bridgeId: '8d0f2a5e-3c41-4b7a-9e55-0c6d2b1f7a0c', linkedid: 'mikopbx-1795435740.9001' },
    ])
    expect(loadTranscript('09-ami-restart-mid-call').find((step) => step.name === 'reconnected')!.actions).toEqual([{ kind: 'restart' }])
  })

  test('repeated and out-of-order events leave the same list as the clean call: no state goes back, no hung-up channel returns', () => {
    const strip = (channels: SimChannel[]) => channels.map(({ channel, state, bridgeId }) => ({ channel, state, bridged: bridgeId !== '' }))
    for (const step of ['ringing', 'answered', 'ended']) {
      expect(strip(playAll(loadTranscript('10-repeated-and-out-of-order'), step))).toEqual(strip(playAll(loadTranscript('01-basic-233-to-268'), step)))
    }
  })
})
