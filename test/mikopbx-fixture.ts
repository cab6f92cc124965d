/**
 * A small MikoPBX database with the real table and column names the MikoPBX directory reads
 * (m_Sip, m_Extensions, m_Users), in rollback-journal mode as an appliance may run it.
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

const SCHEMA = `
  CREATE TABLE m_Users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT, username TEXT, language TEXT, avatar TEXT);
  CREATE TABLE m_Extensions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, number TEXT, type TEXT, callerid TEXT, userid INTEGER,
    show_in_phonebook TEXT, public_access TEXT, is_general_user_number TEXT);
  CREATE TABLE m_Sip (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uniqid TEXT, disabled TEXT DEFAULT '0', extension TEXT, type TEXT,
    registration_type TEXT, host TEXT, port INTEGER, username TEXT, secret TEXT, transport TEXT, description TEXT);
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
  db.close()
}

/** SQL a writer (the PBX's web interface, in tests a subprocess) runs; values are bound, never spliced. */
export const PBX_CHANGES = {
  setSecret: 'UPDATE m_Sip SET secret = ?2 WHERE extension = ?1',
  disable: "UPDATE m_Sip SET disabled = '1' WHERE extension = ?1",
  remove: 'DELETE FROM m_Sip WHERE extension = ?1',
  addPeer: "INSERT INTO m_Sip (uniqid, disabled, extension, type, secret) VALUES ('SIP-PHONE-' || ?1, '0', ?1, 'peer', ?2)",
} as const
