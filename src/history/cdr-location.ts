/** Which file holds MikoPBX's call detail records (README "Call history"). */
import { readFileSync } from 'node:fs'

/** Where MikoPBX keeps its own settings, `cdrDatabase.dbfile` among them. */
export const MIKOPBX_SETTINGS_PATH = '/etc/inc/mikopbx-settings.json'

/**
 * The configured `cdr_db` when set, else MikoPBX's `cdrDatabase.dbfile`, else null (no call-history
 * source). A missing or unreadable settings file is not an error: the box may not be a MikoPBX.
 */
export function cdrDatabasePath(configured: string, settingsPath: string = MIKOPBX_SETTINGS_PATH): string | null {
  if (configured !== '') return configured
  let settings: unknown
  try {
    settings = JSON.parse(readFileSync(settingsPath, 'utf8'))
  } catch {
    return null
  }
  const dbfile = (settings as { cdrDatabase?: { dbfile?: unknown } } | null)?.cdrDatabase?.dbfile
  return typeof dbfile === 'string' && dbfile.startsWith('/') ? dbfile : null
}
