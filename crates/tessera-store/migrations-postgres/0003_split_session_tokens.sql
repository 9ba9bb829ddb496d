-- Session tokens are now split: the session id followed by a secret. A session is found by its
-- id (the primary key) and the store keeps `verifier`, the first 128 bits of the secret's
-- SHA-256, in place of the SHA-256 of the whole token (and its unique index, which nothing
-- looks sessions up by any more).
--
-- Tokens of the old format cannot be checked against a verifier, so their sessions (and the
-- refresh chains that belong to them) are deleted: upgrading signs everyone out once.
-- Deleting is not revoking: the revocation log needs no entries, because a session that is
-- gone is refused everywhere (and access tokens naming it fail the session check).

DELETE FROM refresh_tokens;
DELETE FROM sessions;
ALTER TABLE sessions DROP COLUMN token_hash;
ALTER TABLE sessions
    ADD COLUMN verifier BYTEA NOT NULL CHECK (octet_length(verifier) = 16);
