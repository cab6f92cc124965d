/**
 * The SessionRecords contract as cases any implementation must pass (SQLite and Redis): every
 * decision of decideRefresh in every rotation mode, with the stored state each implies, and the
 * other calls. `sessionRecordsCases(name, open)` registers them under describe(name).
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { hashTokenId, type NewSession, type RefreshDecision, type RefreshRequest, type RotationMode, type SessionRecords } from '../src/sessions/session-records'
import { SESSION_REVOCATION_MARGIN } from '../src/tokens/revocations'

/** What the cases read from the node's in-memory copy. */
export interface MirrorView {
  isSessionRevoked(sid: string): boolean
  isTokenIdRevoked(jti: string): boolean
  isLegacyTokenRevoked(username: string, issuedAt: number): boolean
}

export interface OpenedRecords {
  records: SessionRecords
  mirror: MirrorView
  close(): Promise<void> | void
}

/** Each call gives records over an empty store. */
export type OpenRecords = () => Promise<OpenedRecords>

/** ManualClock's start, in Unix seconds. */
export const T0 = Date.UTC(2026, 10, 23, 12, 0, 0) / 1000
export const REFRESH_TTL = 30 * 86_400

export function newSession(id: string, username = 'alice', at = T0, jti = `${id}-t0`): NewSession {
  return {
    id,
    username,
    role: 'user',
    user_id: 7,
    created_at: at,
    ip: '10.0.0.1',
    user_agent: 'app/1',
    current_hash: hashTokenId(jti),
    current_iat: at,
    current_exp: at + REFRESH_TTL,
    previous_hash: null,
  }
}

/** A refresh of token `t<n>` of session `sid` (the successor of t<n> is t<n+1>), at `now`. */
export function refreshOf(sid: string, n: number | 'x', mode: RotationMode, now: number, username = 'alice'): RefreshRequest {
  const next = n === 'x' ? 'y' : n + 1
  return {
    sid,
    username,
    presentedHash: hashTokenId(`${sid}-t${n}`),
    successorHash: hashTokenId(`${sid}-t${next}`),
    nextIat: now,
    nextExp: now + REFRESH_TTL,
    mode,
    now,
    ip: `10.0.1.${now - T0}`,
    ua: `app/${now - T0}`,
  }
}

interface DecisionCase {
  mode: RotationMode
  /** Refreshes that rotated before: t0 → t1 → ... */
  rotations: number
  /** Which token is presented: t<n>, or 'x', one never issued. */
  present: number | 'x'
  expect: RefreshDecision['kind']
}

const DECISIONS: DecisionCase[] = [
  { mode: 'compatible', rotations: 0, present: 0, expect: 'rotated' },
  { mode: 'compatible', rotations: 1, present: 1, expect: 'rotated' },
  { mode: 'compatible', rotations: 1, present: 0, expect: 'repeated' },
  { mode: 'compatible', rotations: 2, present: 1, expect: 'repeated' },
  { mode: 'compatible', rotations: 2, present: 0, expect: 'reuse' },
  { mode: 'compatible', rotations: 0, present: 'x', expect: 'reuse' },
  { mode: 'strict', rotations: 0, present: 0, expect: 'rotated' },
  { mode: 'strict', rotations: 1, present: 1, expect: 'rotated' },
  { mode: 'strict', rotations: 1, present: 0, expect: 'reuse' },
  { mode: 'strict', rotations: 0, present: 'x', expect: 'reuse' },
  { mode: 'off', rotations: 0, present: 0, expect: 'kept' },
  { mode: 'off', rotations: 0, present: 'x', expect: 'reuse' },
]

