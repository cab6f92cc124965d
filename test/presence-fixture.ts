/**
 * Full presence snapshots (schema version 2) for the personalisation tests: 201 calls 202, 204 takes
 * a call from a trunk, a trunk call rings 201's mobile, 203 is on its -WS device with an outside
 * number, and the queue `sales` has 202 as its member. 203 is the bystander of the 201 → 202 call.
 */
import type { ActiveCall, ActiveCallsSnapshot, ChannelEntry, UsersStateSnapshot } from '../src/presence/snapshot'

export const INSTANCE_ID = '6f1c2d3e-4b5a-4c6d-8e7f-901234567890'
export const MOBILE_201 = '9001234567'

const leg = (peer: string, number: string, direction: 'incoming' | 'outgoing', linkedid: string, uniqueid: string, channelId: string): ChannelEntry => ({
  channel: peer,
  number,
  direction,
  linkedid,
  uniqueid,
  channelId,
  answerState: 'bridged',
  pickupAvailable: false,
})

export const CH_201 = leg('PJSIP/202-00000002', '202', 'outgoing', '1700000000.1', '1700000000.1', '00000001')
export const CH_202 = leg('PJSIP/201-00000001', '201', 'incoming', '1700000000.1', '1700000000.2', '00000002')
export const CH_204 = leg('PJSIP/trunk-00000004', '5551234', 'incoming', '1700000000.3', '1700000000.4', '00000003')
export const CH_203 = leg('PJSIP/trunk-0000000a', '5559876', 'outgoing', '1700000000.9', '1700000000.9', '0000000b')

export function usersState(sequence = 1): UsersStateSnapshot {
  return {
    schemaVersion: 2,
    instanceId: INSTANCE_ID,
    sequence,
    generatedAt: 1700000000.5,
    states: {
      '201': { name: 'Alice', state: 'Up', channels: { 'PJSIP/201-00000001': CH_201 } },
      '202': { name: 'Bob', state: 'Up', channels: { 'PJSIP/202-00000002': CH_202 } },
      '203': { name: 'Carol', state: 'Up', channels: { 'PJSIP/203-WS-0000000b': CH_203 } },
      '204': { name: 'Dave', state: 'Up', channels: { 'PJSIP/204-00000003': CH_204 } },
      '205': { name: 'Eve', state: 'Idle', channels: {} },
      sales: { name: 'Sales', state: 'Idle', channels: {}, isQueue: true, members: ['202'] },
    },
  }
}

const call = (linkedid: string, src: [string, string], dst: [string, string], legs: Array<[string, string]>): ActiveCall => ({
  start: 1700000000,
  answer: 1700000001,
  typeCall: 'inner',
  src_chan: src[0],
  src_num: src[1],
  dst_chan: dst[0],
  dst_num: dst[1],
  did: '',
  linkedid,
  calledChannels: legs.map(([channel, number]) => ({ channel, number })),
  bridgeChannels: [],
})

export const CALL_201_202 = call('1700000000.1', ['PJSIP/201-00000001', '201'], ['PJSIP/202-00000002', '202'], [['PJSIP/202-00000002', '202']])
export const CALL_TRUNK_204 = call('1700000000.3', ['PJSIP/trunk-00000004', '5551234'], ['PJSIP/204-00000003', '204'], [['PJSIP/204-00000003', '204']])
export const CALL_TO_MOBILE_201 = call('1700000000.5', ['PJSIP/trunk-00000005', '5550000'], ['PJSIP/trunk-00000006', MOBILE_201], [['PJSIP/trunk-00000006', MOBILE_201]])
export const CALL_203_WS = call('1700000000.9', ['PJSIP/203-WS-0000000b', '203'], ['PJSIP/trunk-0000000a', '5559876'], [['PJSIP/trunk-0000000a', '5559876']])

export function activeCalls(sequence = 2): ActiveCallsSnapshot {
  return {
    schemaVersion: 2,
    instanceId: INSTANCE_ID,
    sequence,
    generatedAt: 1700000000.5,
    calls: [CALL_201_202, CALL_TRUNK_204, CALL_TO_MOBILE_201, CALL_203_WS],
  }
}
