/**
 * Every configuration key, once: its valibot schema, how a string from the environment or a flag is
 * read, and its documentation (printed by `softphone-backend config --help`, copied into the README).
 */
import * as v from 'valibot'
import { DEFAULT_PASSWORD_MIN_LENGTH } from '../directory/embedded'
import { DEFAULT_DIGEST_REALM } from '../auth/digest'
import { extraChannelConflict } from '../presence/hub'
import { parseRange } from '../http/client-ip'
import { ROTATION_MODES } from '../sessions/sessions'
import { RECORDINGS_ACCESS_MODES } from '../media/recording-owners'
import { EXTERNAL_ALGORITHMS, hmacAlgorithmIn } from '../auth/external-jwt-keys'
import { isRedisUrlError, parseRedisUrl } from '../store/redis/redis-url'
import { STORE_KINDS } from '../store/state-store'

type Kind = 'string' | 'integer' | 'boolean' | 'list'

export interface KeySpec<S extends v.GenericSchema = v.GenericSchema> {
  schema: S
  kind: Kind
  doc: string
  /** Holds a credential: `config check` prints it redacted. */
  secret?: true
}

const key = <S extends v.GenericSchema>(kind: Kind, schema: S, doc: string, options: { secret?: true } = {}): KeySpec<S> => ({
  kind,
  schema,
  doc,
  ...options,
})

export const DIRECTORIES = ['embedded', 'mikopbx'] as const
export const AMI_MODES = ['on', 'off'] as const
export const DEFAULT_MIKOPBX_DB = '/cf/conf/mikopbx.db'
export const CORE_API_MODES = ['on', 'off'] as const
export const METRICS_MODES = ['on', 'off'] as const
export const ON_OFF = ['on', 'off'] as const
export const PRESENCE_SOURCES = ['ami', 'ingest', 'pub'] as const
export const PRESENCE_SCOPES = ['all', 'own'] as const

const AbsolutePath = v.pipe(v.string('must be a string'), v.startsWith('/', 'must be an absolute path'))
const Seconds = (min: number, max: number) =>
  v.pipe(
    v.number('must be an integer'),
    v.integer('must be an integer'),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  )
const AbsolutePathOrEmpty = v.pipe(v.string('must be a string'), v.check((path) => path === '' || path.startsWith('/'), 'must be an absolute path, or empty'))
const OneLine = v.pipe(v.string('must be a string'), v.regex(/^[^\r\n]*$/, 'must not contain a line break'))
const AddressOrRange = v.pipe(
  v.string('must be a list of IP addresses or CIDR ranges'),
  v.check((entry) => parseRange(entry) !== null, (issue) => `has ${JSON.stringify(issue.input)}, which is no IP address or CIDR range (such as 10.0.0.0/8 or fd00::/8)`),
)