export function sessionRecordsCases(name: string, open: OpenRecords): void {
  describe(name, () => {
    let opened: OpenedRecords
    let records: SessionRecords
    beforeEach(async () => {
      opened = await open()
      records = opened.records
    })
    afterEach(async () => {
      await opened.close()
    })

    /** Creates session `s` at T0 and rotates it `rotations` times, at T0+1, T0+2, ... */
    async function sessionRotated(mode: RotationMode, rotations: number): Promise<void> {
      await records.create(newSession('s'))
      for (let n = 0; n < rotations; n++) expect(await records.refresh(refreshOf('s', n, mode, T0 + 1 + n))).toEqual({ kind: 'rotated' })
    }

    for (const c of DECISIONS) {
      test(`${c.mode}: t${c.present} after ${c.rotations} rotations is ${c.expect}, with the change it implies`, async () => {
        await sessionRotated(c.mode, c.rotations)
        const before = (await records.get('s'))!
        const now = T0 + 100
        const request = refreshOf('s', c.present, c.mode, now)
        const decision = await records.refresh(request)
        const after = (await records.get('s'))!
        expect(decision.kind).toBe(c.expect)
        const touched = { last_used_at: now, ip: request.ip, user_agent: request.ua }
        switch (decision.kind) {
          case 'rotated':
            expect(after).toEqual({ ...before, ...touched, previous_hash: request.presentedHash, current_hash: request.successorHash, current_iat: now, current_exp: now + REFRESH_TTL })
            break
          case 'kept':
            expect(after).toEqual({ ...before, ...touched })
            break
          case 'repeated':
            expect(decision).toEqual({ kind: 'repeated', iat: before.current_iat, exp: before.current_exp })
            expect(after).toEqual({ ...before, ...touched })
            break
          case 'reuse':
            expect(decision).toEqual({ kind: 'reuse', exp: before.current_exp })
            expect(after).toEqual({ ...before, revoked_at: now, revoke_reason: 'reuse' })
            expect(opened.mirror.isSessionRevoked('s')).toBe(true)
            break
        }
        if (decision.kind !== 'reuse') expect(opened.mirror.isSessionRevoked('s')).toBe(false)
      })
    }

    for (const mode of ['compatible', 'strict', 'off'] as const) {
      test(`${mode}: a revoked session is revoked for every token, and changes nothing`, async () => {
        await sessionRotated(mode, 0)
        expect((await records.refresh(refreshOf('s', 'x', mode, T0 + 5))).kind).toBe('reuse')
        const revoked = await records.get('s')
        expect(await records.refresh(refreshOf('s', 0, mode, T0 + 6))).toEqual({ kind: 'revoked' })
        expect(await records.get('s')).toEqual(revoked)
      })

      test(`${mode}: a missing session or another user's is unknown, and nothing is created`, async () => {
        await sessionRotated(mode, 0)
        expect(await records.refresh(refreshOf('nope', 0, mode, T0 + 5))).toEqual({ kind: 'unknown' })
        expect(await records.get('nope')).toBeNull()
        const before = await records.get('s')
        expect(await records.refresh(refreshOf('s', 0, mode, T0 + 5, 'mallory'))).toEqual({ kind: 'unknown' })
        expect(await records.get('s')).toEqual(before)
      })

      test(`${mode}: a legacy token seen first creates its session, then is decided like any`, async () => {
        const now = T0 + 10
        const legacy = { ...newSession('L', 'alice', now), current_hash: hashTokenId('L-t0') }
        const decision = await records.refresh({ ...refreshOf('L', 0, mode, now), legacy })
        expect(decision.kind).toBe(mode === 'off' ? 'kept' : 'rotated')
        const row = (await records.get('L'))!
        expect(row.username).toBe('alice')
        expect(row.created_at).toBe(now)
        expect(row.current_hash).toBe(mode === 'off' ? hashTokenId('L-t0') : hashTokenId('L-t1'))
        // Seen again: the stored session decides, the legacy creation is ignored.
        const again = await records.refresh({ ...refreshOf('L', 0, mode, now + 1), legacy })
        expect(again.kind).toBe(({ compatible: 'repeated', strict: 'reuse', off: 'kept' } as const)[mode])
      })
    }

    test('20 refreshes of one token at once: one rotates; compatible repeats to the rest', async () => {
      await sessionRotated('compatible', 0)
      const decisions = await Promise.all(Array.from({ length: 20 }, (_, i) => records.refresh(refreshOf('s', 0, 'compatible', T0 + 1 + (i % 2)))))
      expect(decisions.filter((d) => d.kind === 'rotated')).toHaveLength(1)
      expect(decisions.filter((d) => d.kind === 'repeated')).toHaveLength(19)
    })

    test('create then get returns the row as stored, last used at its creation', async () => {
      const session = newSession('s')
      await records.create(session)
      expect(await records.get('s')).toEqual({ ...session, last_used_at: T0, revoked_at: null, revoke_reason: null })
    })

    test('logout revokes the token id, the session and, for a legacy token, the user\'s cut-off', async () => {
      await records.create(newSession('s'))
      await records.logout({ tokenId: { jti: 'access-1', expiresAt: T0 + 900 }, sid: 's', now: T0 + 5 })
      expect(await records.get('s')).toMatchObject({ revoked_at: T0 + 5, revoke_reason: 'logout' })
      expect(opened.mirror.isTokenIdRevoked('access-1')).toBe(true)
      expect(opened.mirror.isSessionRevoked('s')).toBe(true)
      await records.logout({ legacyUser: 'bob', now: T0 + 6 })
      expect(opened.mirror.isLegacyTokenRevoked('bob', T0 + 6)).toBe(true)
      expect(opened.mirror.isLegacyTokenRevoked('bob', T0 + 7)).toBe(false)
    })

    test("end revokes one of the user's sessions; someone else's sid or an ended one gives null", async () => {
      await records.create(newSession('a1'))
      await records.create(newSession('b1', 'bob'))
      expect(await records.end('alice', 'b1', 'admin', T0 + 5)).toBeNull()
      expect((await records.get('b1'))!.revoked_at).toBeNull()
      expect(await records.end('alice', 'a1', 'admin', T0 + 5)).toEqual({ id: 'a1', current_exp: T0 + REFRESH_TTL })
      expect(await records.get('a1')).toMatchObject({ revoked_at: T0 + 5, revoke_reason: 'admin' })
      expect(opened.mirror.isSessionRevoked('a1')).toBe(true)
      expect(await records.end('alice', 'a1', 'admin', T0 + 6)).toBeNull()
      expect(await records.end('alice', 'missing', 'admin', T0 + 6)).toBeNull()
    })

    test('endAll ends every active session of the user only, and cuts off its legacy tokens', async () => {
      await records.create(newSession('a1'))
      await records.create(newSession('a2', 'alice', T0 + 1))
      await records.create(newSession('b1', 'bob'))
      await records.end('alice', 'a2', 'logout', T0 + 2)
      const ended = await records.endAll('alice', 'logout-all', T0 + 3)
      expect(ended).toEqual([{ id: 'a1', current_exp: T0 + REFRESH_TTL }])
      expect(await records.get('a1')).toMatchObject({ revoked_at: T0 + 3, revoke_reason: 'logout-all' })
      expect(await records.get('a2')).toMatchObject({ revoked_at: T0 + 2, revoke_reason: 'logout' })
      expect((await records.get('b1'))!.revoked_at).toBeNull()
      expect(opened.mirror.isLegacyTokenRevoked('alice', T0 + 3)).toBe(true)
      expect(await records.endAll('alice', 'logout-all', T0 + 4)).toEqual([])
    })

    test('activeForUser, activeUsernames and countActive skip revoked and expired sessions', async () => {
      await records.create(newSession('a2', 'alice', T0 + 1))
      await records.create(newSession('a1'))
      await records.create(newSession('a3', 'alice', T0 + 2))
      await records.create(newSession('b1', 'bob', T0 - REFRESH_TTL))
      await records.create(newSession('c1', 'carol'))
      await records.end('alice', 'a3', 'admin', T0 + 3)
      const now = T0 + 4
      expect((await records.activeForUser('alice', now)).map((row) => row.id)).toEqual(['a1', 'a2'])
      expect(await records.activeForUser('bob', now)).toEqual([])
      expect(await records.activeUsernames(now)).toEqual(['alice', 'carol'])
      expect(await records.countActive(now)).toBe(3)
      expect(await records.countActive(T0 + REFRESH_TTL)).toBe(1)
    })

    test('purgeExpired forgets sessions, revoked or not, once no token of theirs can be valid', async () => {
      await records.create(newSession('old'))
      await records.create(newSession('old-revoked'))
      await records.create(newSession('new', 'alice', T0 + 1000))
      await records.end('alice', 'old-revoked', 'admin', T0 + 1)
      const margin = T0 + REFRESH_TTL + SESSION_REVOCATION_MARGIN
      expect(await records.purgeExpired(margin - 1)).toBe(0)
      expect(await records.purgeExpired(margin)).toBe(2)
      expect(await records.get('old')).toBeNull()
      expect(await records.get('old-revoked')).toBeNull()
      expect(await records.get('new')).not.toBeNull()
      expect(await records.purgeExpired(margin)).toBe(0)
    })
  })
}
