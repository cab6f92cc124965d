/**
 * Revocations shared through Redis (README "Several nodes"): Redis is the record, every node's
 * in-memory mirror (tokens/revocations.ts) is what requests are checked against.
 *
 * Keys:
 *   softphone:revoked-ids        sorted set, token id (jti) → its exp (Unix seconds)
 *   softphone:revoked-sessions   sorted set, sid → until when it is remembered (current_exp + SESSION_REVOCATION_MARGIN)
 *   softphone:legacy-cutoffs     hash, username → every legacy token issued at or before it is revoked
 * Channel:
 *   softphone:revocations        JSON {ids: [[jti, exp]], sessions: [[sid, current_exp]], legacy: [[user, at]]}
 *
 * Every script that revokes writes first and PUBLISHes what it wrote in the same script, so an
 * announcement never names a revocation Redis doesn't hold. The revoking node notes the result
 * itself as soon as the script returns; the others note the announcement. A node that was
 * disconnected missed announcements: on every (re)connect it subscribes, then reloads everything
 * live, before its link reports up (store/redis/redis-link.ts runs the onUp hooks in that order).
 */
import type { Clock } from '../clock'
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import { SESSION_REVOCATION_MARGIN } from './revocations'

export const REVOKED_IDS_KEY = 'softphone:revoked-ids'
export const REVOKED_SESSIONS_KEY = 'softphone:revoked-sessions'
export const LEGACY_CUTOFFS_KEY = 'softphone:legacy-cutoffs'
export const REVOCATION_CHANNEL = 'softphone:revocations'

/**
 * Entries read per step of a reload: a million revoked ids take 500 steps, and requests are served
 * between them. On a loaded 2-core machine steps of 10 000 held the event loop up to 200 ms.
 */
const RELOAD_CHUNK = 2000

/** The names of the node's in-memory copy that this module writes to. */
export interface RevocationMirror {
  noteTokenIdRevoked(jti: string, expiresAt: number): void
  noteSessionRevoked(sid: string, refreshExpiresAt: number): void
  noteLegacyCutoff(username: string, at: number): void
  /**
   * Called before a reload with how many token ids Redis holds, so the copy can make room for them
   * in one step: growing a million-id table step by step stalled the event loop for seconds.
   */
  reserveTokenIds?(count: number): void
  /** False: the copy may be missing revocations; verification answers 503. */
  usable: () => boolean
}

/** What one script revoked, as announced on the channel. */
export interface RevocationNotice {
  ids: Array<[string, number]>
  sessions: Array<[string, number]>
  legacy: Array<[string, number]>
}

/**
 * Lua shared by every script that revokes (sessions/redis-session-records.ts): `notice` collects
 * what the script wrote; `announce()` publishes it, once, at the end.
 */
export const REVOKING_LUA = `
local MARGIN = ${SESSION_REVOCATION_MARGIN}
local notice = {ids = {}, sessions = {}, legacy = {}}
local function session_key(sid) return 'softphone:session:' .. sid end
local function revoke_id(jti, exp)
  table.insert(notice.ids, {jti, exp})
  return redis.call('ZADD', '${REVOKED_IDS_KEY}', 'GT', 'CH', exp, jti)
end
local function remember_revoked(sid, current_exp)
  redis.call('ZREM', 'softphone:sessions-by-exp', sid)
  redis.call('ZADD', '${REVOKED_SESSIONS_KEY}', current_exp + MARGIN, sid)
  table.insert(notice.sessions, {sid, current_exp})
end
local function revoke_session(sid, current_exp, now, reason)
  redis.call('HSET', session_key(sid), 'revoked_at', tostring(now), 'revoke_reason', reason)
  remember_revoked(sid, current_exp)
end
local function cut_off_legacy(username, at)
  local before = tonumber(redis.call('HGET', '${LEGACY_CUTOFFS_KEY}', username) or '0')
  table.insert(notice.legacy, {username, math.max(at, before)})
  if at <= before then return 0 end
  redis.call('HSET', '${LEGACY_CUTOFFS_KEY}', username, tostring(at))
  return 1
end
local function announce()
  if #notice.ids + #notice.sessions + #notice.legacy == 0 then return '' end
  local text = cjson.encode(notice)
  redis.call('PUBLISH', '${REVOCATION_CHANNEL}', text)
  return text
end
`

/** ARGV: how many token ids follow, then jti and exp pairs, then username and cut-off pairs. Returns {ids, cut-offs} changed. */
const IMPORT = new RedisScript(`${REVOKING_LUA}
local id_count, ids, cutoffs = tonumber(ARGV[1]), 0, 0
for i = 2, 1 + 2 * id_count, 2 do ids = ids + revoke_id(ARGV[i], tonumber(ARGV[i + 1])) end
for i = 2 + 2 * id_count, #ARGV, 2 do cutoffs = cutoffs + cut_off_legacy(ARGV[i], tonumber(ARGV[i + 1])) end
announce()
return {ids, cutoffs}
`)

