import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { loadOrCreateSecretKey, readSecretKey, SecretKeyError } from '../../src/tokens/secret-key'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'softphone-key-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const write = (content: string, mode = 0o600) => {
  const path = join(dir, 'secret.key')
  writeFileSync(path, content, { mode })
  chmodSync(path, mode)
  return path
}

describe('a missing key file', () => {
  test('is generated: 64 lowercase hex characters, mode 0600, and used as ASCII bytes', () => {
    const path = join(dir, 'secret.key')
    const { key, generated } = loadOrCreateSecretKey(path)
    expect(generated).toBe(true)
    const text = readFileSync(path, 'latin1').trim()
    expect(text).toMatch(/^[0-9a-f]{64}$/)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(Buffer.from(key).toString('latin1')).toBe(text)
    expect(readdirSync(dir)).toEqual(['secret.key'])
  })

  test('is kept on the next start', () => {
    const path = join(dir, 'secret.key')
    const first = loadOrCreateSecretKey(path)
    const second = loadOrCreateSecretKey(path)
    expect(second.generated).toBe(false)
    expect(Buffer.from(second.key)).toEqual(Buffer.from(first.key))
  })

  test('racing starts in separate processes end with one key', async () => {
    const path = join(dir, 'secret.key')
    const module = resolve('src/tokens/secret-key.ts')
    const script = `import { loadOrCreateSecretKey } from '${module}'; process.stdout.write(Buffer.from(loadOrCreateSecretKey('${path}').key).toString())`
    const runs = Array.from({ length: 8 }, () =>
      Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' }),
    )
    const keys = await Promise.all(runs.map((child) => new Response(child.stdout).text()))
    expect(new Set(keys).size).toBe(1)
    expect(keys[0]).toBe(readFileSync(path, 'latin1').trim())
    expect(readdirSync(dir)).toEqual(['secret.key'])
  })
})

describe('an existing key file', () => {
  test('with a trailing newline and spaces is accepted as the legacy module wrote it', () => {
    const text = 'ab'.repeat(32)
    const { key } = loadOrCreateSecretKey(write(`${text}\n  \n`))
    expect(Buffer.from(key).toString('latin1')).toBe(text)
  })

  for (const [name, content, mode, message] of [
    ['empty', '', 0o600, /is empty/],
    ['short', 'ab'.repeat(31), 0o600, /64 hex characters/],
    ['not hex', 'zz'.repeat(32), 0o600, /64 hex characters/],
    ['too long', 'ab'.repeat(33), 0o600, /64 hex characters/],
    ['world-readable', 'ab'.repeat(32), 0o644, /chmod 600/],
    ['world-writable', 'ab'.repeat(32), 0o602, /chmod 600/],
  ] as const) {
    test(`that is ${name} stops the start with a clear error`, () => {
      const path = write(content, mode)
      expect(() => loadOrCreateSecretKey(path)).toThrow(SecretKeyError)
      expect(() => loadOrCreateSecretKey(path)).toThrow(message)
    })
  }

  test('that is a symlink stops the start, even to a good key', () => {
    const target = join(dir, 'real.key')
    writeFileSync(target, 'ab'.repeat(32), { mode: 0o600 })
    const link = join(dir, 'secret.key')
    symlinkSync(target, link)
    expect(() => loadOrCreateSecretKey(link)).toThrow(/symlink/)
  })

  test('that is a directory stops the start', () => {
    const path = join(dir, 'secret.key')
    Bun.spawnSync(['mkdir', '-m', '700', path])
    expect(() => loadOrCreateSecretKey(path)).toThrow(/not a regular file/)
  })

  test('errors never include the key text', () => {
    const path = write(`${'ab'.repeat(31)}zz`)
    try {
      loadOrCreateSecretKey(path)
      throw new Error('should have thrown')
    } catch (error) {
      expect((error as Error).message).not.toContain('abab')
    }
  })
})

describe('readSecretKey, for config check', () => {
  test('answers null for a missing file and creates nothing', () => {
    expect(readSecretKey(join(dir, 'secret.key'))).toBeNull()
    expect(readdirSync(dir)).toEqual([])
  })

  test('makes the same checks as loadOrCreateSecretKey', () => {
    const path = write('ab'.repeat(32), 0o644)
    expect(() => readSecretKey(path)).toThrow(SecretKeyError)
    expect(() => readSecretKey(path)).toThrow(`chmod 600 ${path}`)
    chmodSync(path, 0o600)
    expect(Buffer.from(readSecretKey(path)!).toString('latin1')).toBe('ab'.repeat(32))
  })
})
