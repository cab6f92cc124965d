/**
 * MikoPBX core-compatible routes outside the base path (README "MikoPBX core-compatible API"):
 * `/pbxcore/api/sip/getPeersStatuses`, `getSipPeer`, `getRegistry` in MikoPBX's envelope, for
 * tools written against a MikoPBX core where none answers; and its web admin's cookie login.
 * Open to local, unproxied requests as on MikoPBX; otherwise to an admin's access token or
 * session cookie. Everything is read from the state engine's cache; nothing waits on AMI.
 */
import { Elysia } from 'elysia'
import type { Clock } from '../clock'
import type { AccessGuard } from '../auth/access-guard'
import { credentialRequest } from '../auth/auth-plugin'
import { bearerChallenge } from '../auth/challenge'
import { LOGIN_LIMITS } from '../auth/auth-routes'
import type { LoginOutcome, PasswordLogin } from '../auth/password-login'
import type { ClientIpOf } from '../http/client-ip'
import type { PbxStateView } from '../pbx/pbx-state'
import { isAdmin } from '../pbx/pbx-routes'
import { endpointsOf, hasUri, mergedPeers, registryOf, type ProviderSource } from '../pbx/peer-state'
import { isLocalPublisher } from '../presence/publisher'
import type { SecurityLogSink } from '../security-log/security-log'
import { storeOutageOf } from '../store/database'
import type { AdminCredentials } from './admin-credentials'
import type { AdminSessions } from './admin-sessions'
import { coreAnswer, coreError, PROCESSORS, type CoreAnswer, type CoreFunction } from './envelope'
import { bodyFields, isForm, readBodyText } from './request-body'

const SIP = '/pbxcore/api/sip'
export const ADMIN_LOGIN_PATH = '/admin-cabinet/session/start'
export const SESSION_COOKIE = 'PHPSESSID'

/** An endpoint name as MikoPBX makes them (`201`, `SIP-1700000000`): never a path, never empty. */
const PEER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/
/** DeviceStates MikoPBX's getPeersStatuses reports as `OK`. */
const ONLINE_STATES = new Set(['Not in use', 'In use', 'Busy', 'Ringing'])
/** Added by Asterisk's AMI framing, not by the contact. */
const AMI_FRAMING = new Set(['Event', 'ActionID'])

export const CORE_MESSAGES = {
  unauthorized: 'Unauthorized',
  adminRequired: 'Administrator role required',
  spaceExpired: 'The account space has expired',
  emptyPeer: 'Empty peer value in POST/GET data',
  invalidPeer: 'Invalid peer value in POST/GET data',
  unavailable: 'Service busy, try again',
  loginFailed: 'Authorization failed, check the login and password',
  loginMissing: 'Login and password are required',
  loginThrottled: 'Too many login attempts, try again later',
  loginBusy: 'Too many logins in progress, try again',
} as const

export interface CoreApiDeps {
  clock: Clock
  guard: AccessGuard
  logins: PasswordLogin
  admins: AdminCredentials
  sessions: AdminSessions
  securityLog: SecurityLogSink
  clientIpOf: ClientIpOf
  peerOf: (request: Request) => string | undefined
  pbx: PbxStateView | undefined
  providers: ProviderSource | null
}

type Refusal = { status: 401 | 403; message: string }

