import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, externalJwtSettings, loadConfig, unknownEnvironmentVariables } from '../../src/config/load'
import { CONFIG_KEYS } from '../../src/config/schema'
import { checkConfig, REDACTED } from '../../src/cli/config-command'
import { channelSpecs } from '../../src/presence/hub'
import { amiSettings } from '../../src/pbx/ami/ami-config'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-config-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const file = (text: string) => {
  const path = join(dir, 'config.toml')
  writeFileSync(path, text)
  return path
}
/** CONFIGURATION_DIRECTORY points at the empty temp dir, so the machine's /etc is never read. */
const loadWithFile = (sources: { configPath?: string; flags?: Record<string, string>; env?: Record<string, string> } = {}) =>
  loadConfig({ configPath: sources.configPath, flags: sources.flags ?? {}, env: { CONFIGURATION_DIRECTORY: dir, ...sources.env } })
const load = (sources: Parameters<typeof loadWithFile>[0] = {}) => loadWithFile(sources).config

describe('defaults', () => {
  test('without any source', () => {
    const config = load()
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 8080,
      base_path: '/pbxcore/api/module-softphone-backend/v1',
      trusted_proxies: ['127.0.0.1', '::1'],
      data_dir: '/var/lib/softphone-backend',
      secret_key_path: '/var/lib/softphone-backend/secret.key',
      log_dir: '/var/lib/softphone-backend/log',
      security_log_max_bytes: 10485760,
      access_ttl: 3600,
      refresh_ttl: 2592000,
      refresh_rotation: 'compatible',
      accept_legacy_tokens: true,
      directory: 'embedded',
      cdr_db: '',
      recordings_access: 'owner',
      core_api: 'off',
      mikopbx_db: '/cf/conf/mikopbx.db',
      password_hash_concurrency: 2,
      password_min_length: 8,
      digest_realm: 'softphone',
      throttle_account_failures: 5,
      throttle_ip_failures: 20,
      throttle_max_delay: 900,
      extra_channels: [],
      longpoll_hold_seconds: 25,
      sse_heartbeat_seconds: 15,
      max_subscriptions_per_user: 10,
      api_key_idle_minutes: 60,
      ami: 'off',
      presence_source: 'pub',
      presence_legacy_channels: 'on',
      presence_scope_states: 'all',
      presence_scope_calls: 'own',
      presence_groups: [],
      ami_host: '127.0.0.1',
      ami_port: 5038,
      ami_username: '',
      ami_secret: '',
      ami_secret_file: '',
      metrics: 'on',
      metrics_port: 0,
      external_jwt_issuer: '',
      external_jwt_audience: '',
      external_jwt_key_file: '',
      external_jwt_algorithms: ['RS256', 'ES256', 'EdDSA'],
      external_jwt_user_claim: 'sub',
      external_jwt_clock_tolerance: 30,
      store: 'sqlite',
      redis_url: '',
      redis_stale_seconds: 30,
    })
    expect(Object.keys(config).sort()).toEqual(Object.keys(CONFIG_KEYS).sort())
  })

  test('paths come from systemd\'s STATE_DIRECTORY and LOGS_DIRECTORY when set', () => {
    const config = load({ env: { STATE_DIRECTORY: '/var/lib/sb', LOGS_DIRECTORY: '/var/log/sb' } })
    expect(config).toMatchObject({ data_dir: '/var/lib/sb', secret_key_path: '/var/lib/sb/secret.key', log_dir: '/var/log/sb' })
  })

  test('the config file is read from CONFIGURATION_DIRECTORY', () => {
    file('port = 9001\n')
    expect(load().port).toBe(9001)
  })
})

describe('what config check reports', () => {
  test('the file that was read, or null', () => {
    expect(loadWithFile().file).toBeNull()
    const path = file('port = 9001\n')
    expect(loadWithFile().file).toBe(path)
    expect(loadWithFile({ configPath: path }).file).toBe(path)
  })

  test('SOFTPHONE_* variables that name no key, and nothing else', () => {
    const env = { SOFTPHONE_PROT: '1', SOFTPHONE_PORT: '2', SOFTPHONE_DATADIR: '/x', HOME: '/root', STATE_DIRECTORY: '/s' }
    expect(unknownEnvironmentVariables(env)).toEqual(['SOFTPHONE_DATADIR', 'SOFTPHONE_PROT'])
  })
})

