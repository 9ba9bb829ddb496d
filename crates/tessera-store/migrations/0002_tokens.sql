-- Refresh-token chains, signing keys and named server secrets.

CREATE TABLE refresh_tokens (
    -- SHA-256 of the refresh token. The token itself is never written anywhere.
    token_hash        BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id        TEXT    NOT NULL,
    issued_at         INTEGER NOT NULL,
    -- Never after the session's absolute expiry, so purging by this column alone also
    -- clears the chains of purged sessions.
    expires_at        INTEGER NOT NULL,
    access_token_id   TEXT    NOT NULL,
    access_expires_at INTEGER NOT NULL,
    -- Both NULL while the token is the live end of its chain; set together when it is spent.
    spent_at          INTEGER,
    successor_hash    BLOB    CHECK (successor_hash IS NULL OR length(successor_hash) = 32)
);

CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Times in this table are Unix SECONDS, as in JOSE, unlike the milliseconds elsewhere.
CREATE TABLE signing_keys (
    kid          TEXT    NOT NULL PRIMARY KEY,
    algorithm    TEXT    NOT NULL,
    -- Private key (PKCS#8 DER) or secret bytes, opaque to the store.
    secret       BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    retired_at   INTEGER
);

CREATE TABLE server_secrets (
    name   TEXT NOT NULL PRIMARY KEY,
    secret BLOB NOT NULL
);
