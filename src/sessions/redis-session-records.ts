/**
 * Sessions in Redis, shared by every node (README "Several nodes", "Sessions and refresh rotation").
 *
 * Keys:
 *   softphone:session:<sid>              hash, the SessionRow's fields (a null field is absent); expires
 *                                        SESSION_REVOCATION_MARGIN after current_exp, moved on every rotation
 *   softphone:user-sessions:<username>   set of the user's sids; expires with the last of them
 *   softphone:sessions-by-exp            sorted set, sid → current_exp, of sessions not revoked (countActive, purge)
 * and the revocation keys of tokens/redis-revocations.ts.
 *
 * Every method is one Lua script, so each is atomic across nodes: `refresh` is the compare-and-swap
 * that decideRefresh (session-records.ts) describes, and the two must agree
 * (test/session-records-cases.ts runs the same cases against SQLite and Redis).
 *
 * Durability: a script's writes are acknowledged once they are in Redis's memory and its AOF
 * buffer; with `appendfsync everysec` a crash of the Redis host loses at most the last second or
 * so of them, with `appendfsync always` none. WAIT is no help without replicas, and WAITAOF needs
 * Redis 7.2. A login lost that way only fails its next refresh, as with SQLite's group commit.
 * TTLs are computed from the caller's `now`, not Redis's clock, so both agree on what has expired.
 */
import { RedisScript, type RedisLink } from '../store/redis/redis-link'
import { parseNotice, REVOKED_SESSIONS_KEY, REVOKING_LUA, type RedisRevocations } from '../tokens/redis-revocations'
import type { EndedSession, LogoutRequest, NewSession, RefreshDecision, RefreshRequest, SessionRecords, SessionRow } from './session-records'

export const SESSIONS_BY_EXP_KEY = 'softphone:sessions-by-exp'
export const sessionKey = (sid: string) => `softphone:session:${sid}`
export const userSessionsKey = (username: string) => `softphone:user-sessions:${username}`

/** Sessions forgotten per purge step, so no step holds Redis for long. */
const PURGE_CHUNK = 500

/** Helpers every script below shares: reading a row, the TTLs, creating, touching. */
const SESSION_LUA = `${REVOKING_LUA}
local function user_key(username) return 'softphone:user-sessions:' .. username end
local function flat_row(sid)
  return redis.call('HGETALL', session_key(sid))
end
local function row_of(flat)
  if #flat == 0 then return nil end
  local row = {}
  for i = 1, #flat, 2 do row[flat[i]] = flat[i + 1] end
  return row
end
local function read_row(sid)
  return row_of(flat_row(sid))
end
local function keep_until(sid, username, current_exp, now)
  local ttl = math.max(current_exp + MARGIN - now, 1)
  redis.call('EXPIRE', session_key(sid), ttl)
  local user_sessions = user_key(username)
  if redis.call('TTL', user_sessions) < ttl then redis.call('EXPIRE', user_sessions, ttl) end
end
local function create(sid, username, current_exp, now, fields)
  redis.call('HSET', session_key(sid), unpack(fields))
  redis.call('SADD', user_key(username), sid)
  redis.call('ZADD', '${SESSIONS_BY_EXP_KEY}', current_exp, sid)
  keep_until(sid, username, current_exp, now)
end
local function touch(sid, now, ip, ua)
  redis.call('HSET', session_key(sid), 'last_used_at', tostring(now), 'ip', ip, 'user_agent', ua)
end
local function is_active(row, now)
  return row and not row.revoked_at and tonumber(row.current_exp) > now
end
`

/** ARGV: sid, username, current_exp, now, then the row's fields and values. */
const CREATE = new RedisScript(`${SESSION_LUA}
create(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), {select(5, unpack(ARGV))})
return 1
`)

/**
 * decideRefresh, then the change it implies. ARGV: sid, username, presented hash, successor hash,
 * next iat, next exp, mode, now, ip, ua, and a legacy session's creation as a JSON array ('' if none).
 */
