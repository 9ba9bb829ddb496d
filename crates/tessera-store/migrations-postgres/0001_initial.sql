-- Tessera's PostgreSQL schema: the meaning of the SQLite schema (`../migrations/`) in native
-- types.
--
-- Times are BIGINT milliseconds since the Unix epoch (UTC), not timestamptz: the store traits
-- hand over integer milliseconds, and integers round-trip and compare exactly as in every
-- other backend. Key times are Unix seconds, as JOSE has them. Hashes are BYTEA with their
-- length checked. Text keys use the "C" collation: byte order, as SQLite compares them, and
-- no locale cost in their indexes.
--
-- No foreign keys: users and sessions may live in different stores, and the revocation log
-- outlives the sessions it names (a verifier must still learn of a revocation after purge).
--
-- `insertion_order` columns stand in for SQLite's rowid: rows created in the same instant
-- list in the order they were added.

CREATE TABLE users (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- The case-folded username; uniqueness and look-ups use it.
    username_key    TEXT COLLATE "C" NOT NULL UNIQUE,
    -- The username as registered.
    username        TEXT   NOT NULL,
    password_hash   TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    insertion_order BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE sessions (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- SHA-256 of the session token. The token itself is never written anywhere.
    token_hash      BYTEA  NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    user_id         TEXT COLLATE "C" NOT NULL,
    transport       TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    idle_expires_at BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    -- TEXT, not INET: the store keeps the address exactly as the engine recorded it.
    ip              TEXT,
    user_agent      TEXT,
    revoked_at      BIGINT
);

CREATE INDEX sessions_by_user ON sessions (user_id);
-- When a session ends, whichever expiry comes first; purging walks this index.
CREATE INDEX sessions_by_end ON sessions (LEAST(idle_expires_at, expires_at));

-- The highest revocation sequence ever assigned, in its one row.
--
-- Not a SEQUENCE: `nextval` hands out numbers when a transaction inserts, not when it
-- commits, so a reader could see 5 committed before 4 and, having moved its cursor to 5,
-- skip 4 forever. A revoking transaction instead adds to this row, whose lock it holds until
-- it commits: the next one waits, so sequences commit in increasing order. Trimming the log
-- never lowers it, so no sequence is handed out twice.
CREATE TABLE revocation_counter (
    only_row BOOLEAN NOT NULL PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    value    BIGINT  NOT NULL CHECK (value >= 0)
);

INSERT INTO revocation_counter (value) VALUES (0);

CREATE TABLE revocations (
    sequence   BIGINT NOT NULL PRIMARY KEY CHECK (sequence > 0),
    session_id TEXT COLLATE "C" NOT NULL,
    user_id    TEXT COLLATE "C" NOT NULL,
    revoked_at BIGINT NOT NULL
);

CREATE INDEX revocations_by_time ON revocations (revoked_at);

CREATE TABLE login_failures (
    -- `ThrottleKey::storage_key`, e.g. `account:alice` or `address:192.0.2.7`.
    key          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- Up to u32::MAX, which INTEGER cannot hold.
    count        BIGINT NOT NULL CHECK (count BETWEEN 0 AND 4294967295),
    window_start BIGINT NOT NULL,
    -- When the window closes under the rule it was opened with; only pruning reads it.
    window_end   BIGINT NOT NULL
);

CREATE INDEX login_failures_by_end ON login_failures (window_end);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the refresh token. The token itself is never written anywhere.
    token_hash        BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id        TEXT COLLATE "C" NOT NULL,
    issued_at         BIGINT NOT NULL,
    -- Never after the session's absolute expiry, so purging by this column alone also
    -- clears the chains of purged sessions.
    expires_at        BIGINT NOT NULL,
    access_token_id   TEXT   NOT NULL,
    access_expires_at BIGINT NOT NULL,
    -- Both NULL while the token is the live end of its chain; set together when it is spent.
    spent_at          BIGINT,
    successor_hash    BYTEA  CHECK (octet_length(successor_hash) = 32),
    CHECK ((spent_at IS NULL) = (successor_hash IS NULL))
);

CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Times in this table are Unix SECONDS, as in JOSE, unlike the milliseconds elsewhere.
CREATE TABLE signing_keys (
    kid             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    algorithm       TEXT   NOT NULL,
    -- Private key (PKCS#8 DER) or secret bytes, opaque to the store.
    secret          BYTEA  NOT NULL,
    created_at      BIGINT NOT NULL,
    activates_at    BIGINT NOT NULL,
    retired_at      BIGINT,
    insertion_order BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE server_secrets (
    name   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    secret BYTEA NOT NULL
);

-- Registered API clients (resource servers allowed to introspect tokens and read the
-- revocation feed).
CREATE TABLE clients (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- A name for people; deletion goes by it.
    name            TEXT COLLATE "C" NOT NULL UNIQUE,
    -- SHA-256 of the client secret. The secret itself is never written anywhere.
    secret_hash     BYTEA  NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at      BIGINT NOT NULL,
    insertion_order BIGINT GENERATED ALWAYS AS IDENTITY
);
