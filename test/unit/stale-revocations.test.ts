/**
 * README "Several nodes": a node whose revocation copy may lack revocations made elsewhere (Redis
 * unreachable past redis_stale_seconds) fails closed. The copy's `usable` flag is what the Redis
 * store sets; here it is flipped by hand, so every transport's answer is checked on its own.
 */
import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

let h: Harness
let access: string
let refresh: string
beforeEach(async () => {
  h = await createHarness({ recordingsAccess: 'any' })
  await h.directory.add({ username: '201', password: 'secret-201', displayName: '', role: 'user', mobile: '' })
  ;({ access_token: access, refresh_token: refresh } = await h.login())
})
afterEach(() => h.close())

const stale = () => (h.services.revocations.usable = () => false)

describe('a stale revocation copy fails closed', () => {
  test('token routes answer 503 store_unavailable with Retry-After and no challenge, and echo no token', async () => {
    stale()
    for (const response of [
      await h.request(`${BASE}/profile`, { headers: bearer(access) }),
      await h.request(`${BASE}/auth/refresh`, { method: 'POST', headers: bearer(refresh) }),
      await h.request(`${BASE}/auth/logout`, { method: 'POST', headers: bearer(access) }),
    ]) {
      expect(response.status).toBe(503)
      expect(response.headers.get('retry-after')).toBe('5')
      expect(response.headers.get('www-authenticate')).toBeNull()
      const text = await response.text()
      expect(JSON.parse(text)).toMatchObject({ success: false, code: 'store_unavailable' })
      expect(text).not.toContain(access.split('.')[2]!)
    }
  })

  test('check-media-access denies with the 403 nginx understands', async () => {
    stale()
    const response = await h.request(`${BASE}/check-media-access`, { headers: bearer(access) })
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ success: false, code: 'access_check_unavailable' })
    expect(h.logLines().at(-1)).toMatchObject({ event: 'MEDIA_ACCESS_DENIED', reason: 'revocations not current' })
  })

  test('a long-poll answers 503; an open EventSource ends with reason "unavailable" at the next sweep', async () => {
    stale()
    const poll = await h.request(`${BASE}/sub/contacts?authorization=${access}`)
    expect(poll.status).toBe(503)
    expect(await poll.json()).toMatchObject({ code: 'store_unavailable' })

    h.services.revocations.usable = () => true
    const stream = await h.request(`${BASE}/sub/contacts?authorization=${access}`, { headers: { accept: 'text/event-stream' } })
    expect(stream.status).toBe(200)
    stale()
    h.hub.sweep()
    expect(await stream.text()).toEndWith('event: close\ndata: {"reason":"unavailable"}\n\n')
  })

  test('once usable again, the same token works: nothing was revoked meanwhile', async () => {
    stale()
    expect((await h.request(`${BASE}/profile`, { headers: bearer(access) })).status).toBe(503)
    h.services.revocations.usable = () => true
    expect((await h.request(`${BASE}/profile`, { headers: bearer(access) })).status).toBe(200)
  })
})