const REFRESH = new RedisScript(`${SESSION_LUA}
local sid, username, presented, successor = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local next_iat, next_exp, mode, now, ip, ua = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8]), ARGV[9], ARGV[10]
if ARGV[11] ~= '' and redis.call('EXISTS', session_key(sid)) == 0 then
  local legacy = cjson.decode(ARGV[11])
  create(sid, legacy[1], tonumber(legacy[2]), now, {select(3, unpack(legacy))})
end
local row = read_row(sid)
if not row or row.username ~= username then return {'unknown'} end
if row.revoked_at then return {'revoked'} end
if presented == row.current_hash then
  if mode == 'off' then
    touch(sid, now, ip, ua)
    return {'kept'}
  end
  redis.call('HSET', session_key(sid), 'previous_hash', row.current_hash, 'current_hash', successor,
    'current_iat', tostring(next_iat), 'current_exp', tostring(next_exp), 'last_used_at', tostring(now), 'ip', ip, 'user_agent', ua)
  redis.call('ZADD', '${SESSIONS_BY_EXP_KEY}', next_exp, sid)
  keep_until(sid, username, next_exp, now)
  return {'rotated'}
end
if mode == 'compatible' and presented == row.previous_hash and successor == row.current_hash then
  touch(sid, now, ip, ua)
  return {'repeated', tonumber(row.current_iat), tonumber(row.current_exp)}
end
revoke_session(sid, tonumber(row.current_exp), now, 'reuse')
announce()
return {'reuse', tonumber(row.current_exp)}
`)

/** ARGV: jti ('' if none), its exp, sid ('' if none), legacy user ('' if none), now. Returns the notice. */
const LOGOUT = new RedisScript(`${SESSION_LUA}
local jti, sid, legacy_user, now = ARGV[1], ARGV[3], ARGV[4], tonumber(ARGV[5])
if jti ~= '' then revoke_id(jti, tonumber(ARGV[2])) end
if sid ~= '' then
  local row = read_row(sid)
  if row and not row.revoked_at then revoke_session(sid, tonumber(row.current_exp), now, 'logout') end
end
if legacy_user ~= '' then cut_off_legacy(legacy_user, now) end
return announce()
`)

/** ARGV: username, sid, reason, now. Returns the notice. */
const END = new RedisScript(`${SESSION_LUA}
local username, sid, reason, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local row = read_row(sid)
if row and row.username == username and not row.revoked_at then revoke_session(sid, tonumber(row.current_exp), now, reason) end
return announce()
`)

/** ARGV: username, reason, now. Returns the notice. */
const END_ALL = new RedisScript(`${SESSION_LUA}
local username, reason, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
cut_off_legacy(username, now)
for _, sid in ipairs(redis.call('SMEMBERS', user_key(username))) do
  local row = read_row(sid)
  if not row then
    redis.call('SREM', user_key(username), sid)
  elseif is_active(row, now) then
    revoke_session(sid, tonumber(row.current_exp), now, reason)
  end
end
return announce()
`)

/** ARGV: sid. The row's fields and values, or an empty list. */
const GET = new RedisScript(`${SESSION_LUA}
return flat_row(ARGV[1])
`)

/** ARGV: username, now. One flat row per active session. */
const ACTIVE_FOR_USER = new RedisScript(`${SESSION_LUA}
local now, rows = tonumber(ARGV[2]), {}
for _, sid in ipairs(redis.call('SMEMBERS', user_key(ARGV[1]))) do
  local flat = flat_row(sid)
  if is_active(row_of(flat), now) then table.insert(rows, flat) end
end
return rows
`)

