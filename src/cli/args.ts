/** A small argv parser: positionals, `--flag value`, `--flag=value`, and declared boolean switches. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** sysexits.h EX_USAGE. */
export const EX_USAGE = 64

export interface ParsedArgs {
  positionals: string[]
  options: Map<string, string>
  switches: Set<string>
}

export function parseArgs(argv: readonly string[], known: { options: readonly string[]; switches: readonly string[] }): ParsedArgs {
  const parsed: ParsedArgs = { positionals: [], options: new Map(), switches: new Set() }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) {
      parsed.positionals.push(arg)
      continue
    }
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    if (known.switches.includes(name) && eq === -1) {
      parsed.switches.add(name)
    } else if (known.options.includes(name)) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
      if (value === undefined) throw new UsageError(`--${name} needs a value`)
      parsed.options.set(name, value)
    } else {
      throw new UsageError(`unknown option --${name}; see --help`)
    }
  }
  return parsed
}
