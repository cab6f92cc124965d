import { describe, expect, test } from 'bun:test'
import { findBearerToken, queryOf } from '../../src/auth/credentials'
import { ConcurrencyLimiter, LimiterFullError } from '../../src/auth/limiter'

describe('findBearerToken', () => {
  const token = 'aaa.bbb.ccc'
  test('finds exactly one token in any one place', () => {
    expect(findBearerToken({ authorization: `Bearer ${token}` })).toEqual({ kind: 'token', token })
    expect(findBearerToken({ query: `authorization=${token}` })).toEqual({ kind: 'token', token })
    expect(findBearerToken({ query: `a=1&token=${token}` })).toEqual({ kind: 'token', token })
    expect(findBearerToken({ cookie: `x=1; access_token=${token}` })).toEqual({ kind: 'token', token })
    expect(findBearerToken({ query: 'a=1', cookie: 'x=1' })).toEqual({ kind: 'none' })
    expect(findBearerToken({})).toEqual({ kind: 'none' })
  })
  test('anything ambiguous or malformed is malformed', () => {
    for (const sources of [
      { authorization: '' },
      { authorization: 'Bearer' },
      { authorization: `Bearer  ${token}` },
      { authorization: `Bearer ${token} ` },
      { authorization: `Token ${token}` },
      { authorization: `Bearer ${token}`, cookie: `access_token=${token}` },
      { query: `token=${token}&authorization=${token}` },
      { query: `token=${token}&token=${token}` },
      { query: 'token=' },
      { cookie: `access_token=${token}; access_token=${token}` },
      { cookie: 'access_token=' },
    ]) {
      expect(findBearerToken(sources)).toEqual({ kind: 'malformed' })
    }
  })
  test('queryOf takes the query part of nginx\'s X-Original-URI', () => {
    expect(queryOf('/rec/a.mp3?token=x&y=1')).toBe('token=x&y=1')
    expect(queryOf('/rec/a.mp3')).toBeNull()
    expect(queryOf(null)).toBeNull()
  })
})

describe('ConcurrencyLimiter', () => {
  test('runs at most `limit` tasks at once, in arrival order, and survives failures', async () => {
    const limiter = new ConcurrencyLimiter(2)
    let running = 0
    let peak = 0
    const order: number[] = []
    const task = (id: number, fail = false) =>
      limiter.run(async () => {
        running++
        peak = Math.max(peak, running)
        await Bun.sleep(5)
        order.push(id)
        running--
        if (fail) throw new Error('boom')
        return id
      })
    const results = await Promise.allSettled([task(1), task(2, true), task(3), task(4), task(5)])
    expect(peak).toBe(2)
    expect(order).toEqual([1, 2, 3, 4, 5])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled'])
  })
})

describe('findBearerToken query parsing', () => {
  test('parameter names are matched as sent, never percent-decoded', () => {
    expect(findBearerToken({ query: '%61uthorization=aaa.bbb.ccc&xauthorization=1' })).toEqual({ kind: 'none' })
    expect(findBearerToken({ query: 'authorization=aaa%2Ebbb.ccc' })).toEqual({ kind: 'token', token: 'aaa.bbb.ccc' })
    expect(findBearerToken({ query: 'authorization' })).toEqual({ kind: 'malformed' })
    expect(findBearerToken({ query: 'authorization=%E0%A4%A' })).toEqual({ kind: 'malformed' })
  })
})

describe('ConcurrencyLimiter with a bounded queue', () => {
  test('refuses at once when the queue is full, and serves again once it drains', async () => {
    const limiter = new ConcurrencyLimiter(1, 2)
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const running = limiter.run(() => gate)
    const queued = [limiter.run(async () => 1), limiter.run(async () => 2)]
    await expect(limiter.run(async () => 3)).rejects.toThrow(LimiterFullError)
    release()
    await running
    expect(await Promise.all(queued)).toEqual([1, 2])
    expect(await limiter.run(async () => 4)).toBe(4)
  })
})
