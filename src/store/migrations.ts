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
]
