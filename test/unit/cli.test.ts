import { describe, expect, test } from 'bun:test'
import * as v from 'valibot'
import { parseArgs, UsageError } from '../../src/cli/args'
import { printableConfig, REDACTED } from '../../src/cli/config-command'
import { KEYS_OPTIONS, parseKeysCommand } from '../../src/cli/keys-command'
import { parseSessionsCommand } from '../../src/cli/sessions-command'
import { parseUsersCommand } from '../../src/cli/users-command'
import { CONFIG_KEYS, type KeySpec } from '../../src/config/schema'

const known = { options: ['data-dir', 'user'], switches: ['help', 'version', 'password-stdin'], aliases: { h: 'help', v: 'version' } }

describe('parseArgs', () => {
  test('-h and -v are --help and --version', () => {
    expect(parseArgs(['users', '-h'], known)).toEqual(parseArgs(['users', '--help'], known))
    expect(parseArgs(['-v'], known).switches).toEqual(new Set(['version']))
  })

  test('an unknown short option is a usage error, not a positional', () => {
    expect(() => parseArgs(['-x'], known)).toThrow(UsageError)
    expect(() => parseArgs(['-x'], known)).toThrow('unknown option -x')
  })

  test('after -- everything is positional, so an extension may start with a dash', () => {
    expect(parseArgs(['users', 'remove', '--data-dir', '/d', '--', '-201', '--help'], known)).toEqual({
      positionals: ['users', 'remove', '-201', '--help'],
      options: new Map([['data-dir', '/d']]),
      switches: new Set(),
    })
  })
})

describe('commands check their usage before touching the store', () => {
  const users = (...argv: string[]) => parseUsersCommand(parseArgs(argv, { options: ['role', 'mobile', 'name'], switches: ['password-stdin'] }))
  const sessions = (...argv: string[]) => parseSessionsCommand(parseArgs(argv, known))
  const keys = (...argv: string[]) => parseKeysCommand(parseArgs(argv, { options: KEYS_OPTIONS, switches: [] }))

  test('each command says how it needs the store', () => {
    expect(users('users', 'add', '201').access).toBe('create')
    expect(users('users', 'list').access).toBe('read')
    for (const command of ['passwd', 'disable', 'enable', 'remove']) expect(users('users', command, '201').access).toBe('write')
    expect(sessions('sessions', 'list', '--user', '201').access).toBe('read')
    expect(sessions('sessions', 'revoke', '--user', '201').access).toBe('write')
    expect(keys('keys', 'create', '--user', '201', '--expires', '2099-01-31').access).toBe('write')
    expect(keys('keys', 'create', '--user', '201', '--expires', '30').access).toBe('write')
    expect(keys('keys', 'list').access).toBe('read')
    expect(keys('keys', 'revoke', '7').access).toBe('write')
  })

  test('bad usage throws before there is anything to run', () => {
    for (const argv of [['users'], ['users', 'bogus'], ['users', 'add', 'a/b'], ['users', 'add', '201', '--role', 'root'], ['users', 'add', '201', '--mobile', '+49']]) {
      expect(() => users(...argv)).toThrow(UsageError)
    }
    expect(() => sessions('sessions', 'list')).toThrow(UsageError)
    expect(() => sessions('sessions', 'bogus', '--user', '201')).toThrow(UsageError)
    const badKeys = [
      ['keys'],
      ['keys', 'create'],
      ['keys', 'create', '--user', '201', '--expires', 'soon'],
      ['keys', 'create', '--user', '201', '--expires', '2020-01-01'],
      ['keys', 'create', '--user', '201', '--expires', '0'],
      ['keys', 'create', '--user', '201', '--name', 'a\nb'],
      ['keys', 'revoke'],
      ['keys', 'revoke', '0x1'],
    ]
    for (const argv of badKeys) expect(() => keys(...argv)).toThrow(UsageError)
  })
})

describe('config check redacts secret-bearing keys', () => {
  const config = { host: '127.0.0.1', port: 8080, ami_password: 'Ami-Secret-1' }

  test('a key whose spec is marked secret is printed redacted; the others as they are', () => {
    const specs: Record<string, KeySpec> = {
      host: CONFIG_KEYS.host,
      port: CONFIG_KEYS.port,
      ami_password: { kind: 'string', schema: v.string(), doc: 'AMI password.', secret: true },
    }
    const printed = printableConfig(config, specs)
    expect(printed).toEqual({ host: '127.0.0.1', port: 8080, ami_password: REDACTED })
    expect(JSON.stringify(printed)).not.toContain('Ami-Secret-1')
  })

  test('every key marked secret in the schema is redacted', () => {
    const values = Object.fromEntries(Object.keys(CONFIG_KEYS).map((name) => [name, `value-of-${name}`]))
    const printed = printableConfig(values)
    for (const [name, spec] of Object.entries(CONFIG_KEYS) as Array<[string, KeySpec]>) {
      expect(printed[name]).toBe(spec.secret ? REDACTED : `value-of-${name}`)
    }
  })

  test('a string key named like a credential is marked secret (paths and files, and numbers, are not credentials)', () => {
    const credentialLike = /password|secret|token|credential|api_key/
    for (const [name, spec] of Object.entries(CONFIG_KEYS) as Array<[string, KeySpec]>) {
      if (spec.kind === 'string' && credentialLike.test(name) && !/_(path|file)$/.test(name)) expect({ name, secret: spec.secret }).toEqual({ name, secret: true })
    }
  })
})
