/**
 * Builds the release binaries into dist/ (README "Build and install by hand"). `bun run build.ts` builds every target;
 * `--host` only the one this machine runs. Identifiers are not minified: Elysia macros need names.
 */
import { rmSync } from 'node:fs'
import { VERSION } from './src/version'

const TARGETS = ['linux-x64-baseline', 'linux-x64', 'linux-arm64'] as const
type Target = (typeof TARGETS)[number]

export function hostTarget(): Target {
  if (process.platform !== 'linux') throw new Error(`release targets are Linux only, not ${process.platform}`)
  return process.arch === 'arm64' ? 'linux-arm64' : 'linux-x64'
}

export const binaryPath = (target: Target) => `dist/softphone-backend-${target}`

async function build(target: Target): Promise<void> {
  const outfile = binaryPath(target)
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

if (import.meta.main) {
  const targets = process.argv.includes('--host') ? [hostTarget()] : TARGETS
  for (const target of targets) await build(target)
}
