-- Tessera's SQLite schema. Times are INTEGER milliseconds since the Unix epoch (UTC).
--
-- No foreign keys: users and sessions may live in different stores, and the revocation log
-- outlives the sessions it names (a verifier must still learn of a revocation after purge).

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    -- The case-folded username; uniqueness and look-ups use it.
    username_key  TEXT    NOT NULL UNIQUE,
    -- The username as registered.
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- SHA-256 of the session token. The token itself is never written anywhere.
    token_hash      BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_id         TEXT    NOT NULL,
    transport       TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    revoked_at      INTEGER
);

CREATE INDEX sessions_by_user ON sessions (user_id);
-- When a session ends, whichever expiry comes first; purging walks this index.
CREATE INDEX sessions_by_end ON sessions (min(idle_expires_at, expires_at));

CREATE TABLE revocations (
    -- AUTOINCREMENT: a sequence is never reused, even after the newest entries are trimmed.
    sequence   INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    session_id TEXT    NOT NULL,
    user_id    TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL
);

CREATE INDEX revocations_by_time ON revocations (revoked_at);

CREATE TABLE login_failures (
    -- `ThrottleKey::storage_key`, e.g. `account:alice` or `address:192.0.2.7`.
    key          TEXT    NOT NULL PRIMARY KEY,
    count        INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    -- When the window closes under the rule it was opened with; only pruning reads it.
    window_end   INTEGER NOT NULL
);

CREATE INDEX login_failures_by_end ON login_failures (window_end);
