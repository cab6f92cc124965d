/** Append-only: a released migration never changes. Index + 1 is the schema version. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'superadmin')),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    mobile        TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
  );
  CREATE TABLE revoked_tokens (
    jti        TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
  CREATE TABLE legacy_not_before (
    username   TEXT    PRIMARY KEY,
    not_before INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  `
  -- A login's refresh-token family (README "Sessions and refresh rotation"). Refresh token ids are
  -- stored only as SHA-256 hashes; the current token can be re-minted for the compatible-mode grace
  -- because its id derives from its predecessor's through the signing key.
  CREATE TABLE sessions (
    id               TEXT    PRIMARY KEY,
    username         TEXT    NOT NULL,
    role             TEXT    NOT NULL,
    user_id          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER NOT NULL,
    ip               TEXT    NOT NULL,
    user_agent       TEXT    NOT NULL,
    current_hash     TEXT    NOT NULL,
    current_iat      INTEGER NOT NULL,
    current_exp      INTEGER NOT NULL,
    previous_hash    TEXT,
    revoked_at       INTEGER,
    revoke_reason    TEXT
  ) WITHOUT ROWID;
  CREATE INDEX sessions_by_user ON sessions (username);
  CREATE INDEX sessions_by_expiry ON sessions (current_exp);
  `,
  `
  -- Login failures per "account:<ip>:<user>" and per "ip:<ip>" (README "Login throttling").
  CREATE TABLE login_failures (
    key           TEXT    PRIMARY KEY,
    failures      INTEGER NOT NULL,
    last_failure  INTEGER NOT NULL,
    blocked_until INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  `
  -- HTTP Digest's HA1 = H(username:realm:password) per user, realm and algorithm, written whenever a
  -- password is set (README "HTTP Digest"): argon2 hashes can't answer a Digest challenge.
  CREATE TABLE digest_ha1 (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    realm     TEXT    NOT NULL,
    algorithm TEXT    NOT NULL CHECK (algorithm IN ('SHA-256', 'MD5')),
    ha1       TEXT    NOT NULL,
    PRIMARY KEY (user_id, realm, algorithm)
  ) WITHOUT ROWID;
  `,
  `
  -- API keys (README "API keys"): only a SHA-256 of each key is stored, with its first characters
  -- for recognition. Self-made keys carry the address they are bound to and their idle limit;
  -- admin-made ones have neither. Rows are not tied to the users table: MikoPBX's users live elsewhere.
  CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL,
    username     TEXT    NOT NULL,
    name         TEXT    NOT NULL DEFAULT '',
    hash         TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at   INTEGER,
    idle_minutes INTEGER,
    bound_ip     TEXT,
    created_by   TEXT    NOT NULL,
    revoked_at   INTEGER
  );
  CREATE INDEX api_keys_by_user ON api_keys (username);
  `,
  `
  -- Spaces (README "Spaces"): a SIP domain whose users are refused once expire_at (unix seconds)
  -- has passed. Row 1 is the default space; existing and MikoPBX users belong to it. No REFERENCES
  -- on users.space_id: SQLite adds a referencing column only with a NULL default, so
  -- spaces/space-store.ts refuses to remove a space that still has users.
  CREATE TABLE spaces (
    id         INTEGER PRIMARY KEY,
    domain     TEXT    NOT NULL UNIQUE,
    expire_at  INTEGER,
    created_at INTEGER NOT NULL
  );
  INSERT INTO spaces (id, domain, expire_at, created_at) VALUES (1, 'default', NULL, unixepoch());
  ALTER TABLE users ADD COLUMN space_id INTEGER NOT NULL DEFAULT 1;
  CREATE INDEX users_by_space ON users (space_id);
  `,
]
