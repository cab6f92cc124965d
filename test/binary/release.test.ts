/**
 * `bun run build.ts --release --host` (README "Release artifacts"): the host target's binary and
 * tarball, SHA256SUMS, and the same bytes from two builds of one commit.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { VERSION } from '../../src/version'

const TARGET = process.arch === 'arm64' ? 'linux-arm64' : 'linux-x64'
const NAME = `softphone-backend-${VERSION}-${TARGET}`
let root: string
let entries: TarEntry[]

function buildRelease(out: string): void {
  const result = Bun.spawnSync(['bun', 'run', 'build.ts', '--release', '--host', '--out', out], { stdout: 'pipe', stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(`release build failed: ${result.stderr.toString()}`)
}

interface TarEntry {
  name: string
  mode: number
  uid: number
  gid: number
  mtime: number
  type: string
  data: Uint8Array
}

/** The ustar/GNU headers of an uncompressed tar: 512-byte blocks, octal numeric fields. */
function tarEntries(tar: Uint8Array): TarEntry[] {
  const text = (from: number, length: number) => new TextDecoder().decode(tar.subarray(from, from + length)).replace(/\0.*$/s, '')
  const entries: TarEntry[] = []
  for (let offset = 0; offset + 512 <= tar.length && tar[offset] !== 0; ) {
    const octal = (from: number, length: number) => parseInt(text(offset + from, length).trim() || '0', 8)
    const size = octal(124, 12)
    entries.push({ name: text(offset, 100), mode: octal(100, 8), uid: octal(108, 8), gid: octal(116, 8), mtime: octal(136, 12), type: text(offset + 156, 1), data: tar.subarray(offset + 512, offset + 512 + size) })
    offset += 512 + Math.ceil(size / 512) * 512
  }
  return entries
}

const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex')

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'softphone-release-test-'))
  buildRelease(join(root, 'a'))
  buildRelease(join(root, 'b'))
  entries = tarEntries(gunzipSync(readFileSync(join(root, 'a', `${NAME}.tar.gz`))))
}, 120_000)

afterAll(() => rmSync(root, { recursive: true, force: true }))

describe('release artifacts', () => {
  test('dist/release holds the binary, its tarball and SHA256SUMS', () => {
    expect(readdirSync(join(root, 'a')).sort()).toEqual(['SHA256SUMS', NAME, `${NAME}.tar.gz`])
    const binary = Bun.spawnSync([join(root, 'a', NAME), '--version'], { stdout: 'pipe' })
    expect(binary.stdout.toString().trim()).toBe(VERSION)
  })

  test('the tarball holds the binary, the shipped files and INSTALL, with pinned modes, owners and times', () => {
    const listing = entries.map((entry) => `${entry.type === '5' ? 'd' : '-'}${entry.mode.toString(8)} ${entry.name}`)
    expect(listing).toEqual([
      `d755 ${NAME}/`,
      `-644 ${NAME}/INSTALL`,
      `-644 ${NAME}/config.example.toml`,
      `d755 ${NAME}/fail2ban/`,
      `d755 ${NAME}/fail2ban/filter.d/`,
      `-644 ${NAME}/fail2ban/filter.d/softphone-backend.conf`,
      `d755 ${NAME}/fail2ban/jail.d/`,
      `-644 ${NAME}/fail2ban/jail.d/softphone-backend.local`,
      `d755 ${NAME}/logrotate/`,
      `-644 ${NAME}/logrotate/softphone-backend`,
      `d755 ${NAME}/nginx/`,
      `-644 ${NAME}/nginx/softphone-backend-http.conf`,
      `-644 ${NAME}/nginx/softphone-backend.conf`,
      `-755 ${NAME}/softphone-backend`,
      `-644 ${NAME}/softphone-backend.service`,
    ])
    const commitTime = Number(Bun.spawnSync(['git', 'log', '-1', '--format=%ct'], { stdout: 'pipe' }).stdout.toString().trim())
    for (const entry of entries) expect({ name: entry.name, uid: entry.uid, gid: entry.gid, mtime: entry.mtime }).toEqual({ name: entry.name, uid: 0, gid: 0, mtime: commitTime })
  })

  test('the tarball carries the binary next to it and the files of systemd/, byte for byte', () => {
    const content = (name: string) => sha256(entries.find((entry) => entry.name === `${NAME}/${name}`)!.data)
    expect(content('softphone-backend')).toBe(sha256(readFileSync(join(root, 'a', NAME))))
    expect(content('softphone-backend.service')).toBe(sha256(readFileSync('systemd/softphone-backend.service')))
    expect(content('nginx/softphone-backend.conf')).toBe(sha256(readFileSync('systemd/nginx-softphone-backend.conf')))
    expect(new TextDecoder().decode(entries.find((entry) => entry.name === `${NAME}/INSTALL`)!.data)).toContain('sudo ./softphone-backend install')
  })

  test('SHA256SUMS has one sha256sum -c line per file, and sha256sum -c accepts it', () => {
    const sums = readFileSync(join(root, 'a', 'SHA256SUMS'), 'utf8')
    expect(sums).toBe(
      [NAME, `${NAME}.tar.gz`].map((file) => `${sha256(readFileSync(join(root, 'a', file)))}  ${file}\n`).join(''),
    )
    const check = Bun.spawnSync(['sha256sum', '-c', 'SHA256SUMS'], { cwd: join(root, 'a'), stdout: 'pipe', stderr: 'pipe' })
    expect(check.exitCode).toBe(0)
  })

  test('two builds of one commit give identical bytes', () => {
    for (const file of ['SHA256SUMS', NAME, `${NAME}.tar.gz`]) {
      expect({ file, sha256: sha256(readFileSync(join(root, 'b', file))) }).toEqual({ file, sha256: sha256(readFileSync(join(root, 'a', file))) })
    }
  })
})