describe('precedence: flags > environment > file > defaults', () => {
  test('each layer overrides the one below', () => {
    const configPath = file('port = 9001\naccess_ttl = 600\nrefresh_ttl = 7200\n')
    const config = load({
      configPath,
      env: { SOFTPHONE_PORT: '9002', SOFTPHONE_ACCESS_TTL: '900' },
      flags: { port: '9003' },
    })
    expect(config).toMatchObject({ port: 9003, access_ttl: 900, refresh_ttl: 7200 })
  })

  test('environment strings become the right types', () => {
    const config = load({
      env: { SOFTPHONE_ACCEPT_LEGACY_TOKENS: 'false', SOFTPHONE_TRUSTED_PROXIES: '10.0.0.1, ::1', SOFTPHONE_DATA_DIR: '/srv/sb' },
    })
    expect(config).toMatchObject({ accept_legacy_tokens: false, trusted_proxies: ['10.0.0.1', '::1'], data_dir: '/srv/sb' })
    expect(config.secret_key_path).toBe('/srv/sb/secret.key')
  })
})

describe('trusted_proxies', () => {
  test('takes addresses and CIDR ranges, IPv4 and IPv6', () => {
    const config = load({ flags: { trusted_proxies: '10.0.0.0/8, fd00::/8,192.0.2.1,::1' } })
    expect(config.trusted_proxies).toEqual(['10.0.0.0/8', 'fd00::/8', '192.0.2.1', '::1'])
  })
})

