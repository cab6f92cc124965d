/**
 * Builds the release binaries into dist/ (README "Build and install by hand"). `bun run build.ts` builds every target;
 * `--host` only the one this machine runs. Identifiers are not minified: Elysia macros need names.
 * `--release` also writes dist/release/ (README "Release artifacts"): per target the binary and a tarball with the
 * files of systemd/, plus SHA256SUMS. `--out DIR` puts the release elsewhere.
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { VERSION } from './src/version'

const TARGETS = ['linux-x64-baseline', 'linux-x64', 'linux-arm64'] as const
type Target = (typeof TARGETS)[number]

export function hostTarget(): Target {
  if (process.platform !== 'linux') throw new Error(`release targets are Linux only, not ${process.platform}`)
  return process.arch === 'arm64' ? 'linux-arm64' : 'linux-x64'
}

export const binaryPath = (target: Target) => `dist/softphone-backend-${target}`

async function build(target: Target, outfile = binaryPath(target)): Promise<void> {
  rmSync(outfile, { force: true })
  const result = await Bun.build({
    entrypoints: ['src/main.ts'],
    compile: { target: `bun-${target}`, outfile, autoloadDotenv: false, autoloadBunfig: false },
    minify: { whitespace: true, syntax: true, identifiers: false },
    bytecode: true,
    sourcemap: 'none',
    define: { 'process.env.NODE_ENV': '"production"' },
  })
  if (!result.success) {
    for (const log of result.logs) console.error(log)
    throw new Error(`build for ${target} failed`)
  }
  const size = Bun.file(outfile).size
  console.log(`${outfile}  ${VERSION}  ${(size / 1024 / 1024).toFixed(1)} MiB`)
}

/** Where each shipped file lands in a release tarball, below its top directory. */
export const TARBALL_FILES: ReadonlyArray<readonly [source: string, name: string]> = [
  ['systemd/softphone-backend.service', 'softphone-backend.service'],
  ['systemd/config.example.toml', 'config.example.toml'],
  ['systemd/nginx-softphone-backend-http.conf', 'nginx/softphone-backend-http.conf'],
  ['systemd/nginx-softphone-backend.conf', 'nginx/softphone-backend.conf'],
  ['systemd/fail2ban/filter.d/softphone-backend.conf', 'fail2ban/filter.d/softphone-backend.conf'],
  ['systemd/fail2ban/jail.d/softphone-backend.local', 'fail2ban/jail.d/softphone-backend.local'],
  ['systemd/logrotate/softphone-backend', 'logrotate/softphone-backend'],
]

export const releaseName = (target: Target) => `softphone-backend-${VERSION}-${target}`

function installText(target: Target): string {
  return `softphone-backend ${VERSION} (${target})

Install, as root, on a Linux box (Debian-based MikoPBX or any systemd distribution):

  sudo ./softphone-backend install             # or: install --mikopbx on a MikoPBX
  sudo softphone-backend uninstall              # keeps data and config; --purge removes them

install copies the binary to /usr/local/bin, creates the system user softphone-backend, writes
the systemd unit, /etc/softphone-backend/config.toml (if absent), the nginx snippets, logrotate
and fail2ban files, starts the service and waits until it is healthy. It prints what is left to
do (include the nginx snippets, reload nginx). Without systemd it says how to start by hand.
The other files here are the same ones, for installing by hand (README "Build and install by hand").
`
}

/**
 * The commit's time, so the same commit gives the same tarball bytes (reproducible-builds.org's
 * SOURCE_DATE_EPOCH); 0 outside a git checkout.
 */
function sourceDateEpoch(): number {
  const fromEnv = process.env.SOURCE_DATE_EPOCH
  if (fromEnv && /^\d+$/.test(fromEnv)) return Number(fromEnv)
  const git = Bun.spawnSync(['git', 'log', '-1', '--format=%ct'], { stdout: 'pipe', stderr: 'ignore' })
  const seconds = git.exitCode === 0 ? Number(git.stdout.toString().trim()) : 0
  return Number.isFinite(seconds) ? seconds : 0
}

/** The staged tree gets explicit modes, and tar pins order, times and owners, so only content matters. */
function writeTarball(target: Target, binary: string, outDir: string, epoch: number): string {
  const stage = mkdtempSync(join(tmpdir(), 'softphone-release-'))
  try {
    const top = join(stage, releaseName(target))
    stageFile(binary, join(top, 'softphone-backend'), 0o755)
    for (const [source, name] of TARBALL_FILES) stageFile(source, join(top, name), 0o644)
    writeFileSync(join(top, 'INSTALL'), installText(target))
    chmodSync(join(top, 'INSTALL'), 0o644)
    const tarball = join(outDir, `${releaseName(target)}.tar.gz`)
    run(['sh', '-c', 'tar -C "$1" --sort=name --format=gnu --mtime="@$2" --owner=0 --group=0 --numeric-owner -cf - "$3" | gzip -n > "$4"',
      'sh', stage, String(epoch), releaseName(target), tarball])
    return tarball
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
}

function stageFile(source: string, destination: string, mode: number): void {
  mkdirSync(dirname(destination), { recursive: true, mode: 0o755 })
  chmodSync(dirname(destination), 0o755)
  copyFileSync(source, destination)
  chmodSync(destination, mode)
}

function run(argv: string[]): void {
  const result = Bun.spawnSync(argv, { stdout: 'inherit', stderr: 'inherit' })
  if (result.exitCode !== 0) throw new Error(`${argv.join(' ')} failed with exit ${result.exitCode}`)
}

/** One `sha256sum -c` line per file, sorted by name in code-point order (no locale can reorder them). */
function writeChecksums(outDir: string, files: string[]): void {
  const lines = files
    .map((file) => basename(file))
    .sort()
    .map((name) => `${new Bun.CryptoHasher('sha256').update(readFileSync(join(outDir, name))).digest('hex')}  ${name}`)
  writeFileSync(join(outDir, 'SHA256SUMS'), `${lines.join('\n')}\n`)
}

async function release(targets: readonly Target[], outDir: string): Promise<void> {
  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })
  const epoch = sourceDateEpoch()
  const files: string[] = []
  for (const target of targets) {
    const binary = join(outDir, releaseName(target))
    await build(target, binary)
    files.push(binary, writeTarball(target, binary, outDir, epoch))
  }
  writeChecksums(outDir, files)
  console.log(`${join(outDir, 'SHA256SUMS')}  ${files.length} files, mtime @${epoch}`)
}

function optionValue(name: string): string | undefined {
  const index = process.argv.indexOf(name)
  return index === -1 ? undefined : process.argv[index + 1]
}

if (import.meta.main) {
  const targets = process.argv.includes('--host') ? [hostTarget()] : TARGETS
  if (process.argv.includes('--release')) {
    await release(targets, optionValue('--out') ?? 'dist/release')
  } else {
    for (const target of targets) await build(target)
  }
}
