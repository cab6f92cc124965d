/** The README and the comments in `src/` and `systemd/` describe what the code does, and need nothing outside the repository. */
import { expect, test } from 'bun:test'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CONFIG_KEYS } from '../../src/config/schema'

const readme = readFileSync('README.md', 'utf8')

/** Every file under `dir`, recursively, as repository-relative paths. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
}

/** Lines of the repository's sources, tests and system files: `{ where: "path:line", text }`. */
function shippedLines(): Array<{ where: string; text: string }> {
  // This file is left out: its patterns would cite themselves.
  const paths = [...['src', 'systemd', 'bench', 'test', '.ci'].flatMap(filesUnder), 'build.ts'].filter((path) => path !== 'test/unit/docs.test.ts')
  return paths.flatMap((path) =>
    readFileSync(path, 'utf8')
      .split('\n')
      .map((text, index) => ({ where: `${path}:${index + 1}`, text })),
  )
}

/** The text under a `## heading` of the README, up to the next `## `. */
function readmeSection(heading: string): string {
  const start = readme.indexOf(`\n## ${heading}\n`)
  if (start < 0) throw new Error(`README has no section "## ${heading}"`)
  const end = readme.indexOf('\n## ', start + 1)
  return readme.slice(start, end < 0 ? undefined : end)
}

/** The bodies of the README's fenced blocks of one language, in order. */
function readmeBlocks(language: string): string[] {
  return [...readme.matchAll(new RegExp('^```' + language + '\\n([\\s\\S]*?)^```$', 'gm'))].map((match) => match[1]!)
}

/** A number assigned to `name` in a source file, so the README can be checked against it. */
function sourceConstant(path: string, name: string): number {
  const match = readFileSync(path, 'utf8').match(new RegExp(`\\b${name} = ([\\d_]+)\\b`))
  if (!match) throw new Error(`${path} no longer defines ${name}`)
  return Number(match[1]!.replaceAll('_', ''))
}

test('the README documents every configuration key with its env variable and flag', () => {
  for (const key of Object.keys(CONFIG_KEYS)) {
    expect(readme).toContain(`| \`${key}\` | \`SOFTPHONE_${key.toUpperCase()}\` / \`--${key.replaceAll('_', '-')}\` |`)
  }
})

test('the example config names every key', () => {
  const example = readFileSync('systemd/config.example.toml', 'utf8')
  for (const key of Object.keys(CONFIG_KEYS)) expect(example).toMatch(new RegExp(`^# ${key} = `, 'm'))
})

test('no comment in the repository cites the product brief, which is not in it', () => {
  const citations = shippedLines().filter(({ text }) => /SPEC §/.test(text))
  expect(citations.map(({ where }) => where)).toEqual([])
})

