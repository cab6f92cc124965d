/** The scope rules (README "Personalised presence") applied to full snapshots: who sees what. */
import { describe, expect, test } from 'bun:test'
import type { DirectoryUser, Role } from '../../src/directory/directory'
import { personalise } from '../../src/presence/personal/personalise'
import { scopeOf, scopeRules, type ScopeRules } from '../../src/presence/personal/scope'
import {
  activeCalls,
  CALL_201_202,
  CALL_203_WS,
  CALL_TO_MOBILE_201,
  CALL_TRUNK_204,
  CH_202,
  MOBILE_201,
  usersState,
} from '../presence-fixture'

const DEFAULT_RULES: ScopeRules = { states: 'all', calls: 'own', groups: [] }

const USERS: Record<string, DirectoryUser> = Object.fromEntries(
  ['201', '202', '203', '204', '205', '900'].map((username, id) => [
    username,
    { id, username, displayName: username, role: username === '900' ? 'admin' : 'user', mobile: username === '201' ? MOBILE_201 : '', disabled: false },
  ]),
)
const findUser = (username: string) => USERS[username] ?? null
const scope = (username: string, rules: ScopeRules = DEFAULT_RULES, role?: Role) => scopeOf({ ...USERS[username]!, ...(role && { role }) }, rules, findUser)

const statesFor = (username: string, rules?: ScopeRules) => personalise('users-state', usersState(), scope(username, rules)).states
const callsFor = (username: string, rules?: ScopeRules) => personalise('active-calls', activeCalls(), scope(username, rules)).calls

const NAME_AND_STATE = (name: string) => ({ name, state: 'Up' as const, channels: {} })

describe('scope rules from the configuration', () => {
  test('groups are extensions separated by spaces', () => {
    expect(scopeRules({ presence_scope_states: 'own', presence_scope_calls: 'all', presence_groups: [' 201  202 ', '203'] })).toEqual({
      states: 'own',
      calls: 'all',
      groups: [['201', '202'], ['203']],
    })
  })

  test('the scope key changes with the role, the groups and a group-mate\'s mobile, and only then', () => {
    const grouped: ScopeRules = { ...DEFAULT_RULES, groups: [['202', '201']] }
    expect(scope('202').key).toBe(scope('202').key)
    expect(scope('202', grouped).key).not.toBe(scope('202').key)
    expect(scope('202', grouped).key).toBe(scope('202', { ...DEFAULT_RULES, groups: [['201', '202'], ['205']] }).key)
    expect(scope('202', undefined, 'admin').key).not.toBe(scope('202').key)
    expect(scope('202', grouped)).toMatchObject({ mates: new Set(['201']), mobiles: new Set([MOBILE_201]) })
  })

  test('admins and superadmins have the admin scope', () => {
    expect(scope('900').admin).toBe(true)
    expect(scope('201', undefined, 'superadmin').admin).toBe(true)
  })
})

describe('users-state with the default scopes (states "all", calls "own")', () => {
  test('the caller: its own entry whole, its callee\'s channel in their call, everyone else\'s name and state; no queue', () => {
    const snapshot = usersState()
    expect(statesFor('201')).toEqual({
      '201': snapshot.states['201']!,
      '202': { name: 'Bob', state: 'Up', channels: { 'PJSIP/202-00000002': CH_202 } },
      '203': NAME_AND_STATE('Carol'),
      '204': NAME_AND_STATE('Dave'),
      '205': { name: 'Eve', state: 'Idle', channels: {} },
    })
  })

  test('the callee sees the caller\'s channel and the queue it is a member of', () => {
    const states = statesFor('202')
    expect(states['201']).toEqual(usersState().states['201']!)
    expect(states.sales).toEqual(usersState().states.sales!)
  })

  test('a bystander sees names and states only, and its own -WS channel', () => {
    const states = statesFor('203')
    expect(states['203']).toEqual(usersState().states['203']!)
    for (const extension of ['201', '202', '204']) expect(states[extension]!.channels).toEqual({})
    expect(states.sales).toBeUndefined()
  })

  test('an admin sees the full snapshot, queues included', () => {
    expect(personalise('users-state', usersState(), scope('900'))).toEqual(usersState())
  })

  test('the envelope is kept as is', () => {
    const { states: _states, ...envelope } = personalise('users-state', usersState(7), scope('203'))
    const { states: _all, ...expected } = usersState(7)
    expect(envelope).toEqual(expected)
  })
})

describe('users-state with other scopes', () => {
  test('states "own": only itself, its group-mates and its call partners', () => {
    const own: ScopeRules = { states: 'own', calls: 'own', groups: [['203', '205']] }
    expect(Object.keys(statesFor('201', own))).toEqual(['201', '202'])
    expect(Object.keys(statesFor('203', own))).toEqual(['203', '205'])
  })

  test('a group-mate\'s entry is whole whatever the scopes', () => {
    const grouped: ScopeRules = { states: 'own', calls: 'own', groups: [['203', '204']] }
    expect(statesFor('203', grouped)['204']).toEqual(usersState().states['204']!)
  })

  test('calls "all": every employee\'s channels, but queues still only for their members', () => {
    const states = statesFor('203', { states: 'all', calls: 'all', groups: [] })
    const { sales: _queue, ...employees } = usersState().states
    expect(states).toEqual(employees)
  })
})

describe('active-calls', () => {
  test('the caller sees its own call and the call to its mobile', () => {
    expect(callsFor('201')).toEqual([CALL_201_202, CALL_TO_MOBILE_201])
  })

  test('the callee sees their call; a -WS device counts as its user\'s', () => {
    expect(callsFor('202')).toEqual([CALL_201_202])
    expect(callsFor('203')).toEqual([CALL_203_WS])
  })

  test('a bystander with no call sees none; its group-mate\'s calls it does', () => {
    expect(callsFor('205')).toEqual([])
    expect(callsFor('205', { ...DEFAULT_RULES, groups: [['204', '205']] })).toEqual([CALL_TRUNK_204])
  })

  test('calls "all" and admins: every call', () => {
    expect(callsFor('205', { ...DEFAULT_RULES, calls: 'all' })).toEqual(activeCalls().calls)
    expect(callsFor('900')).toEqual(activeCalls().calls)
  })
})

describe('nothing beyond the schema goes out', () => {
  test('fields a producer added are dropped, for admins too', () => {
    const snapshot = usersState() as unknown as Record<string, unknown> & ReturnType<typeof usersState>
    Object.assign(snapshot, { token: 'eyJ.secret' })
    Object.assign(snapshot.states['201']!, { secret: 'sip-secret' })
    Object.assign(snapshot.states['201']!.channels['PJSIP/201-00000001']!, { ChanVariable: 'x' })
    const calls = activeCalls()
    Object.assign(calls.calls[0]!, { password: 'p' })
    Object.assign(calls.calls[0]!.calledChannels[0]!, { AccountCode: 'secret' })
    for (const user of ['201', '900']) {
      const texts = [JSON.stringify(personalise('users-state', snapshot, scope(user))), JSON.stringify(personalise('active-calls', calls, scope(user)))]
      for (const text of texts) for (const leaked of ['token', 'secret', 'ChanVariable', 'password', 'AccountCode']) expect(text).not.toContain(leaked)
    }
  })
})