export function coreApiRoutes(deps: CoreApiDeps) {
  const { clock, pbx, providers } = deps
  const admitted = admission(deps)
  const send = (set: { status?: number | string; headers: Record<string, string | number> }, status: number, answer: CoreAnswer) => {
    set.status = status
    set.headers['e-tag'] = answer.etag
    if (status === 401) set.headers['www-authenticate'] = bearerChallenge()
    return answer.body
  }
  const refuse = (fn: CoreFunction, refusal: Refusal, set: Parameters<typeof send>[0]) =>
    send(set, refusal.status, coreError(clock, fn, refusal.message))
  const ok = (fn: CoreFunction, data: unknown, set: Parameters<typeof send>[0]) =>
    send(set, 200, coreAnswer(clock, { result: true, data, messages: [], function: fn, processor: PROCESSORS[fn] }))

  return new Elysia({ name: 'core-api-routes' })
    .get(`${SIP}/getPeersStatuses`, ({ request, set }) => {
      const refusal = admitted(request)
      if (refusal) return refuse('getPeersStatuses', refusal, set)
      const peers = mergedPeers(pbx?.endpoints().values() ?? []).map((peer) => ({
        id: peer.name,
        state: peer.endpoints.some((endpoint) => ONLINE_STATES.has(endpoint.deviceState)) ? 'OK' : 'UNKNOWN',
      }))
      return ok('getPeersStatuses', peers, set)
    })
    .post(
      `${SIP}/getSipPeer`,
      ({ request, body, set }) => {
        const refusal = admitted(request)
        if (refusal) return refuse('getSipPeer', refusal, set)
        const parsed = bodyFields((body as RawBody | undefined)?.text, isForm(request))
        if (!parsed.ok) return send(set, 400, coreError(clock, 'getSipPeer', parsed.problem))
        const peer = peerName(parsed.fields['peer'])
        if (!peer.ok) return send(set, 400, coreError(clock, 'getSipPeer', peer.problem))
        return ok('getSipPeer', sipPeer(pbx, peer.name), set)
      },
      { parse: ({ request }) => readBodyText(request) },
    )
    .get(`${SIP}/getRegistry`, ({ request, set }) => {
      const refusal = admitted(request)
      if (refusal) return refuse('getRegistry', refusal, set)
      try {
        return ok('getRegistry', registryOf(pbx, providers?.list() ?? []), set)
      } catch (error) {
        if (!storeOutageOf(error)) throw error
        set.headers['retry-after'] = '1'
        return send(set, 503, coreError(clock, 'getRegistry', CORE_MESSAGES.unavailable))
      }
    })
    .post(ADMIN_LOGIN_PATH, ({ request, body, set }) => adminLogin(deps, { request, body: body as RawBody | undefined, set }), {
      parse: ({ request }) => readBodyText(request, LOGIN_LIMITS.bodyBytes),
    })
}

/** Null when the request may use the core API, else why not. */
function admission({ guard, sessions, clientIpOf, peerOf }: CoreApiDeps): (request: Request) => Refusal | null {
  return (request) => {
    // As on MikoPBX, the host itself needs no credentials; nginx's proxied requests carry X-Real-IP.
    if (isLocalPublisher(peerOf(request), request.headers)) return null
    const bearer = guard.checkOwnToken(credentialRequest(request, clientIpOf, null), 'access')
    if (bearer.ok) return isAdmin(bearer.principal.user) ? null : { status: 403, message: CORE_MESSAGES.adminRequired }
    if (bearer.failure === 'wrong_type') return { status: 403, message: CORE_MESSAGES.adminRequired }
    if (bearer.failure === 'space_expired') return { status: 403, message: CORE_MESSAGES.spaceExpired }
    if (bearer.failure !== 'missing') return { status: 401, message: CORE_MESSAGES.unauthorized }
    const sessionId = cookieValue(request.headers.get('cookie'), SESSION_COOKIE)
    if (sessionId && sessions.check(sessionId, clientIpOf(request).ip)) return null
    return { status: 401, message: CORE_MESSAGES.unauthorized }
  }
}

/** The one value of cookie `name`; null when absent, empty or sent twice. */
export function cookieValue(header: string | null, name: string): string | null {
  if (!header) return null
  const values = header
    .split(';')
    .map((pair) => pair.trim())
    .filter((pair) => pair.startsWith(`${name}=`))
    .map((pair) => pair.slice(name.length + 1))
  return values.length === 1 && values[0] !== '' ? values[0]! : null
}

function peerName(value: unknown): { ok: true; name: string } | { ok: false; problem: string } {
  // PHP took `{"peer": 201}` as well as `"201"`.
  const text = typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? String(value) : value
  if (text === undefined || text === null || text === '') return { ok: false, problem: CORE_MESSAGES.emptyPeer }
  if (typeof text !== 'string' || !PEER_NAME.test(text)) return { ok: false, problem: CORE_MESSAGES.invalidPeer }
  return { ok: true, name: text }
}

/**
 * MikoPBX's getPjSipPeer: the contacts of `<peer>-WS`, then of `<peer>`, flattened into one
 * object. The first contact with a URI gives its fields as they are; the other contacts' fields
 * get a suffix, `-WS<n>` or `-<n>` by their index; the WebRTC twin's fields are kept only if one
 * of its contacts has a URI. `state` is `OK` when a URI was found, else `UNKNOWN`.
 */