test('every README section cited in the repository exists', () => {
  const headings = new Set([...readme.matchAll(/^##+ (.+)$/gm)].map((match) => match[1]!))
  const cited = shippedLines().flatMap(({ where, text }) =>
    [...text.matchAll(/README "([^"]+)"/g)].map((match) => ({ where, heading: match[1]! })),
  )
  expect(cited.length).toBeGreaterThan(0)
  expect(cited.filter(({ heading }) => !headings.has(heading))).toEqual([])
  // A heading split over two comment lines would escape the check above.
  expect(shippedLines().filter(({ text }) => /README "[^"]*$|README$/.test(text)).map(({ where }) => where)).toEqual([])
})

test('every test cited in the repository exists', () => {
  const cited = shippedLines().flatMap(({ text }) => [...text.matchAll(/\btest\/[\w/.-]+\.test\.ts\b/g)].map((match) => match[0]))
  expect(cited.length).toBeGreaterThan(0)
  expect(cited.filter((path) => !existsSync(path))).toEqual([])
})

test('the README shell examples define every variable they use before using it', () => {
  const defined = new Set(['PATH', 'PWD', 'HOME'])
  const undefinedUses: string[] = []
  for (const block of readmeBlocks('sh')) {
    for (const line of block.split('\n')) {
      // Output samples and trailing comments are not shell.
      const code = line.replace(/(^|\s)#.*$/, '')
      for (const use of code.matchAll(/\$\{?([A-Za-z_]\w*)/g)) {
        if (!defined.has(use[1]!)) undefinedUses.push(`${use[1]} in: ${line.trim()}`)
      }
      for (const assignment of code.matchAll(/(?:^|[\s;&])([A-Za-z_]\w*)=/g)) defined.add(assignment[1]!)
    }
  }
  expect(undefinedUses).toEqual([])
})

test("the README's nginx excerpt is the shipped sub/ location, with the headers it inherits", () => {
  const directives = (text: string) =>
    text
      .split('\n')
      .map((line) => line.replace(/#.*$/, '').trim())
      .filter((line) => line !== '')
  const shipped = readFileSync('systemd/nginx-softphone-backend.conf', 'utf8')
  const shippedDirectives = directives(shipped)
  const [excerpt] = readmeBlocks('nginx')
  const excerptDirectives = directives(excerpt!)

  // Same directives, in the shipped order: the excerpt may leave lines out, never change them.
  let from = 0
  for (const directive of excerptDirectives) {
    const at = shippedDirectives.indexOf(directive, from)
    expect({ directive, inShippedOrder: at >= 0 }).toEqual({ directive, inShippedOrder: true })
    from = at + 1
  }
  expect(excerptDirectives).toContain('location ^~ /pbxcore/api/module-softphone-backend/v1/sub/ {')

  // sub/ sets no proxy_set_header of its own, so it inherits all of the enclosing location's.
  const apiLocation = shipped.slice(shipped.indexOf('location ^~ /pbxcore/api/module-softphone-backend/v1/ {'))
  const inherited = directives(apiLocation.slice(0, apiLocation.indexOf('\n    location'))).filter((line) =>
    /^proxy_(set_header|http_version) /.test(line),
  )
  expect(inherited.length).toBeGreaterThan(0)
  for (const directive of inherited) expect(excerptDirectives).toContain(directive)
})

test('the README says how long an open stream outlives its token: the clock tolerance', () => {
  const tolerance = sourceConstant('src/tokens/tokens.ts', 'CLOCK_TOLERANCE_SECONDS')
  expect(readmeSection('Presence: publish and subscribe')).toContain(`${tolerance} s after its \`exp\``)
})

test('the README states the delay before CLI changes reach a running server as the change watch polls', () => {
  const pollSeconds = sourceConstant('src/store/change-watch.ts', 'POLL_INTERVAL_MS') / 1000
  const commandLine = readmeSection('Command line')
  expect(commandLine).toContain(`within ${pollSeconds} s`)
  expect(commandLine).not.toContain('milliseconds')
})

test('the README lists every exit code the binary uses', () => {
  const sources = filesUnder('src').map((path) => readFileSync(path, 'utf8'))
  const codes = new Set<number>()
  for (const source of sources) {
    for (const match of source.matchAll(/\bEX_[A-Z]+ = (\d+)/g)) codes.add(Number(match[1]))
  }
  const main = readFileSync('src/main.ts', 'utf8')
  for (const match of main.matchAll(/\[\w+Error, (\d+)\]|return (\d+) \/\/ EX_/g)) codes.add(Number(match[1] ?? match[2]))
  expect([...codes].sort()).toEqual(expect.arrayContaining([1, 64, 69, 70, 74, 78]))

  const commandLine = readmeSection('Command line')
  const unlisted = [...codes, 73].filter((code) => !commandLine.includes(`| ${code} |`))
  expect(unlisted).toEqual([])
})

test('the README documents call history: the source marker values and the limits the code enforces', () => {
  const section = readmeSection('Call history')
  for (const source of ['cdr', 'none', 'unsupported_schema']) expect(section).toContain(`"${source}"`)
  expect(section).toContain(`at most ${sourceConstant('src/history/history-schemas.ts', 'MAX_CALLS_LIMIT')}`)
  expect(section).toContain(`(default ${sourceConstant('src/history/history-schemas.ts', 'DEFAULT_CALLS_LIMIT')})`)
  expect(section).toContain(`at most ${sourceConstant('src/history/history-schemas.ts', 'MAX_RANGE_DAYS')} days`)
  expect(section).toContain(`at most ${sourceConstant('src/history/cdr-reader.ts', 'CDR_BUSY_TIMEOUT_MS')} ms`)
  expect(section).toContain(`at most ${sourceConstant('src/history/cdr-reader.ts', 'INDEX_PLAN_MAX_LEGS')} in all`)
  expect(readme.slice(0, readme.indexOf('\n## '))).not.toContain('call history (no call-history source')
})

test('the README states the state engine limits the code uses', () => {
  const section = readmeSection('Live PBX state')
  expect(section).toContain(`Every ${sourceConstant('src/pbx/state-engine.ts', 'RECONCILE_MS') / 1000} s`)
  expect(section).toContain(`at most once per ${sourceConstant('src/pbx/state-engine.ts', 'DEBOUNCE_MS')} ms`)
  expect(section).toContain(`at most ${sourceConstant('src/pbx/state-engine.ts', 'MAX_CHANNELS')} channels are tracked`)
})

test('the README states the API key limits the code uses', () => {
  const section = readmeSection('Who may call what')
  expect(section).toContain(`at most ${sourceConstant('src/api-keys/api-key-service.ts', 'MAX_SELF_MADE_KEYS')} working self-made keys`)
  expect(section).toContain(`every ${sourceConstant('src/serve.ts', 'API_KEY_FLUSH_INTERVAL_MS') / 1000} s and at shutdown`)
})
