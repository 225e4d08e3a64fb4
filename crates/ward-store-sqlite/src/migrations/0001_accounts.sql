-- Accounts, devices and their tokens, registration tokens, UIA sessions.
-- Tokens are stored only as SHA-256 hashes; no client IP address is stored anywhere.

CREATE TABLE accounts (
    user_id       TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT,
    is_admin      INTEGER NOT NULL DEFAULT 0,
    created_ms    INTEGER NOT NULL,
    deactivated   INTEGER NOT NULL DEFAULT 0,
    display_name  TEXT,
    avatar_url    TEXT
) STRICT;

CREATE TABLE devices (
    user_id      TEXT NOT NULL REFERENCES accounts (user_id),
    device_id    TEXT NOT NULL,
    display_name TEXT,
    created_ms   INTEGER NOT NULL,
    last_seen_ms INTEGER,
    PRIMARY KEY (user_id, device_id)
) STRICT;

-- One row per live token pair. After a refresh the new pair points at the pair it replaced
-- (`replaces`); the old pair is deleted when the new one is first used.
CREATE TABLE access_tokens (
    id                INTEGER PRIMARY KEY,
    access_hash       BLOB NOT NULL UNIQUE,
    refresh_hash      BLOB UNIQUE,
    user_id           TEXT NOT NULL,
    device_id         TEXT NOT NULL,
    access_expires_ms INTEGER,
    replaces          INTEGER,
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);

CREATE TABLE registration_tokens (
    token        TEXT PRIMARY KEY NOT NULL,
    uses_allowed INTEGER,
    completed    INTEGER NOT NULL DEFAULT 0,
    expires_ms   INTEGER,
    created_ms   INTEGER NOT NULL
) STRICT;

CREATE TABLE uia_sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    purpose    TEXT NOT NULL,
    user_id    TEXT,
    completed  TEXT NOT NULL,
    registration_token TEXT,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX uia_sessions_by_age ON uia_sessions (created_ms);
CREATE INDEX uia_sessions_by_user ON uia_sessions (user_id);
