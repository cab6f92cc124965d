/**
 * The MikoPBX directory (README "Running on MikoPBX"): the appliance's own SIP extensions log in
 * with their extension and SIP secret, as with the legacy PHP module, read from the PBX's
 * database. Only user extensions (`m_Sip.type = 'peer'`) that are not disabled may log in, which
 * the legacy module did not check; a `-WS` peer is the WebRTC twin of an extension, not a user
 * of its own. Every MikoPBX user is in the default space (README "Spaces"): the PBX has no spaces.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { digestHa1, type DigestAlgorithm } from '../auth/digest'
import type { Directory, DirectoryUser } from './directory'
import type { PbxDatabaseFile } from './mikopbx-file'

/**
 * Legacy tokens all carry `sub` 1, the id the PHP module gave everyone; it is also the id of a
 * peer without a SIP row in `m_Extensions`, which MikoPBX's web interface never leaves behind.
 */
export const FALLBACK_USER_ID = 1
const MOBILE_DIGITS = 10

interface PeerRow {
  extension: string
  secret: string | null
  disabled: string | number | null
  user_id: number | null
  caller_id: string | null
  external_number: string | null
}

/** One row per login name; `-WS` peers and provider trunks (type 'friend') are not login names. */
const PEER_SELECT = `
  SELECT s.extension, s.secret, s.disabled, e.userid AS user_id, e.callerid AS caller_id,
    (SELECT x.number FROM m_Extensions x
      WHERE x.type = 'EXTERNAL' AND x.userid = e.userid ORDER BY x.id LIMIT 1) AS external_number
  FROM m_Sip s
  LEFT JOIN m_Extensions e ON e.id = (SELECT id FROM m_Extensions WHERE number = s.extension AND type = 'SIP' ORDER BY id LIMIT 1)
  WHERE s.type = 'peer' AND s.extension NOT LIKE '%-WS'`

const BY_EXTENSION = `${PEER_SELECT} AND s.extension = ? ORDER BY s.id LIMIT 1`
const BY_USER_ID = `${PEER_SELECT} AND e.userid = ? ORDER BY s.id LIMIT 1`

/** What a login needs of a peer; null for a name that can't log in (unknown, disabled, a trunk, no secret). */
interface LoginPeer {
  user: DirectoryUser
  secretDigest: Buffer
}

/** Bounds the remembered login names, known or not; past it, the memory starts over. */
const MAX_REMEMBERED = 10_000

export class MikoPbxDirectory implements Directory {
  /** Compared against when there is no usable peer, so every refusal does the same work. */
  private readonly dummyDigest = sha256(randomBytes(32))
  /** Login peers by name, as of `generation` of the file: every change to the file forgets them all. */
  private readonly loginPeers = new Map<string, LoginPeer | null>()
  private generation: number

  constructor(private readonly file: PbxDatabaseFile) {
    this.generation = file.generation
  }

  /**
   * Both sides are hashed first, so the constant-time comparison sees equal lengths and the
   * secret's length doesn't leak; unknown, disabled, trunk and wrong-secret logins all do the same
   * lookup, one hash and one comparison.
   */
  authenticateNow(username: string, password: string): DirectoryUser | null {
    const peer = this.loginPeer(username)
    const matches = timingSafeEqual(sha256(Buffer.from(password, 'utf8')), peer?.secretDigest ?? this.dummyDigest)
    return peer && matches ? peer.user : null
  }

  async authenticate(username: string, password: string): Promise<DirectoryUser | null> {
    return this.authenticateNow(username, password)
  }

  /**
   * From memory while the file is unchanged: the watch on it (store/change-watch.ts) reports a
   * PBX change within a second. A missing file or a held lock fails here as a read would.
   */
  private loginPeer(username: string): LoginPeer | null {
    this.file.ensureReadable()
    if (this.generation !== this.file.generation) {
      this.loginPeers.clear()
      this.generation = this.file.generation
    }
    const remembered = this.loginPeers.get(username)
    if (remembered !== undefined) return remembered
    const generation = this.file.generation
    const row = this.peer(BY_EXTENSION, username)
    const usable = row !== null && !isDisabled(row) && typeof row.secret === 'string' && row.secret !== ''
    const peer = usable ? { user: toUser(row), secretDigest: sha256(Buffer.from(row.secret!, 'utf8')) } : null
    // A change seen during the read (a reopen) may postdate the row: use it once, remember nothing.
    if (generation === this.file.generation) {
      if (this.loginPeers.size >= MAX_REMEMBERED) this.loginPeers.clear()
      this.loginPeers.set(username, peer)
    }
    return peer
  }

  /**
   * HTTP Digest's HA1, computed from the plaintext SIP secret (README "HTTP Digest"): MikoPBX
   * stores nothing else, and the realm is ours, not the PBX's. Null for a name that can't log in.
   */
  digestHa1(username: string, realm: string, algorithm: DigestAlgorithm): string | null {
    this.file.ensureReadable()
    const row = this.peer(BY_EXTENSION, username)
    if (row === null || isDisabled(row) || typeof row.secret !== 'string' || row.secret === '') return null
    return digestHa1(algorithm, username, realm, row.secret)
  }

  findById(id: number): DirectoryUser | null {
    const row = this.peer(BY_USER_ID, id)
    return row ? toUser(row) : null
  }

  findByUsername(username: string): DirectoryUser | null {
    const row = this.peer(BY_EXTENSION, username)
    return row ? toUser(row) : null
  }

  /** `db.query` caches the prepared statement per connection, and a reopened file is a new connection. */
  private peer(sql: string, key: string | number): PeerRow | null {
    return this.file.read((db) => db.query<PeerRow, [string | number]>(sql).get(key))
  }
}

const sha256 = (bytes: Buffer): Buffer => createHash('sha256').update(bytes).digest()

/** MikoPBX stores '0'/'1' as text; an integer 1 is disabled too. */
const isDisabled = (row: PeerRow): boolean => String(row.disabled) === '1'

function toUser(row: PeerRow): DirectoryUser {
  return {
    id: row.user_id ?? FALLBACK_USER_ID,
    username: row.extension,
    displayName: row.caller_id ?? '',
    role: 'user',
    mobile: (row.external_number ?? '').replace(/\D/g, '').slice(-MOBILE_DIGITS),
    disabled: isDisabled(row),
  }
}
