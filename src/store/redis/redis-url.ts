/**
 * `redis_url` (README "Configuration"): which Redis the node shares its state with, in one of three
 * spellings:
 *   redis://[user:pass@]host[:port][/db]      TCP
 *   rediss://[user:pass@]host[:port][/db]     TCP with TLS
 *   redis+unix://[user:pass@]/path/to/socket[?db=N]
 * Bun's RedisClient takes a password over a unix socket only as `redis+unix://:pass@localhost/path`
 * and ignores a DB number there, so the target's `url` never carries the DB: RedisLink selects it
 * itself on every connection. Errors and labels never contain the password.
 */

const DEFAULT_PORT = 6379
/** Redis keeps the DB index in a C int. */
const MAX_DB = 2 ** 31 - 1
const SCHEMES = ['redis:', 'rediss:', 'redis+unix:'] as const
const UNIX_FORM = /^redis\+unix:\/\/(?:([^@/]*)@)?(?:localhost)?(\/[^?#]*)(?:\?(.*))?$/
/** Socket paths are taken literally: nothing Bun would need escaped. */
const SOCKET_PATH = /^\/[A-Za-z0-9._~\/+-]+$/

export interface RedisTarget {
  /** What Bun's RedisClient connects to: credentials included, no DB number. */
  url: string
  /** The URL without the password, for logs, errors and `config check`. */
  label: string
  /** Selected by RedisLink after each connect; 0 is Redis's default. */
  db: number
  tls: boolean
}

export interface RedisUrlError {
  error: string
}

export function parseRedisUrl(text: string): RedisTarget | RedisUrlError {
  const scheme = SCHEMES.find((each) => text.startsWith(`${each}//`))
  if (!scheme) return { error: 'must start with redis://, rediss:// or redis+unix://' }
  return scheme === 'redis+unix:' ? parseUnixForm(text) : parseTcpForm(text, scheme)
}

export const isRedisUrlError = (parsed: RedisTarget | RedisUrlError): parsed is RedisUrlError => 'error' in parsed

function parseTcpForm(text: string, scheme: 'redis:' | 'rediss:'): RedisTarget | RedisUrlError {
  const authority = text.slice(scheme.length + 2).split(/[/?#]/, 1)[0] ?? ''
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1)
  const [, host, port] = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostPort) ?? []
  if (!host) return { error: 'must name a host' }
  if (port !== undefined && !isPort(port)) return { error: 'port must be a number from 1 to 65535' }
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return { error: 'is not a valid URL (a password with @, : or / must be percent-encoded)' }
  }
  if (url.search !== '' || url.hash !== '') return { error: 'must not have a query or fragment (the DB number goes in the path: /3)' }
  const db = parseDb(url.pathname.replace(/^\//, ''))
  if (typeof db === 'string') return { error: db }
  const credentials = credentialsOf(decode(url.username), decode(url.password))
  if (typeof credentials !== 'object') return { error: credentials }
  const server = `${url.hostname}:${url.port || DEFAULT_PORT}`
  return {
    url: `${scheme}//${credentials.forUrl}${server}`,
    label: `${scheme}//${credentials.forLabel}${server}${db ? `/${db}` : ''}`,
    db,
    tls: scheme === 'rediss:',
  }
}

function parseUnixForm(text: string): RedisTarget | RedisUrlError {
  const match = UNIX_FORM.exec(text)
  if (!match) return { error: 'must look like redis+unix:///path/to/socket, or redis+unix://:password@/path/to/socket?db=N' }
  const [, userinfo, path = '', query] = match
  if (!SOCKET_PATH.test(path) || path.endsWith('/')) return { error: 'socket path must be an absolute file path of letters, digits and . _ ~ / + -' }
  const db = parseUnixQuery(query)
  if (typeof db === 'string') return { error: db }
  const colon = userinfo?.indexOf(':') ?? -1
  const username = userinfo === undefined ? '' : decode(colon < 0 ? userinfo : userinfo.slice(0, colon))
  const password = colon < 0 ? '' : decode(userinfo!.slice(colon + 1))
  const credentials = credentialsOf(username, password)
  if (typeof credentials !== 'object') return { error: credentials }
  return {
    // Bun reads the credentials only with a host in front of the path.
    url: credentials.forUrl ? `redis+unix://${credentials.forUrl}localhost${path}` : `redis+unix://${path}`,
    label: `redis+unix://${credentials.forLabel}${path}${db ? `?db=${db}` : ''}`,
    db,
    tls: false,
  }
}

function parseUnixQuery(query: string | undefined): number | string {
  if (query === undefined || query === '') return 0
  const fields = new URLSearchParams(query)
  if ([...fields.keys()].some((name) => name !== 'db')) return 'takes no query parameter but db'
  return parseDb(fields.get('db') ?? '')
}

function parseDb(text: string): number | string {
  if (text === '') return 0
  if (!/^\d{1,10}$/.test(text) || Number(text) > MAX_DB) return 'DB number must be a non-negative integer'
  return Number(text)
}

function isPort(text: string): boolean {
  return /^\d{1,5}$/.test(text) && Number(text) >= 1 && Number(text) <= 65535
}

/** Percent-decoded; a malformed escape is left as written rather than thrown. */
function decode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** `forUrl` holds the password; `forLabel` shows at most the user name (an ACL user, not a secret). */
function credentialsOf(username: string, password: string): { forUrl: string; forLabel: string } | string {
  if (/[\r\n]/.test(username + password)) return 'user name and password must not contain a line break'
  if (username === '' && password === '') return { forUrl: '', forLabel: '' }
  const user = encodeURIComponent(username)
  return {
    forUrl: `${user}${password === '' ? '' : `:${encodeURIComponent(password)}`}@`,
    forLabel: user === '' ? '' : `${user}@`,
  }
}
