/**
 * MikoPBX's provider trunks (`m_Sip` rows of type 'friend'), read-only through the same file as
 * the directory, for getRegistry (README "MikoPBX core-compatible API").
 */
import type { Provider, ProviderSource } from '../pbx/peer-state'
import type { PbxDatabaseFile } from './mikopbx-file'

interface ProviderRow {
  uniqid: string | null
  disabled: string | number | null
  host: string | null
  username: string | null
  registration_type: string | null
}

const PROVIDERS = "SELECT uniqid, disabled, host, username, registration_type FROM m_Sip WHERE type = 'friend' ORDER BY id"

export class MikoPbxProviders implements ProviderSource {
  constructor(private readonly file: PbxDatabaseFile) {}

  list(): Provider[] {
    const rows = this.file.read((db) => db.query<ProviderRow, []>(PROVIDERS).all())
    return rows.filter((row) => row.uniqid).map(toProvider)
  }
}

function toProvider(row: ProviderRow): Provider {
  return {
    uniqid: row.uniqid!,
    // MikoPBX stores '0'/'1' as text.
    disabled: String(row.disabled) === '1',
    host: row.host ?? '',
    username: row.username ?? '',
    registrationType: row.registration_type ?? 'outbound',
  }
}
