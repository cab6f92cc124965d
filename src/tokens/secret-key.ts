/**
 * The HMAC signing key file (README "Migrating from ModuleSoftphoneBackend"). Compatible with
 * ModuleSoftphoneBackend's `db/secret.key`: the key is the ASCII bytes of the 64-character hex
 * text, not the bytes it decodes to.
 */
import { closeSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname } from 'node:path'

const KEY_TEXT = /^[0-9a-fA-F]{64}$/

export class SecretKeyError extends Error {
  override name = 'SecretKeyError'
}

export interface SecretKey {
  key: Uint8Array
  /** True when this start created the file (worth a KEY_GENERATED event). */
  generated: boolean
}

export function loadOrCreateSecretKey(path: string): SecretKey {
  const existing = readSecretKey(path)
  if (existing) return { key: existing, generated: false }
  const created = createKeyFile(path)
  if (created) return { key: created, generated: true }
  // Another process won the race between our check and our link: use its key.
  return { key: readKeyFile(path), generated: false }
}

/** The key, with every check `serve` makes; null when there is no file yet. Never creates one (`config check`). */
export function readSecretKey(path: string): Uint8Array | null {
  return exists(path) ? readKeyFile(path) : null
}

function exists(path: string): boolean {
  try {
    lstatSync(path)
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw new SecretKeyError(`cannot inspect secret key file ${path}: ${(error as Error).message}`)
  }
}

function readKeyFile(path: string): Uint8Array {
  const stat = lstatSync(path)
  if (stat.isSymbolicLink()) throw new SecretKeyError(`secret key file ${path} is a symlink; point secret_key_path at the real file`)
  if (!stat.isFile()) throw new SecretKeyError(`secret key file ${path} is not a regular file`)
  if (stat.mode & 0o007) {
    const mode = (stat.mode & 0o777).toString(8)
    throw new SecretKeyError(`secret key file ${path} is accessible to other users (mode 0${mode}); run: chmod 600 ${path}`)
  }
  let text: string
  try {
    text = readFileSync(path, 'latin1').trimEnd()
  } catch (error) {
    throw new SecretKeyError(`cannot read secret key file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  }
  if (text.length === 0) throw new SecretKeyError(`secret key file ${path} is empty; delete it to generate a new key`)
  if (!KEY_TEXT.test(text)) throw new SecretKeyError(`secret key file ${path} must hold 64 hex characters`)
  return Buffer.from(text, 'latin1')
}

/** Temp file, fsync, then link(2), which fails if the name exists: two racing starts keep one key. */
function createKeyFile(path: string): Uint8Array | null {
  const text = randomBytes(32).toString('hex')
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const fd = openSync(temp, 'wx', 0o600)
    try {
      writeSync(fd, `${text}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    try {
      linkSync(temp, path)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return null
      throw error
    }
    syncDirectory(dirname(path))
    return Buffer.from(text, 'latin1')
  } catch (error) {
    throw new SecretKeyError(`cannot create secret key file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`)
  } finally {
    try {
      unlinkSync(temp)
    } catch {}
  }
}

function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
