import { describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decideRefresh, type RefreshRequest, type SessionRow } from '../../src/sessions/session-records'
import { SqliteSessionRecords } from '../../src/sessions/sqlite-session-records'
import { openStore } from '../../src/store/database'
import { SqliteRevocations } from '../../src/tokens/sqlite-revocations'
import { ManualClock } from '../helpers'
import { sessionRecordsCases } from '../session-records-cases'

const row: SessionRow = {
  id: 's1',
  username: '201',
  role: 'user',
  user_id: 1,
  created_at: 1000,
  last_used_at: 1000,
  ip: '198.51.100.7',
  user_agent: 'app',
  current_hash: 'h-current',
  current_iat: 1100,
  current_exp: 9000,
  previous_hash: 'h-previous',
  revoked_at: null,
  revoke_reason: null,
}

const request = (change: Partial<RefreshRequest>): RefreshRequest => ({
  sid: 's1',
  username: '201',
  presentedHash: 'h-current',
  successorHash: 'h-next',
  nextIat: 1200,
  nextExp: 9100,
  mode: 'compatible',
  now: 1200,
  ip: '198.51.100.7',
  ua: 'app',
  ...change,
})

describe('decideRefresh, the rotation rule every store applies', () => {
  test('no session, or another user\'s, is unknown; a revoked one stays revoked', () => {
    expect(decideRefresh(null, request({}))).toEqual({ kind: 'unknown' })
    expect(decideRefresh(row, request({ username: '202' }))).toEqual({ kind: 'unknown' })
    expect(decideRefresh({ ...row, revoked_at: 1150 }, request({}))).toEqual({ kind: 'revoked' })
  })

  test('the current token rotates, or is kept with rotation off', () => {
    expect(decideRefresh(row, request({ mode: 'compatible' }))).toEqual({ kind: 'rotated' })
    expect(decideRefresh(row, request({ mode: 'strict' }))).toEqual({ kind: 'rotated' })
    expect(decideRefresh(row, request({ mode: 'off' }))).toEqual({ kind: 'kept' })
  })

  test('compatible: the predecessor of an unused successor gets that successor again, with its stored iat and exp', () => {
    const repeat = request({ presentedHash: 'h-previous', successorHash: 'h-current' })
    expect(decideRefresh(row, repeat)).toEqual({ kind: 'repeated', iat: 1100, exp: 9000 })
    // Once the successor was used, it is no longer current: the old token is reuse.
    expect(decideRefresh(row, { ...repeat, successorHash: 'h-other' })).toEqual({ kind: 'reuse', exp: 9000 })
  })

  test('strict and off: any other token is reuse, reported with the session\'s expiry for the revocation copy', () => {
    const repeat = request({ presentedHash: 'h-previous', successorHash: 'h-current' })
    expect(decideRefresh(row, { ...repeat, mode: 'strict' })).toEqual({ kind: 'reuse', exp: 9000 })
    expect(decideRefresh(row, { ...repeat, mode: 'off' })).toEqual({ kind: 'reuse', exp: 9000 })
    expect(decideRefresh(row, request({ presentedHash: 'h-ancient' }))).toEqual({ kind: 'reuse', exp: 9000 })
  })
})

// The same contract cases as the Redis records run (test/unit/redis-session-records.test.ts).
sessionRecordsCases('SqliteSessionRecords (contract)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'session-records-'))
  const db = openStore(join(dir, 'softphone.db'))
  const mirror = new SqliteRevocations(db, new ManualClock())
  return {
    records: new SqliteSessionRecords(db, mirror),
    mirror,
    close() {
      db.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})