describe('bad configuration stops the start with one line naming the key', () => {
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['an unknown key in the file', () => load({ configPath: file('prot = 8080\n') }), /^config error: prot unknown key \(from .*config\.toml\)$/],
    ['a wrong type in the file', () => load({ configPath: file('port = "8080"\n') }), /^config error: port must be an integer \(from .*config\.toml\)$/],
    ['a port out of range', () => load({ env: { SOFTPHONE_PORT: '70000' } }), /^config error: port must be at most 65535 \(from SOFTPHONE_PORT\)$/],
    ['a non-number in the environment', () => load({ env: { SOFTPHONE_ACCESS_TTL: '1h' } }), /access_ttl must be an integer \(from SOFTPHONE_ACCESS_TTL\)/],
    ['a relative data dir', () => load({ flags: { data_dir: 'data' } }), /data_dir must be an absolute path \(from --data-dir\)/],
    ['a bad boolean', () => load({ env: { SOFTPHONE_ACCEPT_LEGACY_TOKENS: 'yes' } }), /accept_legacy_tokens must be true or false/],
    [
      'a bad proxy address',
      () => load({ flags: { trusted_proxies: '127.0.0.1,nginx' } }),
      /^config error: trusted_proxies has "nginx", which is no IP address or CIDR range \(such as 10\.0\.0\.0\/8 or fd00::\/8\) \(from --trusted-proxies\)$/,
    ],
    ['a proxy range too wide for its family', () => load({ configPath: file('trusted_proxies = ["10.0.0.0/33"]\n') }), /trusted_proxies has "10\.0\.0\.0\/33", which is no/],
    ['a proxy address with a zone', () => load({ env: { SOFTPHONE_TRUSTED_PROXIES: 'fe80::1%eth0' } }), /trusted_proxies has "fe80::1%eth0", which is no/],
    ['a base path with a trailing slash', () => load({ flags: { base_path: '/api/' } }), /base_path must look like/],
    ['an unknown directory', () => load({ flags: { directory: 'mikopbx:/cf/conf/mikopbx.db' } }), /^config error: directory must be "embedded" or "mikopbx" \(from --directory\)$/],
    ['a core_api other than on or off', () => load({ flags: { core_api: 'yes' } }), /^config error: core_api must be "on" or "off" \(from --core-api\)$/],
    ['an unknown recordings access rule', () => load({ flags: { recordings_access: 'all' } }), /^config error: recordings_access must be "owner" or "any" \(from --recordings-access\)$/],
    ['a relative MikoPBX database', () => load({ env: { SOFTPHONE_MIKOPBX_DB: 'mikopbx.db' } }), /^config error: mikopbx_db must be an absolute path \(from SOFTPHONE_MIKOPBX_DB\)$/],
    ['invalid TOML', () => load({ configPath: file('port = = 1\n') }), /is not valid TOML at line 1, column 8: Expected a value but found '='$/],
    [
      'invalid TOML further down, inside an array',
      () => load({ configPath: file('port = 1\ntrusted_proxies = [\n  "::1",\n  "127.0.0.1" "10.0.0.1",\n]\n') }),
      /is not valid TOML at line 4, column 15: /,
    ],
    ['a duplicated TOML key', () => load({ configPath: file('port = 1\nhost = "::1"\nport = 2\n') }), /is not valid TOML at line 3, column \d+: Cannot redefine key 'port'/],
    ['an extra channel that redefines a built-in one', () => load({ env: { SOFTPHONE_EXTRA_CHANNELS: 'contacts:5' } }), /^config error: extra_channels must not redefine the built-in channel contacts \(from SOFTPHONE_EXTRA_CHANNELS\)$/],
    ['an extra channel named twice', () => load({ configPath: file('extra_channels = ["crm", "crm:3"]\n') }), /^config error: extra_channels must not name the channel crm twice \(from .*config\.toml\)$/],
    ['a digest realm with a quote', () => load({ flags: { digest_realm: 'a"b' } }), /digest_realm must be 1 to 64 printable ASCII characters, without " or \\ \(from --digest-realm\)/],
    ['a password minimum below 1', () => load({ flags: { password_min_length: '0' } }), /password_min_length must be at least 1 \(from --password-min-length\)/],
    ['ami on without a user', () => load({ flags: { ami: 'on', ami_secret: 'x' } }), /^config error: ami is "on" but ami_username is empty: set the AMI user \(README "AMI"\) \(from --ami\)$/],
    [
      'ami on without a secret',
      () => load({ configPath: file('ami = "on"\nami_username = "softphone"\n') }),
      /^config error: ami is "on" but neither ami_secret nor ami_secret_file is set \(README "AMI"\) \(from .*config\.toml\)$/,
    ],
    ['ami with both secret sources', () => load({ env: { SOFTPHONE_AMI: 'on', SOFTPHONE_AMI_USERNAME: 'u', SOFTPHONE_AMI_SECRET: 'x', SOFTPHONE_AMI_SECRET_FILE: '/etc/ami.secret' } }), /^config error: ami_secret and ami_secret_file are both set: keep one/],
    ['an ami secret with a line break, which would inject AMI keys', () => load({ configPath: file('ami_secret = "a\\r\\nAction: Logoff"\n') }), /^config error: ami_secret must not contain a line break \(from .*config\.toml\)$/],
    ['an unknown ami mode', () => load({ flags: { ami: 'yes' } }), /^config error: ami must be "on" or "off" \(from --ami\)$/],
    ['a relative ami secret file', () => load({ flags: { ami_secret_file: 'ami.secret' } }), /^config error: ami_secret_file must be an absolute path, or empty \(from --ami-secret-file\)$/],
    ['a missing explicit config file', () => load({ configPath: join(dir, 'absent.toml') }), /cannot read config file .*absent\.toml: ENOENT/],
  ]
  for (const [name, run, message] of cases) {
    test(name, () => {
      expect(run).toThrow(ConfigError)
      expect(run).toThrow(message)
    })
  }

  test('an unreadable config file', () => {
    if (process.getuid?.() === 0) {
      // root reads anything; a directory in its place is the unreadable file root still can't read.
      const path = join(dir, 'config.toml')
      Bun.spawnSync(['mkdir', path])
      expect(() => load({ configPath: path })).toThrow(/cannot read config file .*: EISDIR/)
      return
    }
    const path = file('port = 1\n')
    chmodSync(path, 0o000)
    expect(() => load({ configPath: path })).toThrow(/cannot read config file .*: EACCES/)
  })
})

test('the hub refuses the extra channels the schema refuses, rather than dropping them', () => {
  expect(channelSpecs(['crm', 'queue:3']).map(({ name, capacity }) => `${name}:${capacity}`)).toEqual([
    'users-state:1',
    'active-calls:1',
    'contacts:200',
    'crm:1',
    'queue:3',
  ])
  expect(() => channelSpecs(['active-calls:5'])).toThrow('must not redefine the built-in channel active-calls')
  expect(() => channelSpecs(['crm', 'crm'])).toThrow('must not name the channel crm twice')
})

