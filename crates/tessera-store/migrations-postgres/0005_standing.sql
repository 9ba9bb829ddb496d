-- A user's standing: roles, custom claims and whether the account is disabled; and user
-- entries in the revocation log ("access tokens of this user issued before then are stale").
--
-- Roles and claims are TEXT holding JSON, as in SQLite: the engine checks and bounds them
-- (`Roles`, `CustomClaims`), and nothing queries inside them. `disabled` is a BIGINT 0/1 so
-- both databases decode it alike.

ALTER TABLE users
    ADD COLUMN roles    TEXT   NOT NULL DEFAULT '[]',
    ADD COLUMN claims   TEXT   NOT NULL DEFAULT '{}',
    ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));

-- A user entry has no session: NULL `session_id`. The notify trigger fires for it as for
-- any other entry.
ALTER TABLE revocations ALTER COLUMN session_id DROP NOT NULL;
