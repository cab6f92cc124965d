/**
 * Plays an AMI replay transcript (test/fixtures/ami-replay/, syntax in its generate.ts) through the
 * simulator (test/ami-simulator.ts), step by step. The simulator's channel list follows what the
 * transcript says happened, lost events included, so CoreShowChannels after a reconnect or at a
 * reconciliation tells the truth.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AmiSimulator, SimChannel, SimQueue } from './ami-simulator'
import type { Fields } from './ami-transcripts'

export const TRANSCRIPTS_DIR = join(import.meta.dir, 'fixtures/ami-replay')

export type ReplayAction = { kind: 'event'; fields: Fields; lost: boolean } | { kind: 'restart' }

export interface ReplayStep {
  name: string
  actions: ReplayAction[]
}

const STEP = /^## step: (\S+)$/

/** The steps of a transcript; anything that is neither a comment, a directive nor a `Key: value` line is an error. */
export function parseTranscript(text: string): ReplayStep[] {
  if (!text.endsWith('\r\n') || /(^|[^\r])\n/.test(text)) throw new Error('a transcript has CRLF line ends only')
  const steps: ReplayStep[] = []
  let frame: Fields = []
  let lost = false
  const current = () => {
    const step = steps.at(-1)
    if (!step) throw new Error('a transcript event before its first step')
    return step
  }
  for (const [index, line] of text.slice(0, -2).split('\r\n').entries()) {
    if (frame.length > 0 && line === '') {
      current().actions.push({ kind: 'event', fields: frame, lost })
      frame = []
      lost = false
      continue
    }
    const step = STEP.exec(line)
    if (frame.length > 0 && (line.startsWith('#') || line === '')) throw new Error(`line ${index + 1}: a frame ends with an empty line`)
    if (step) steps.push({ name: step[1]!, actions: [] })
    else if (line === '## lost') lost = true
    else if (line === '## restart') current().actions.push({ kind: 'restart' })
    else if (line.startsWith('#')) continue
    else {
      const colon = line.indexOf(': ')
      if (colon <= 0) throw new Error(`line ${index + 1}: not a "Key: value" line: ${line}`)
      frame.push([line.slice(0, colon), line.slice(colon + 2)])
    }
  }
  if (frame.length > 0) throw new Error('the last frame has no empty line after it')
  return steps
}

export function loadTranscript(name: string): ReplayStep[] {
  return parseTranscript(readFileSync(join(TRANSCRIPTS_DIR, `${name}.ami`), 'utf8'))
}

const field = (fields: Fields, key: string): string => fields.find(([name]) => name === key)?.[1] ?? ''

/** Asterisk's channel states only move forward (Down → Ring/Ringing → Up): a late event never takes one back. */
const STATE_RANK: Record<SimChannel['state'], number> = { Down: 0, Ring: 1, Ringing: 1, Up: 2 }
const isSimState = (state: string): state is SimChannel['state'] => state in STATE_RANK

/**
 * What Asterisk would list in CoreShowChannels (and BridgeList, QueueStatus's entries) after the
 * events so far: the channels of every channel event (its `Dest` side too), their bridges, the
 * callers waiting in queues, and none that hung up.
 */
export class ChannelListModel {
  private readonly hungUp = new Set<string>()

  constructor(
    private readonly channels: SimChannel[],
    private readonly queues: SimQueue[] = [],
  ) {}

  apply(fields: Fields): void {
    const event = field(fields, 'Event')
    const uniqueid = field(fields, 'Uniqueid')
    if (event === 'Hangup' || event === 'QueueCallerLeave') this.leaveQueues(uniqueid)
    if (event === 'Hangup') return this.hangUp(uniqueid)
    if (!uniqueid || this.hungUp.has(uniqueid)) return
    const channel = this.upsert(fields, '')
    if (field(fields, 'DestUniqueid')) this.upsert(fields, 'Dest')
    if (!channel) return
    if (event === 'BridgeEnter') channel.bridgeId = field(fields, 'BridgeUniqueid')
    if (event === 'BridgeLeave' && channel.bridgeId === field(fields, 'BridgeUniqueid')) channel.bridgeId = ''
    if (event === 'DialBegin') this.dialing(channel, fields)
    if (event === 'QueueCallerJoin') this.joinQueue(channel, field(fields, 'Queue'))
  }