function sipPeer(pbx: PbxStateView | undefined, peer: string): Record<string, string> {
  let result: Record<string, string> = {}
  for (const endpoint of endpointsOf(pbx, peer)) {
    const twin = endpoint.name !== peer
    const flattened = flattenContacts(endpoint.contacts, twin ? 'WS' : '', twin ? false : 'URI' in result)
    if (!twin) Object.assign(result, flattened)
    // PHP keeps the twin's own `state` key there, so the final `state` takes its place.
    else if ('URI' in flattened) result = { ...flattened, state: 'OK' }
  }
  result['state'] = (result['URI'] ?? '') !== '' ? 'OK' : 'UNKNOWN'
  return result
}

function flattenContacts(contacts: readonly Record<string, string>[], prefix: string, generalFound: boolean): Record<string, string> {
  const result: Record<string, string> = {}
  let found = generalFound
  contacts.forEach((contact, index) => {
    let suffix = `-${prefix}${index}`
    if (!found && hasUri(contact)) {
      found = true
      suffix = ''
    }
    for (const [key, value] of Object.entries(contact)) if (!AMI_FRAMING.has(key)) result[`${key}${suffix}`] = value
  })
  return result
}

/** What the parse hooks leave: null for a body over the limit or not UTF-8; undefined without a body. */
type RawBody = { text: string | null }

interface LoginContext {
  request: Request
  body: RawBody | undefined
  set: { status?: number | string; headers: Record<string, string | number> }
}

/** MikoPBX's answer shapes: `message` is `[]` on success and `{"error":[…]}` on failure. */
const loginFailure = (message: string) => ({ success: false, reload: false, message: { error: [message] } })

async function adminLogin({ logins, admins, sessions, securityLog, clientIpOf }: CoreApiDeps, { request, body, set }: LoginContext) {
  const form = isForm(request) ? bodyFields(body?.text, true) : null
  const login = form?.ok ? form.fields['login'] : undefined
  const password = form?.ok ? form.fields['password'] : undefined
  if (typeof login !== 'string' || typeof password !== 'string' || login === '' || password === '') {
    set.status = 400
    return loginFailure(CORE_MESSAGES.loginMissing)
  }
  if (login.length > LOGIN_LIMITS.usernameChars || Buffer.byteLength(password) > LOGIN_LIMITS.passwordBytes) {
    set.status = 400
    return loginFailure(CORE_MESSAGES.loginFailed)
  }
  const from = { ...clientIpOf(request), ua: (request.headers.get('user-agent') ?? '').slice(0, 200) }
  const context = { user: login, ...from, method: 'admin_password' as const }
  let outcome: LoginOutcome<string>
  try {
    outcome = await logins.attemptWith(login, password, from.ip, (name, secret) => admins.verify(name, secret))
  } catch (error) {
    // MikoPBX's database locked by its writer, or missing for a moment: nothing was decided.
    if (!storeOutageOf(error)) throw error
    set.status = 503
    set.headers['retry-after'] = '1'
    return loginFailure(CORE_MESSAGES.unavailable)
  }
  if (outcome.ok) {
    const id = sessions.start(outcome.user, from.ip)
    securityLog.record({ event: 'AUTH_SUCCESS', ...context })
    // Not Secure: the appliance serves the core API over plain HTTP, as MikoPBX's own login did.
    set.headers['set-cookie'] = `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict`
    return { success: true, reload: 'index/index', message: [] }
  }
  switch (outcome.reason) {
    case 'throttled':
      securityLog.record({ event: 'LOGIN_THROTTLED', ...context, reason: `retry after ${outcome.retryAfter}s` })
      set.status = 429
      set.headers['retry-after'] = String(outcome.retryAfter)
      return loginFailure(CORE_MESSAGES.loginThrottled)
    case 'busy':
      set.status = 503
      set.headers['retry-after'] = '1'
      return loginFailure(CORE_MESSAGES.loginBusy)
    case 'invalid':
      securityLog.record({ event: 'AUTH_FAILED', ...context, reason: 'invalid admin credentials' })
      // MikoPBX's login page reads `success`; it answered a wrong password with 200.
      return loginFailure(CORE_MESSAGES.loginFailed)
  }
}