export const CONFIG_KEYS = {
  host: key('string', v.pipe(v.string('must be a string'), v.minLength(1, 'must not be empty')), 'Address to listen on. Default 127.0.0.1: nginx on the same box proxies to it.'),
  port: key('integer', Seconds(0, 65535), 'TCP port. Default 8080. 0 picks a free port and prints it.'),
  base_path: key(
    'string',
    v.pipe(v.string('must be a string'), v.regex(/^(\/[A-Za-z0-9._~-]+)+$/, 'must look like /a/b, without a trailing slash')),
    'URL prefix of every route. Default /pbxcore/api/module-softphone-backend/v1 (the legacy module\'s).',
  ),
  trusted_proxies: key(
    'list',
    v.array(AddressOrRange, 'must be a list of IP addresses or CIDR ranges'),
    'Peers whose X-Real-IP header names the client: addresses or CIDR ranges, IPv4 or IPv6 (10.0.0.0/8, fd00::/8). Default ["127.0.0.1", "::1"]. Comma-separated in env and flags.',
  ),
  data_dir: key('string', AbsolutePath, 'Database and default key location. Default $STATE_DIRECTORY, else /var/lib/softphone-backend.'),
  secret_key_path: key(
    'string',
    AbsolutePath,
    'HMAC key file (64 hex chars, mode 0600). Default <data_dir>/secret.key. Point it at the legacy module\'s db/secret.key to keep its tokens valid.',
  ),
  log_dir: key('string', AbsolutePath, 'Where security.log goes. Default $LOGS_DIRECTORY, else <data_dir>/log.'),
  security_log_max_bytes: key(
    'integer',
    Seconds(65536, 1073741824),
    'Size at which security.log is rotated to security.log.1 (5 files are kept). Default 10485760 (10 MiB).',
  ),
  access_ttl: key('integer', Seconds(60, 86400), 'Access token lifetime in seconds. Default 3600.'),
  refresh_ttl: key('integer', Seconds(300, 31536000), 'Refresh token lifetime in seconds. Default 2592000 (30 days).'),
  refresh_rotation: key(
    'string',
    v.picklist(ROTATION_MODES, 'must be one of compatible, strict, off'),
    'Refresh token rotation. Default "compatible": rotate, and give a lost or ignored successor again to its immediate predecessor; "strict": any second use is reuse; "off": never rotate (legacy).',
  ),
  accept_legacy_tokens: key(
    'boolean',
    v.boolean('must be true or false'),
    'Accept tokens without jti/sid, as issued by ModuleSoftphoneBackend. Default true.',
  ),
  directory: key(
    'string',
    v.picklist(DIRECTORIES, 'must be "embedded" or "mikopbx"'),
    'User directory. Default "embedded": users in the service\'s own database, managed with `softphone-backend users`. "mikopbx": the PBX\'s SIP extensions log in with their SIP secret, read from mikopbx_db.',
  ),
  mikopbx_db: key(
    'string',
    AbsolutePath,
    'MikoPBX\'s database, opened read-only when directory is "mikopbx". Default /cf/conf/mikopbx.db.',
  ),
  cdr_db: key(
    'string',
    AbsolutePathOrEmpty,
    'MikoPBX\'s CDR file, read-only, for `history` and `calls`. Default "": cdrDatabase.dbfile from /etc/inc/mikopbx-settings.json; without either, no call history.',
  ),
  recordings_access: key(
    'string',
    v.picklist(RECORDINGS_ACCESS_MODES, 'must be "owner" or "any"'),
    'Who may open a recording through check-media-access. Default "owner": the parties of its call in the CDR, and admins; no CDR means admins only. "any": every valid access token, as the legacy module did.',
  ),
  core_api: key(
    'string',
    v.picklist(CORE_API_MODES, 'must be "on" or "off"'),
    'MikoPBX core-compatible routes /pbxcore/api/sip/getPeersStatuses, getSipPeer, getRegistry and the admin login /admin-cabinet/session/start, outside base_path. Default "off": on a MikoPBX its own core answers there.',
  ),
  password_hash_concurrency: key(
    'integer',
    Seconds(1, 64),
    'How many argon2id hashes may run at once; further logins queue. Default 2.',
  ),
  password_min_length: key(
    'integer',
    Seconds(1, 128),
    `Fewest characters a password set with \`users add\` or \`users passwd\` may have (embedded directory). Default ${DEFAULT_PASSWORD_MIN_LENGTH}.`,
  ),
  digest_realm: key(
    'string',
    // Printable ASCII without quote or backslash: it goes verbatim into a quoted-string of the challenge.
    v.pipe(v.string('must be a string'), v.regex(/^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$/, 'must be 1 to 64 printable ASCII characters, without " or \\')),
    `HTTP Digest realm; each password set with \`users add\` or \`users passwd\` stores its HA1 for it (embedded directory). Default "${DEFAULT_DIGEST_REALM}". Changing it needs every password set again.`,
  ),
  throttle_account_failures: key(
    'integer',
    Seconds(1, 1000),
    'Failed logins allowed per (extension, client IP) before each further failure doubles a delay. Default 5.',
  ),
  throttle_ip_failures: key(
    'integer',
    Seconds(1, 100000),
    'Failed logins allowed per client IP, across extensions, before delays start. Default 20.',
  ),
  throttle_max_delay: key('integer', Seconds(1, 86400), 'Longest login delay in seconds. Default 900 (15 minutes).'),
  extra_channels: key(
    'list',
    v.pipe(
      v.array(
        v.pipe(
          v.string('must be a list of channel names'),
          v.regex(/^[a-z0-9-]{1,64}(:\d{1,4})?$/, 'must be channel names ([a-z0-9-], at most 64), each optionally :<buffer size>'),
        ),
        'must be a list of channel names',
      ),
      v.check(
        (names) => extraChannelConflict(names) === null,
        (issue) => extraChannelConflict(issue.input as string[])!,
      ),
    ),
    'Channels beyond users-state, active-calls and contacts, as "name" or "name:<messages kept>" (default 1); they can\'t redefine those three. Default [].',
  ),
  longpoll_hold_seconds: key('integer', Seconds(1, 120), 'How long a long-poll waits for a message before answering 304. Default 25.'),
  sse_heartbeat_seconds: key('integer', Seconds(1, 15), 'Interval of EventSource heartbeat comments. Default 15.'),
  max_subscriptions_per_user: key('integer', Seconds(1, 1000), 'Concurrent subscriptions per user, over all transports; more get 429. Default 10.'),
  api_key_idle_minutes: key(
    'integer',
    Seconds(1, 525600),
    'Minutes a self-made API key (accounts/me/api_key) may stay unused before it stops working; keys made by an admin or the CLI have no idle limit. Default 60.',
  ),
  presence_source: key(
    'string',
    v.picklist(PRESENCE_SOURCES, 'must be "ami", "ingest" or "pub"'),
    'Who produces users-state and active-calls (README "Personalised presence"): "ami" (this service, from AMI; needs ami = "on"), "ingest" (an external producer through PUT internal/monitor-snapshot/*), "pub" (anything POSTing to pub/, as with nchan). One source owns them at a time. Default "ami" when ami = "on", else "pub".',
  ),
  presence_legacy_channels: key(
    'string',
    v.picklist(ON_OFF, 'must be "on" or "off"'),
    'Whether the shared channels users-state and active-calls, which show every call to every user, stay open for legacy apps. Default "on"; "off" is the safe setting once apps subscribe to sub/me/*.',
  ),
  presence_scope_states: key(
    'string',
    v.picklist(PRESENCE_SCOPES, 'must be "all" or "own"'),
    'Whose names and states sub/me/users-state shows a user beyond its own and its groups\'. Default "all"; "own": only its own, its groups\' and its call partners\'.',
  ),
  presence_scope_calls: key(
    'string',
    v.picklist(PRESENCE_SCOPES, 'must be "all" or "own"'),
    'Whose call details (channels, numbers, active calls) a user sees beyond its own calls and its groups\'. Default "own"; "all" shows every call to every user.',
  ),
  presence_groups: key(
    'list',
    v.pipe(
      v.array(
        v.pipe(v.string('must be a list of groups'), v.regex(/^\s*[A-Za-z0-9_.+=-]{1,80}(\s+[A-Za-z0-9_.+=-]{1,80})*\s*$/, 'must be groups of extensions separated by spaces, such as "201 202 203"')),
        'must be a list of groups',
      ),
      v.maxLength(1000, 'must have at most 1000 groups'),
    ),
    'Groups of extensions that see each other\'s states and calls whatever the scopes say, each a string of extensions separated by spaces: ["201 202", "301 302 303"]. Re-read on SIGHUP. Default [].',
  ),
  ami: key(
    'string',
    v.picklist(AMI_MODES, 'must be "on" or "off"'),
    'Live PBX state from the Asterisk Manager Interface. Default "off". "on" needs ami_username and ami_secret or ami_secret_file.',
  ),
  ami_host: key('string', v.pipe(v.string('must be a string'), v.minLength(1, 'must not be empty')), 'AMI address. Default 127.0.0.1.'),
  ami_port: key('integer', Seconds(1, 65535), 'AMI TCP port (MikoPBX: AMIPort). Default 5038.'),
  ami_username: key('string', OneLine, 'AMI user: a manager.conf section or a MikoPBX Asterisk Manager Interface user. Default "".'),
  ami_secret: key('string', OneLine, 'That user\'s secret. Default "". Prefer ami_secret_file, which keeps it out of the config file.', { secret: true }),
  ami_secret_file: key(
    'string',
    AbsolutePathOrEmpty,
    'File holding the AMI secret, read at start and trimmed; used when ami_secret is empty. Default "".',
  ),
  metrics: key(
    'string',
    v.picklist(METRICS_MODES, 'must be "on" or "off"'),
    'Prometheus metrics at /metrics, for loopback peers only. Default "on".',
  ),
  external_jwt_issuer: key(
    'string',
    OneLine,
    'The `iss` an external issuer\'s JWTs must carry; setting it (with external_jwt_audience and external_jwt_key_file) turns them on. Default "": off.',
  ),
  external_jwt_audience: key('string', OneLine, 'The `aud` those JWTs must carry (one of theirs, if a list). Default "".'),
  external_jwt_key_file: key(
    'string',
    AbsolutePathOrEmpty,
    'The issuer\'s public key(s): a PEM file (public keys or certificates) or a JWKS JSON file, read at start and on SIGHUP. Default "".',
  ),
  external_jwt_algorithms: key(
    'list',
    v.pipe(
      v.array(v.string('must be a list of algorithms'), 'must be a list of algorithms'),
      v.check((names) => hmacAlgorithmIn(names) === null, (issue) => `has ${hmacAlgorithmIn(issue.input as string[])}: HMAC algorithms are refused, an issuer's public key must never serve as an HMAC secret`),
      v.check((names) => names.length > 0 && names.every((name) => (EXTERNAL_ALGORITHMS as readonly string[]).includes(name)), 'must be a non-empty subset of RS256, ES256, EdDSA'),
    ),
    'Algorithms accepted from the issuer, a subset of RS256, ES256, EdDSA (HS* is refused). Default all three. Comma-separated in env and flags.',
  ),
  external_jwt_user_claim: key(
    'string',
    v.pipe(v.string('must be a string'), v.regex(/^[\x21-\x7e]{1,64}$/, 'must be a claim name (1 to 64 printable ASCII characters)')),
    'The claim that names the user (an extension of the directory). Default "sub".',
  ),
  external_jwt_clock_tolerance: key('integer', Seconds(0, 300), 'Allowed clock skew for the issuer\'s exp, nbf and iat, seconds. Default 30.'),
  metrics_port: key(
    'integer',
    Seconds(0, 65535),
    'Serve /metrics on 127.0.0.1:<metrics_port> instead of the main listener, which then answers 404 for it. Default 0: on the main listener.',
  ),
  store: key(
    'string',
    v.picklist(STORE_KINDS, 'must be "sqlite" or "redis"'),
    'Where sessions, revocations, throttle counters and the presence bus live (README "Several nodes"). Default "sqlite": the database in data_dir, one node. "redis": shared with every node using the same redis_url; users stay in the directory.',
  ),
  redis_url: key(
    'string',
    v.pipe(
      v.string('must be a string'),
      v.check((text) => text === '' || !isRedisUrlError(parseRedisUrl(text)), (issue) => redisUrlProblem(issue.input as string)),
    ),
    'The Redis that store = "redis" uses: redis://[user:password@]host[:port][/db], rediss://… (TLS), or redis+unix://[:password@]/path/to/socket[?db=N]; percent-encode @, : and / in a password. Default "".',
    { secret: true },
  ),
  redis_stale_seconds: key(
    'integer',
    Seconds(1, 3600),
    'How long tokens are still verified from the in-memory copy of revocations while Redis is unreachable; after that, verification answers 503 until it is back. Default 30.',
  ),
} as const

/** The parser's reason alone: the value holds the password. */
function redisUrlProblem(text: string): string {
  const parsed = parseRedisUrl(text)
  return isRedisUrlError(parsed) ? parsed.error : 'is invalid'
}

type Keys = typeof CONFIG_KEYS
export type ConfigKey = keyof Keys
export type Config = { [K in ConfigKey]: v.InferOutput<Keys[K]['schema']> }

export const ConfigSchema = v.strictObject(
  Object.fromEntries(Object.entries(CONFIG_KEYS).map(([name, spec]) => [name, spec.schema])) as {
    [K in ConfigKey]: Keys[K]['schema']
  },
  'unknown key',
)

export const DEFAULT_BASE_PATH = '/pbxcore/api/module-softphone-backend/v1'
