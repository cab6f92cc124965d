/**
 * A small argv parser: positionals, `--flag value`, `--flag=value`, declared boolean switches, their
 * one-letter aliases (`-h`), and `--` before positionals that start with a dash.
 */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** The operator asked for something the data refuses (an unknown user, passwords that differ): exit 1. */
export class CommandError extends Error {
  override name = 'CommandError'
}

/** sysexits.h EX_USAGE. */
export const EX_USAGE = 64

export interface ParsedArgs {
  positionals: string[]
  options: Map<string, string>
  switches: Set<string>
}

export interface KnownArgs {
  options: readonly string[]
  switches: readonly string[]
  /** One-letter aliases of switches: `{ h: 'help' }` makes `-h` mean `--help`. */
  aliases?: Readonly<Record<string, string>>
}

export function parseArgs(argv: readonly string[], known: KnownArgs): ParsedArgs {
  const parsed: ParsedArgs = { positionals: [], options: new Map(), switches: new Set() }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') {
      parsed.positionals.push(...argv.slice(i + 1))
      break
    }
    if (!arg.startsWith('-') || arg === '-') {
      parsed.positionals.push(arg)
    } else if (!arg.startsWith('--')) {
      const name = known.aliases?.[arg.slice(1)]
      if (name === undefined) throw new UsageError(`unknown option ${arg}; see --help`)
      parsed.switches.add(name)
    } else {
      i = parseLongOption(argv, i, known, parsed)
    }
  }
  return parsed
}

/** Parses the `--name` at argv[i] into `parsed`; returns the index of the last argument it used. */
function parseLongOption(argv: readonly string[], i: number, known: KnownArgs, parsed: ParsedArgs): number {
  const arg = argv[i]!
  const eq = arg.indexOf('=')
  const name = arg.slice(2, eq === -1 ? undefined : eq)
  if (known.switches.includes(name) && eq === -1) {
    parsed.switches.add(name)
    return i
  }
  if (!known.options.includes(name)) throw new UsageError(`unknown option --${name}; see --help`)
  const value = eq === -1 ? argv[i + 1] : arg.slice(eq + 1)
  if (value === undefined) throw new UsageError(`--${name} needs a value`)
  parsed.options.set(name, value)
  return eq === -1 ? i + 1 : i
}