/** ARGV: now. Sessions not revoked are exactly the members of sessions-by-exp. */
const ACTIVE_USERNAMES = new RedisScript(`${SESSION_LUA}
local seen, names = {}, {}
for _, sid in ipairs(redis.call('ZRANGE', '${SESSIONS_BY_EXP_KEY}', '(' .. ARGV[1], '+inf', 'BYSCORE')) do
  local username = redis.call('HGET', session_key(sid), 'username')
  if username and not seen[username] then
    seen[username] = true
    table.insert(names, username)
  end
end
return names
`)

/**
 * One step of purging: sessions whose tokens can no longer be valid, live ones by current_exp and
 * revoked ones by the end of their remembrance (both current_exp + MARGIN). ARGV: now, chunk.
 * Returns {sessions deleted, entries looked at}.
 */
const PURGE_STEP = new RedisScript(`${SESSION_LUA}
local now, chunk = tonumber(ARGV[1]), tonumber(ARGV[2])
local deleted, seen = 0, 0
local function forget(sid)
  local username = redis.call('HGET', session_key(sid), 'username')
  if username then redis.call('SREM', user_key(username), sid) end
  deleted = deleted + redis.call('DEL', session_key(sid))
  seen = seen + 1
end
for _, sid in ipairs(redis.call('ZRANGE', '${SESSIONS_BY_EXP_KEY}', '-inf', now - MARGIN, 'BYSCORE', 'LIMIT', 0, chunk)) do
  forget(sid)
  redis.call('ZREM', '${SESSIONS_BY_EXP_KEY}', sid)
end
for _, sid in ipairs(redis.call('ZRANGE', '${REVOKED_SESSIONS_KEY}', '-inf', now, 'BYSCORE', 'LIMIT', 0, chunk)) do
  forget(sid)
  redis.call('ZREM', '${REVOKED_SESSIONS_KEY}', sid)
end
return {deleted, seen}
`)

/**
 * Sessions read elsewhere (`store migrate --to redis`). ARGV: now, then one JSON array per session:
 * [id, username, current_exp, revoked_at or 0, revoke_reason, field, value, ...]. A session Redis
 * holds already keeps its state, except that a revocation wins. Returns {created, revoked}.
 */
const IMPORT = new RedisScript(`${SESSION_LUA}
local now, created, revoked = tonumber(ARGV[1]), 0, 0
for i = 2, #ARGV do
  local s = cjson.decode(ARGV[i])
  local sid, username, current_exp, revoked_at = s[1], s[2], tonumber(s[3]), tonumber(s[4])
  local row = read_row(sid)
  if not row then
    create(sid, username, current_exp, now, {select(6, unpack(s))})
    if revoked_at > 0 then remember_revoked(sid, current_exp) end
    created = created + 1
  elseif revoked_at > 0 and not row.revoked_at then
    revoke_session(sid, tonumber(row.current_exp), revoked_at, s[5])
    revoked = revoked + 1
  end
end
announce()
return {created, revoked}
`)

const NUMBER_FIELDS = ['user_id', 'created_at', 'last_used_at', 'current_iat', 'current_exp', 'revoked_at'] as const

/** HGETALL's flat list back into a row; absent fields are the nulls. */
function rowOf(flat: unknown): SessionRow | null {
  const list = flat as string[]
  if (!Array.isArray(list) || list.length === 0) return null
  const fields: Record<string, string> = {}
  for (let i = 0; i < list.length; i += 2) fields[list[i]!] = list[i + 1]!
  const row: Record<string, string | number | null> = { previous_hash: null, revoked_at: null, revoke_reason: null, ...fields }
  for (const name of NUMBER_FIELDS) if (row[name] !== null) row[name] = Number(row[name])
  return row as unknown as SessionRow
}

/** A session's fields as HSET arguments; a new one's last_used_at starts at created_at, as in SQLite. */
function fieldsOf(session: NewSession | SessionRow): string[] {
  const row: Record<string, string | number | null> = { last_used_at: session.created_at, ...session }
  return Object.entries(row).flatMap(([name, value]) => (value === null ? [] : [name, String(value)]))
}

