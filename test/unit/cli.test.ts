import { describe, expect, test } from 'bun:test'
import { parseArgs, UsageError } from '../../src/cli/args'

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
