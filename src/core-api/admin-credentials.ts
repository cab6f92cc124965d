/**
 * Who may use the core API from another host (README "MikoPBX core-compatible API"): on MikoPBX
 * its web administrator (`m_PbxSettings` `WebAdminLogin` / `WebAdminPassword`, the password in
 * plaintext or as a bcrypt hash); otherwise an admin or superadmin of the embedded directory.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Directory } from '../directory/directory'
import type { PbxDatabaseFile } from '../directory/mikopbx-file'

export interface AdminCredentials {
  /** The admin's login name when the pair is right, else null; about the same time either way. */
  verify(login: string, password: string): Promise<string | null>
}

/** `$2y$` is PHP's name for bcrypt; `$2a$`/`$2b$` are the same algorithm. */
const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/

interface SettingRow {
  key: string
  value: string | null
}

const SETTINGS = "SELECT key, value FROM m_PbxSettings WHERE key IN ('WebAdminLogin', 'WebAdminPassword')"

export class MikoPbxAdminCredentials implements AdminCredentials {
  /** Checked against when no bcrypt hash is stored, so a wrong login costs what a wrong password does. */
  private readonly dummyHash = Bun.password.hash(randomBytes(16).toString('hex'), { algorithm: 'bcrypt', cost: 10 })

  constructor(private readonly file: PbxDatabaseFile) {}

  async verify(login: string, password: string): Promise<string | null> {
    const { storedLogin, storedPassword } = this.settings()
    const loginMatches = storedLogin !== '' && sameText(login, storedLogin)
    const passwordMatches = BCRYPT.test(storedPassword)
      ? await Bun.password.verify(password, storedPassword)
      : (await Bun.password.verify(password, await this.dummyHash), storedPassword !== '' && sameText(password, storedPassword))
    return loginMatches && passwordMatches ? storedLogin : null
  }

  /** Read at each login, so a password changed in the web interface applies at once. */
  private settings(): { storedLogin: string; storedPassword: string } {
    const rows = this.file.read((db) => {
      try {
        return db.query<SettingRow, []>(SETTINGS).all()
      } catch (error) {
        // A database without m_PbxSettings has no web administrator to log in as; outages go on.
        if (/no such table/.test((error as Error).message)) return []
        throw error
      }
    })
    const value = (key: string) => rows.find((row) => row.key === key)?.value ?? ''
    return { storedLogin: value('WebAdminLogin'), storedPassword: value('WebAdminPassword') }
  }
}

export class DirectoryAdminCredentials implements AdminCredentials {
  constructor(private readonly directory: Directory) {}

  async verify(login: string, password: string): Promise<string | null> {
    const user = await this.directory.authenticate(login, password)
    return user && (user.role === 'admin' || user.role === 'superadmin') ? user.username : null
  }
}

/** Constant-time equality of two texts of any lengths: their SHA-256 digests are compared. */
function sameText(given: string, expected: string): boolean {
  return timingSafeEqual(sha256(given), sha256(expected))
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest()
