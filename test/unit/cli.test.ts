import { describe, expect, test } from 'bun:test'
import { parseArgs, UsageError } from '../../src/cli/args'
import { parseSessionsCommand } from '../../src/cli/sessions-command'
import { parseUsersCommand } from '../../src/cli/users-command'

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

  test('each command says how it needs the store', () => {
    expect(users('users', 'add', '201').access).toBe('create')
    expect(users('users', 'list').access).toBe('read')
    for (const command of ['passwd', 'disable', 'enable', 'remove']) expect(users('users', command, '201').access).toBe('write')
    expect(sessions('sessions', 'list', '--user', '201').access).toBe('read')
    expect(sessions('sessions', 'revoke', '--user', '201').access).toBe('write')
  })

  test('bad usage throws before there is anything to run', () => {
    for (const argv of [['users'], ['users', 'bogus'], ['users', 'add', 'a/b'], ['users', 'add', '201', '--role', 'root'], ['users', 'add', '201', '--mobile', '+49']]) {
      expect(() => users(...argv)).toThrow(UsageError)
    }
    expect(() => sessions('sessions', 'list')).toThrow(UsageError)
    expect(() => sessions('sessions', 'bogus', '--user', '201')).toThrow(UsageError)
  })
})