describe('AMI settings', () => {
  const on = { ami: 'on', ami_username: 'softphone-backend' }

  test('off gives no settings; on with ami_secret gives host, port, user and secret', () => {
    expect(amiSettings(load())).toBeNull()
    expect(amiSettings(load({ flags: { ...on, ami_secret: 's3cret', ami_port: '5039' } }))).toEqual({ host: '127.0.0.1', port: 5039, username: 'softphone-backend', secret: 's3cret' })
  })

  test('ami_secret_file is read at start and trimmed', () => {
    const path = join(dir, 'ami.secret')
    writeFileSync(path, '  from-file-secret\n')
    expect(amiSettings(load({ flags: { ...on, ami_secret_file: path } }))?.secret).toBe('from-file-secret')
  })

  test('a missing or empty secret file is a config error naming the path and never a content', () => {
    const missing = join(dir, 'absent.secret')
    expect(() => amiSettings(load({ flags: { ...on, ami_secret_file: missing } }))).toThrow(new ConfigError(`cannot read ami_secret_file ${missing}: ENOENT`))
    const empty = join(dir, 'empty.secret')
    writeFileSync(empty, ' \n')
    expect(() => amiSettings(load({ flags: { ...on, ami_secret_file: empty } }))).toThrow(new ConfigError(`ami_secret_file ${empty} is empty`))
    const twoLines = join(dir, 'two-lines.secret')
    writeFileSync(twoLines, 'first-line\nAction: Logoff\n')
    expect(() => amiSettings(load({ flags: { ...on, ami_secret_file: twoLines } }))).toThrow(new ConfigError(`ami_secret_file ${twoLines} holds more than one line`))
  })
})

describe('external JWTs (README "External tokens")', () => {
  const on = { SOFTPHONE_EXTERNAL_JWT_ISSUER: 'https://idp.example.test', SOFTPHONE_EXTERNAL_JWT_AUDIENCE: 'pbx', SOFTPHONE_EXTERNAL_JWT_KEY_FILE: '/etc/softphone-backend/issuer.pem' }

  test('off by default; on with issuer, audience and key file, from flat keys in any source', () => {
    expect(externalJwtSettings(load())).toBeNull()
    expect(externalJwtSettings(load({ env: { ...on, SOFTPHONE_EXTERNAL_JWT_ALGORITHMS: 'ES256, EdDSA' }, flags: { external_jwt_user_claim: 'preferred_username' } }))).toEqual({
      issuer: 'https://idp.example.test',
      audience: 'pbx',
      keyFile: '/etc/softphone-backend/issuer.pem',
      algorithms: ['ES256', 'EdDSA'],
      userClaim: 'preferred_username',
      clockTolerance: 30,
    })
    file('external_jwt_issuer = "https://idp.example.test"\nexternal_jwt_audience = "pbx"\nexternal_jwt_key_file = "/k.json"\nexternal_jwt_clock_tolerance = 5\n')
    expect(externalJwtSettings(load())).toMatchObject({ keyFile: '/k.json', clockTolerance: 5, algorithms: ['RS256', 'ES256', 'EdDSA'] })
  })

  test('HMAC algorithms are refused at load, and so is anything outside RS256, ES256, EdDSA', () => {
    for (const [algorithms, message] of [
      ['RS256,HS256', 'external_jwt_algorithms has HS256: HMAC algorithms are refused'],
      ['hs512', 'external_jwt_algorithms has hs512: HMAC algorithms are refused'],
      ['PS256', 'external_jwt_algorithms must be a non-empty subset of RS256, ES256, EdDSA'],
      ['none', 'external_jwt_algorithms must be a non-empty subset of RS256, ES256, EdDSA'],
      ['', 'external_jwt_algorithms must be a non-empty subset of RS256, ES256, EdDSA'],
    ]) {
      const run = () => load({ env: { ...on, SOFTPHONE_EXTERNAL_JWT_ALGORITHMS: algorithms! } })
      expect(run).toThrow(ConfigError)
      expect(run).toThrow(message!)
    }
  })

  test('issuer, audience and key file go together', () => {
    const run = () => load({ env: { SOFTPHONE_EXTERNAL_JWT_ISSUER: 'https://idp.example.test' } })
    expect(run).toThrow('external_jwt_audience and external_jwt_key_file must be set too, or none of external_jwt_issuer, external_jwt_audience, external_jwt_key_file')
    expect(() => load({ env: { ...on, SOFTPHONE_EXTERNAL_JWT_KEY_FILE: 'relative.pem' } })).toThrow('external_jwt_key_file must be an absolute path')
    expect(() => load({ env: { ...on, SOFTPHONE_EXTERNAL_JWT_CLOCK_TOLERANCE: '3600' } })).toThrow('external_jwt_clock_tolerance must be at most 300')
  })
})

