/**
 * What the replay transcripts (test/binary/presence-replay.test.ts) found in the call graph, pinned
 * at the graph's level: the number of parallel forks to one user, an Originate through a Local
 * pair, a blind transfer's transferee dialing on, and the answer time of a picked-up call.
 */
import { describe, expect, test } from 'bun:test'
import { CallGraph, type Channel, type ChannelSnapshot } from '../../src/pbx/call-graph'
import { buildActiveCalls } from '../../src/pbx/calls'
import { channelEntry } from '../../src/pbx/users-state'

const NAMES: Record<string, string> = { '233': 'Irina', '268': 'Pavel', '204': 'Marta' }
const nameOf = (ext: string): string | null => NAMES[ext] ?? null
const S = 1_795_435_200
const id = (n: number) => `mikopbx-${S}.${n}`

function add(graph: CallGraph, name: string, n: number, linked: number, state: string, extra: Partial<ChannelSnapshot> = {}, seconds = S): Channel {
  return graph.upsert({ uniqueid: id(n), name, linkedid: id(linked), state, callerNum: '<unknown>', connectedNum: '<unknown>', exten: 's', ...extra }, seconds)!
}

describe('the call graph on the replay scenarios', () => {
  test('two forks to one user’s devices: no single peer channel, but the number is that user’s (02-two-devices-268)', () => {
    const graph = new CallGraph(100)
    const caller = add(graph, 'PJSIP/233-000003e0', 1, 1, 'Ring', { exten: '268' })
    const desk = add(graph, 'PJSIP/268-000003e1', 2, 1, 'Ringing')
    const web = add(graph, 'PJSIP/268-WS-000003e2', 3, 1, 'Ringing')
    graph.dialBegin(caller, desk)
    graph.dialBegin(caller, web)
    expect(channelEntry(caller, graph, nameOf, '233')).toMatchObject({ channel: '', number: '268', answerState: 'dialing', direction: 'outgoing' })
  })

  test('an Originate through a Local pair: the call starts at the first phone, inner, with no DID (04-originate-through-local)', () => {
    const graph = new CallGraph(100)
    const one = add(graph, 'Local/233@internal-originate-00000012;1', 1, 1, 'Up', { exten: '233', callerNum: '268' })
    const two = add(graph, 'Local/233@internal-originate-00000012;2', 2, 1, 'Up', { exten: '233' })
    const irina = add(graph, 'PJSIP/233-00000013', 3, 1, 'Up')
    const pavel = add(graph, 'PJSIP/268-00000014', 4, 1, 'Ringing')
    graph.dialBegin(two, irina)
    graph.dialEnd(irina, 'ANSWER')
    graph.enterBridge(irina.uniqueid, 'b1', S + 4)
    graph.enterBridge(two.uniqueid, 'b1', S + 4)
    graph.dialBegin(one, pavel)
    expect(buildActiveCalls(graph, nameOf)).toEqual([
      expect.objectContaining({ typeCall: 'inner', did: '', src_chan: irina.name, src_num: '233', dst_chan: pavel.name, dst_num: '268', calledChannels: [expect.objectContaining({ channel: pavel.name })] }),
    ])
  })

  test('a blind transfer: the transferee, whose dialer hung up, dials on and is outgoing (05-blind-transfer)', () => {
    const graph = new CallGraph(100)
    const irina = add(graph, 'PJSIP/233-00000101', 1, 1, 'Up', { exten: '268' })
    const pavel = add(graph, 'PJSIP/268-00000102', 2, 1, 'Up')
    graph.dialBegin(irina, pavel)
    graph.dialEnd(pavel, 'ANSWER')
    expect(graph.directionOf(pavel)).toBe('incoming')
    graph.remove(irina.uniqueid)
    const marta = add(graph, 'PJSIP/204-00000103', 3, 1, 'Ringing')
    graph.dialBegin(pavel, marta)
    expect([graph.directionOf(pavel), graph.directionOf(marta)]).toEqual(['outgoing', 'incoming'])
    graph.dialEnd(marta, 'ANSWER')
    expect(graph.directionOf(pavel)).toBe('outgoing')
  })

  test('a pickup: the picker went Up in its own call, so the merged call is answered when the bridge joins them (07-pickup-by-204)', () => {
    const graph = new CallGraph(100)
    const irina = add(graph, 'PJSIP/233-000003f1', 1, 1, 'Up', { exten: '268' })
    const picker = add(graph, 'PJSIP/204-000003f3', 3, 3, 'Up', { exten: '*8268' }, S + 5)
    graph.enterBridge(irina.uniqueid, 'p1', S + 5)
    graph.enterBridge(picker.uniqueid, 'p1', S + 5)
    expect(buildActiveCalls(graph, nameOf)).toEqual([expect.objectContaining({ linkedid: id(1), answer: S + 5, dst_chan: picker.name })])
  })
})