/** Writes sessions read from another store; see IMPORT. */
export async function importSessions(link: RedisLink, rows: readonly SessionRow[], now: number): Promise<{ created: number; revoked: number }> {
  const encoded = rows.map((row) => JSON.stringify([row.id, row.username, row.current_exp, row.revoked_at ?? 0, row.revoke_reason ?? '', ...fieldsOf(row)]))
  const [created, revoked] = (await link.eval(IMPORT, [], [String(now), ...encoded])) as [number, number]
  return { created: Number(created), revoked: Number(revoked) }
}

const byCreation = (a: SessionRow, b: SessionRow) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

export class RedisSessionRecords implements SessionRecords {
  constructor(
    private readonly link: RedisLink,
    private readonly revocations: RedisRevocations,
  ) {}

  async create(session: NewSession): Promise<void> {
    await this.link.eval(CREATE, [], [session.id, session.username, String(session.current_exp), String(session.created_at), ...fieldsOf(session)])
  }

  async refresh(request: RefreshRequest): Promise<RefreshDecision> {
    const legacy = request.legacy ? JSON.stringify([request.legacy.username, request.legacy.current_exp, ...fieldsOf(request.legacy)]) : ''
    const args = [request.sid, request.username, request.presentedHash, request.successorHash, request.nextIat, request.nextExp, request.mode, request.now, request.ip, request.ua, legacy]
    const [kind, first, second] = (await this.link.eval(REFRESH, [], args.map(String))) as [RefreshDecision['kind'], number?, number?]
    switch (kind) {
      case 'repeated':
        return { kind, iat: Number(first), exp: Number(second) }
      case 'reuse':
        this.revocations.note({ ids: [], sessions: [[request.sid, Number(first)]], legacy: [] })
        return { kind, exp: Number(first) }
      default:
        return { kind }
    }
  }

  async logout(request: LogoutRequest): Promise<void> {
    const { tokenId, sid, legacyUser, now } = request
    await this.revoking(LOGOUT, [tokenId?.jti ?? '', String(tokenId?.expiresAt ?? 0), sid ?? '', legacyUser ?? '', String(now)])
  }

  async end(username: string, sid: string, reason: string, now: number): Promise<EndedSession | null> {
    const ended = await this.revoking(END, [username, sid, reason, String(now)])
    return ended[0] ?? null
  }

  async endAll(username: string, reason: string, now: number): Promise<EndedSession[]> {
    return this.revoking(END_ALL, [username, reason, String(now)])
  }

  async get(sid: string): Promise<SessionRow | null> {
    return rowOf(await this.link.eval(GET, [], [sid]))
  }

  async activeForUser(username: string, now: number): Promise<SessionRow[]> {
    const rows = (await this.link.eval(ACTIVE_FOR_USER, [], [username, String(now)])) as unknown[]
    return rows.map(rowOf).filter((row) => row !== null).sort(byCreation)
  }

  async activeUsernames(now: number): Promise<string[]> {
    return ((await this.link.eval(ACTIVE_USERNAMES, [], [String(now)])) as string[]).sort()
  }

  async countActive(now: number): Promise<number> {
    return Number(await this.link.send('ZCOUNT', [SESSIONS_BY_EXP_KEY, `(${now}`, '+inf']))
  }

  async purgeExpired(now: number): Promise<number> {
    let total = 0
    for (;;) {
      const [deleted, seen] = (await this.link.eval(PURGE_STEP, [], [String(now), String(PURGE_CHUNK)])) as [number, number]
      total += Number(deleted)
      if (Number(seen) < PURGE_CHUNK) return total
    }
  }

  /** Runs a script that revokes and returns its notice; notes it here at once, ahead of the announcement. */
  private async revoking(script: RedisScript, args: string[]): Promise<EndedSession[]> {
    const notice = parseNotice(String(await this.link.eval(script, [], args)))
    this.revocations.note(notice)
    return notice.sessions.map(([id, exp]) => ({ id, current_exp: Number(exp) }))
  }
}
