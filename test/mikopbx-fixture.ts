/**
 * A small MikoPBX database with the real table and column names the MikoPBX directory, the
 * provider reader and the core API's admin login read (m_Sip, m_Extensions, m_Users,
 * m_PbxSettings), in rollback-journal mode as an appliance may run it.
 */
import { Database } from 'bun:sqlite'

export const FIXTURE_PEERS = {
  alice: { extension: '201', secret: 'Alice-sip-201', userId: 2, displayName: 'Alice Smith', mobile: '9123456789' },
  bob: { extension: '202', secret: 'Bob-sip-202', userId: 3, displayName: 'Bob Jones', mobile: '' },
  /** The WebRTC twin of 201: a peer of its own in m_Sip, but not a login name. */
  aliceWebRtc: { extension: '201-WS', secret: 'Alice-ws-201' },
  /** A provider trunk: type 'friend'. */
  trunk: { extension: 'SIP-1700000000', secret: 'Trunk-secret-1' },
  /** disabled = '1'. */
  carol: { extension: '203', secret: 'Carol-sip-203', userId: 4, displayName: 'Carol' },
  /** A peer with no m_Extensions row, as a hand-edited database may have. */
  orphan: { extension: '205', secret: 'Orphan-sip-205' },
} as const

/** Provider trunks beside `trunk` (outbound, enabled), one per registration_type and a disabled one. */
export const FIXTURE_PROVIDERS = {
  inbound: { uniqid: 'SIP-1700000001', host: 'in.provider.test', username: 'in-account' },
  none: { uniqid: 'SIP-1700000002', host: 'static.provider.test', username: 'static-account' },
  disabled: { uniqid: 'SIP-1700000003', host: 'old.provider.test', username: 'old-account' },
} as const

/** The web administrator in m_PbxSettings: the password in plaintext, as an older MikoPBX keeps it. */
export const FIXTURE_ADMIN = { login: 'admin', password: 'Web-admin-pass-1' } as const

const SCHEMA = `
  CREATE TABLE m_Users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT, username TEXT, language TEXT, avatar TEXT);
  CREATE TABLE m_Extensions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT, type TEXT, callerid TEXT, userid INTEGER,
    show_in_phonebook TEXT, public_access TEXT, is_general_user_number TEXT);
  CREATE TABLE m_Sip (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uniqid TEXT, disabled TEXT DEFAULT '0', extension TEXT, type TEXT,
    registration_type TEXT, host TEXT, port INTEGER, username TEXT, secret TEXT, transport TEXT, description TEXT);
  CREATE TABLE m_PbxSettings (key TEXT PRIMARY KEY, value TEXT);
`

export function buildMikoPbxFixture(path: string, { journalMode = 'DELETE' }: { journalMode?: 'DELETE' | 'WAL' } = {}): void {
  const db = new Database(path, { create: true })
  db.run(`PRAGMA journal_mode = ${journalMode}`)
  db.run(SCHEMA)
  const user = db.query('INSERT INTO m_Users (id, email, username, language, avatar) VALUES (?, ?, ?, ?, ?)')
  user.run(1, 'admin@example.test', 'Administrator', 'en-en', '')
  user.run(2, 'alice@example.test', 'Alice Smith', 'en-en', '')
  user.run(3, 'bob@example.test', 'Bob Jones', 'ru-ru', '')
  user.run(4, 'carol@example.test', 'Carol', 'en-en', '')
  // A user without any extension.
  user.run(5, 'nobody@example.test', 'No Extension', 'en-en', '')
  const extension = db.query('INSERT INTO m_Extensions (number, type, callerid, userid, show_in_phonebook, is_general_user_number) VALUES (?, ?, ?, ?, ?, ?)')
  const { alice, bob, carol } = FIXTURE_PEERS
  extension.run(alice.extension, 'SIP', alice.displayName, alice.userId, '1', '1')
  extension.run('+7 (912) 345-67-89', 'EXTERNAL', alice.displayName, alice.userId, '1', '0')
  extension.run(bob.extension, 'SIP', bob.displayName, bob.userId, '1', '1')
  extension.run(carol.extension, 'SIP', carol.displayName, carol.userId, '1', '1')
  extension.run('0000', 'EXTERNAL', 'Nobody', 5, '0', '0')
  extension.run('2000', 'QUEUE', 'Sales queue', null, '1', '0')
  extension.run('2001', 'IVR MENU', 'Main menu', null, '1', '0')
  const sip = db.query(
    'INSERT INTO m_Sip (uniqid, disabled, extension, type, registration_type, host, port, username, secret, transport, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  )
  const peer = (extension: string, secret: string, disabled = '0') =>
    sip.run(`SIP-PHONE-${extension}`, disabled, extension, 'peer', 'outbound', 'dynamic', 5060, extension, secret, 'udp', '')
  peer(alice.extension, alice.secret)
  peer(bob.extension, bob.secret)
  peer(FIXTURE_PEERS.aliceWebRtc.extension, FIXTURE_PEERS.aliceWebRtc.secret)
  peer(carol.extension, carol.secret, '1')
  peer(FIXTURE_PEERS.orphan.extension, FIXTURE_PEERS.orphan.secret)
  const { trunk } = FIXTURE_PEERS
  sip.run(trunk.extension, '0', trunk.extension, 'friend', 'outbound', 'sip.provider.test', 5060, 'account-1', trunk.secret, 'udp', 'Provider')
  const { inbound, none, disabled } = FIXTURE_PROVIDERS
  sip.run(inbound.uniqid, '0', inbound.uniqid, 'friend', 'inbound', inbound.host, 5060, inbound.username, 'In-secret-1', 'udp', 'Inbound')
  sip.run(none.uniqid, '0', none.uniqid, 'friend', 'none', none.host, 5060, none.username, 'Static-secret-1', 'udp', 'Static')
  sip.run(disabled.uniqid, '1', disabled.uniqid, 'friend', 'outbound', disabled.host, 5060, disabled.username, 'Old-secret-1', 'udp', 'Old')
  const setting = db.query('INSERT INTO m_PbxSettings (key, value) VALUES (?, ?)')
  setting.run('WebAdminLogin', FIXTURE_ADMIN.login)
  setting.run('WebAdminPassword', FIXTURE_ADMIN.password)
  setting.run('Name', 'Test PBX')
  db.close()
}

/** SQL a writer (the PBX's web interface, in tests a subprocess) runs; values are bound, never spliced. */
export const PBX_CHANGES = {
  setSecret: 'UPDATE m_Sip SET secret = ?2 WHERE extension = ?1',
  disable: "UPDATE m_Sip SET disabled = '1' WHERE extension = ?1",
  remove: 'DELETE FROM m_Sip WHERE extension = ?1',
  addPeer: "INSERT INTO m_Sip (uniqid, disabled, extension, type, secret) VALUES ('SIP-PHONE-' || ?1, '0', ?1, 'peer', ?2)",
  setAdminPassword: "UPDATE m_PbxSettings SET value = ?1 WHERE key = 'WebAdminPassword'",
} as const
