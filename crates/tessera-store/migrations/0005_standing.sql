-- A user's standing: roles, custom claims and whether the account is disabled; and user
-- entries in the revocation log ("access tokens of this user issued before then are stale").

-- A JSON array of role names, checked by the engine (`Roles`).
ALTER TABLE users ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';
-- A JSON object of at most 1 KiB, checked by the engine (`CustomClaims`).
ALTER TABLE users ADD COLUMN claims TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));

-- A user entry has no session: `session_id` becomes nullable (NULL = a user entry). SQLite
-- cannot drop a NOT NULL constraint, so the table is rebuilt, keeping every entry, its
-- sequence, and the highest sequence ever assigned (so no sequence is handed out twice).
CREATE TABLE revocations_new (
    -- AUTOINCREMENT: a sequence is never reused, even after the newest entries are trimmed.
    sequence   INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    -- The revoked session; NULL for a user entry.
    session_id TEXT,
    user_id    TEXT    NOT NULL,
    -- When it was recorded; a user entry's tokens are stale before the next whole second.
    revoked_at INTEGER NOT NULL
);

INSERT INTO revocations_new (sequence, session_id, user_id, revoked_at)
    SELECT sequence, session_id, user_id, revoked_at FROM revocations;
DELETE FROM sqlite_sequence WHERE name = 'revocations_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'revocations_new', seq FROM sqlite_sequence WHERE name = 'revocations';
DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_by_time ON revocations (revoked_at);