describe('the shared store (README "Several nodes")', () => {
  const PASSWORD = 'Redis-Pass-9'

  test('store = "redis" with a redis_url from any source; redis_stale_seconds within 1..3600', () => {
    expect(load({ env: { SOFTPHONE_STORE: 'redis', SOFTPHONE_REDIS_URL: `redis://:${PASSWORD}@10.0.0.5:6380/2` } })).toMatchObject({
      store: 'redis',
      redis_url: `redis://:${PASSWORD}@10.0.0.5:6380/2`,
      redis_stale_seconds: 30,
    })
    file(`store = "redis"\nredis_url = "redis+unix://:${PASSWORD}@/run/redis/redis.sock?db=1"\nredis_stale_seconds = 3600\n`)
    expect(load()).toMatchObject({ store: 'redis', redis_stale_seconds: 3600 })
    expect(load({ flags: { store: 'redis', redis_url: 'rediss://redis.example', redis_stale_seconds: '1' } }).redis_stale_seconds).toBe(1)
  })

  test('a redis_url is checked even while store is "sqlite", so a typo shows before the switch', () => {
    expect(() => load({ flags: { redis_url: 'http://redis.example' } })).toThrow(
      new ConfigError('config error: redis_url must start with redis://, rediss:// or redis+unix:// (from --redis-url)'),
    )
  })

  const cases: Array<[string, () => unknown, RegExp]> = [
    ['store redis without redis_url', () => load({ flags: { store: 'redis' } }), /^config error: store is "redis" but redis_url is empty \(README "Several nodes"\) \(from --store\)$/],
    ['an unknown store', () => load({ env: { SOFTPHONE_STORE: 'postgres' } }), /^config error: store must be "sqlite" or "redis" \(from SOFTPHONE_STORE\)$/],
    ['another scheme', () => load({ env: { SOFTPHONE_STORE: 'redis', SOFTPHONE_REDIS_URL: `http://:${PASSWORD}@10.0.0.5` } }), /^config error: redis_url must start with redis:\/\/, rediss:\/\/ or redis\+unix:\/\/ \(from SOFTPHONE_REDIS_URL\)$/],
    ['a port out of range', () => load({ configPath: file(`redis_url = "redis://:${PASSWORD}@10.0.0.5:70000"\n`) }), /^config error: redis_url port must be a number from 1 to 65535 \(from .*config\.toml\)$/],
    ['a DB that is no number', () => load({ flags: { redis_url: `redis://:${PASSWORD}@10.0.0.5/one` } }), /^config error: redis_url DB number must be a non-negative integer \(from --redis-url\)$/],
    ['an empty host', () => load({ flags: { redis_url: `redis://:${PASSWORD}@:6379` } }), /^config error: redis_url must name a host \(from --redis-url\)$/],
    ['a stale window of 0', () => load({ flags: { redis_stale_seconds: '0' } }), /^config error: redis_stale_seconds must be at least 1 \(from --redis-stale-seconds\)$/],
    ['a stale window over an hour', () => load({ env: { SOFTPHONE_REDIS_STALE_SECONDS: '3601' } }), /^config error: redis_stale_seconds must be at most 3600 \(from SOFTPHONE_REDIS_STALE_SECONDS\)$/],
  ]
  for (const [name, run, message] of cases) {
    test(`${name}: one line, without the password`, () => {
      let error: unknown
      try {
        run()
      } catch (thrown) {
        error = thrown
      }
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as Error).message).toMatch(message)
      expect((error as Error).message).not.toContain(PASSWORD)
    })
  }

  test('config check names the store and the server without the password, and prints redis_url redacted', () => {
    expect(checkConfig(loadWithFile({ flags: { data_dir: dir } }))).toContain('\nstore: sqlite\n')
    const report = checkConfig(loadWithFile({ flags: { data_dir: dir, store: 'redis', redis_url: `redis://:${PASSWORD}@10.0.0.5:6380/2` } }))
    expect(report).toContain('\nstore: redis at redis://10.0.0.5:6380/2\n')
    expect(report).toContain(`"redis_url": "${REDACTED}"`)
    expect(report).not.toContain(PASSWORD)
  })
})