  private joinQueue(channel: SimChannel, name: string): void {
    Object.assign(channel, { application: 'Queue', applicationData: name })
    const queue = this.queues.find((known) => known.name === name)
    if (queue && !queue.entries.some((entry) => entry.uniqueid === channel.uniqueid)) {
      queue.entries.push({ channel: channel.channel, uniqueid: channel.uniqueid, callerNum: channel.callerNum, callerName: channel.callerName, wait: 0 })
    }
  }

  private leaveQueues(uniqueid: string): void {
    for (const queue of this.queues) {
      const index = queue.entries.findIndex((entry) => entry.uniqueid === uniqueid)
      if (index >= 0) queue.entries.splice(index, 1)
    }
  }

  private hangUp(uniqueid: string): void {
    this.hungUp.add(uniqueid)
    const index = this.channels.findIndex((channel) => channel.uniqueid === uniqueid)
    if (index >= 0) this.channels.splice(index, 1)
  }

  private dialing(source: SimChannel, fields: Fields): void {
    source.application = 'Dial'
    source.applicationData = `PJSIP/${field(fields, 'DialString')},,TtekKHhU`
    const dest = this.channels.find((channel) => channel.uniqueid === field(fields, 'DestUniqueid'))
    if (dest) Object.assign(dest, { application: 'AppDial', applicationData: '(Outgoing Line)' })
  }

  private upsert(fields: Fields, prefix: string): SimChannel | undefined {
    const get = (key: string) => field(fields, `${prefix}${key}`)
    const uniqueid = get('Uniqueid')
    const state = get('ChannelStateDesc')
    if (!uniqueid || this.hungUp.has(uniqueid) || !isSimState(state)) return undefined
    let channel = this.channels.find((known) => known.uniqueid === uniqueid)
    if (!channel) {
      channel = { channel: '', state, callerNum: '', callerName: '', connectedNum: '', connectedName: '', exten: '', uniqueid, linkedid: '', bridgeId: '', application: '', applicationData: '', duration: '00:00:01' }
      this.channels.push(channel)
    }
    if (STATE_RANK[state] >= STATE_RANK[channel.state]) channel.state = state
    Object.assign(channel, {
      channel: get('Channel'),
      callerNum: get('CallerIDNum'),
      callerName: get('CallerIDName'),
      connectedNum: get('ConnectedLineNum'),
      connectedName: get('ConnectedLineName'),
      exten: get('Exten'),
      linkedid: get('Linkedid'),
    })
    return channel
  }
}

export interface ReplayHooks {
  /** After a `## restart`: resolves once the binary has logged in again and loaded the channels. */
  reloaded(): Promise<void>
}

/** Plays the steps of one transcript, one at a time, through a simulator. */
export class ReplayPlayer {
  readonly model: ChannelListModel

  constructor(
    private readonly simulator: AmiSimulator,
    readonly steps: ReplayStep[],
  ) {
    this.model = new ChannelListModel(simulator.channels, simulator.queues)
  }

  step(name: string): ReplayStep {
    const step = this.steps.find((candidate) => candidate.name === name)
    if (!step) throw new Error(`no step ${name}`)
    return step
  }

  async play(step: ReplayStep, hooks: ReplayHooks): Promise<void> {
    for (const action of step.actions) {
      if (action.kind === 'restart') {
        await this.simulator.restart()
        await hooks.reloaded()
        continue
      }
      this.model.apply(action.fields)
      if (!action.lost) this.simulator.send(action.fields)
    }
  }
}
