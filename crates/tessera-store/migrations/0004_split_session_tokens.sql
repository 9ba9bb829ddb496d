-- Session tokens are now split: the session id followed by a secret. A session is found by its
-- id (the primary key) and the store keeps `verifier`, the first 128 bits of the secret's
-- SHA-256, in place of the SHA-256 of the whole token.
--
-- Tokens of the old format cannot be checked against a verifier, so their sessions (and the
-- refresh chains that belong to them) are deleted: upgrading signs everyone out once.
-- Deleting is not revoking: the revocation log needs no entries, because a session that is
-- gone is refused everywhere (and access tokens naming it fail the session check).

DELETE FROM refresh_tokens;
DROP TABLE sessions;

CREATE TABLE sessions (
    id              TEXT    NOT NULL PRIMARY KEY,
    -- First 16 bytes of the SHA-256 of the token's secret. The token is never written anywhere.
    verifier        BLOB    NOT NULL CHECK (length(verifier) = 16),
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