/**
 * Writes revocations read elsewhere (`store migrate --to redis`), announced like any; an entry
 * Redis holds already, or a later one, is left as it is. Returns how many entries changed.
 */
export async function importRevocations(
  link: RedisLink,
  ids: ReadonlyArray<readonly [string, number]>,
  cutoffs: ReadonlyArray<readonly [string, number]>,
): Promise<{ ids: number; cutoffs: number }> {
  const args = [String(ids.length), ...ids.flat(), ...cutoffs.flat()].map(String)
  const [changedIds, changedCutoffs] = (await link.eval(IMPORT, [], args)) as [number, number]
  return { ids: Number(changedIds), cutoffs: Number(changedCutoffs) }
}

/** cjson writes an empty Lua table as `{}`. */
const listOf = <T>(value: unknown): T[] => (Array.isArray(value) ? (value as T[]) : [])

export function parseNotice(text: string): RevocationNotice {
  if (text === '') return { ids: [], sessions: [], legacy: [] }
  const parsed = JSON.parse(text) as Record<string, unknown>
  return { ids: listOf(parsed.ids), sessions: listOf(parsed.sessions), legacy: listOf(parsed.legacy) }
}

export function noteInMirror(mirror: RevocationMirror, notice: RevocationNotice): void {
  for (const [jti, exp] of notice.ids) mirror.noteTokenIdRevoked(jti, Number(exp))
  for (const [sid, exp] of notice.sessions) mirror.noteSessionRevoked(sid, Number(exp))
  for (const [username, at] of notice.legacy) mirror.noteLegacyCutoff(username, Number(at))
}

export interface RedisRevocationsOptions {
  link: RedisLink
  mirror: RevocationMirror
  clock: Clock
  /** redis_stale_seconds: how long verification may go on from the copy while Redis is unreachable. */
  staleSeconds: number
  log: (line: string) => void
}

export class RedisRevocations {
  private readonly link: RedisLink
  private readonly mirror: RevocationMirror
  private readonly clock: Clock
  /** Set once the first reload finished: an empty copy verifies nothing. */
  private loaded = false

  constructor(private readonly options: RedisRevocationsOptions) {
    this.link = options.link
    this.mirror = options.mirror
    this.clock = options.clock
    this.link.subscribe(REVOCATION_CHANNEL, (message) => this.noteAnnouncement(message))
    this.link.onUp(() => this.reload())
    this.mirror.usable = () => this.usable()
  }

  /** Notes what a script of this node revoked, without waiting for its own announcement. */
  note(notice: RevocationNotice): void {
    noteInMirror(this.mirror, notice)
  }

  /**
   * Fails closed (README "Several nodes", failure behaviour): revocations made elsewhere while
   * the link is down can't reach this copy, so it is trusted only for the stale window.
   */
  usable(): boolean {
    if (!this.loaded) return false
    const downSince = this.link.downSince()
    return downSince === null || this.clock.now() - downSince < this.options.staleSeconds * 1000
  }

  /** Forgets token ids past their expiry; session revocations go with their sessions (redis-session-records.ts). */
  async purgeExpired(now: number): Promise<number> {
    return Number(await this.link.send('ZREMRANGEBYSCORE', [REVOKED_IDS_KEY, '-inf', String(now)]))
  }

  /** Everything live, in steps: between them the event loop serves requests from the copy as it was. */
  async reload(): Promise<void> {
    const now = Math.floor(this.clock.now() / 1000)
    let ids = 0
    this.mirror.reserveTokenIds?.(Number(await this.link.send('ZCARD', [REVOKED_IDS_KEY])))
    await this.scan('ZSCAN', REVOKED_IDS_KEY, (jti, exp) => {
      if (exp <= now) return
      this.mirror.noteTokenIdRevoked(jti, exp)
      ids++
    })
    await this.scan('ZSCAN', REVOKED_SESSIONS_KEY, (sid, until) => {
      if (until > now) this.mirror.noteSessionRevoked(sid, until - SESSION_REVOCATION_MARGIN)
    })
    await this.scan('HSCAN', LEGACY_CUTOFFS_KEY, (username, at) => this.mirror.noteLegacyCutoff(username, at))
    this.loaded = true
    this.options.log(`redis: revocations reloaded (${ids} token ids)`)
  }

  /** ZSCAN/HSCAN to the end; an entry may come twice, which noting twice doesn't mind. */
  private async scan(command: 'ZSCAN' | 'HSCAN', key: string, each: (member: string, value: number) => void): Promise<void> {
    let cursor = '0'
    do {
      const [next, flat] = (await this.link.send(command, [key, cursor, 'COUNT', String(RELOAD_CHUNK)])) as [string, string[]]
      for (let i = 0; i < flat.length; i += 2) each(flat[i]!, Number(flat[i + 1]))
      cursor = String(next)
    } while (cursor !== '0')
  }

  private noteAnnouncement(message: string): void {
    try {
      noteInMirror(this.mirror, parseNotice(message))
    } catch (error) {
      this.options.log(`redis: unreadable revocation announcement ignored (${(error as Error).message})`)
    }
  }
}
