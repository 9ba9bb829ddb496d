-- Child sessions: a session a registered service obtained by exchanging the user's access
-- token (token exchange, RFC 8693) names the session it came from and the service's
-- audience. Both are NULL for a session a login created; the CHECK keeps them together.
--
-- Nullable, with no backfill: every existing session is an ordinary one. Revoking a parent
-- revokes its children, found by the partial index (ordinary sessions are not in it).

ALTER TABLE sessions ADD COLUMN parent_id TEXT;
ALTER TABLE sessions ADD COLUMN parent_audience TEXT
    CHECK ((parent_id IS NULL) = (parent_audience IS NULL));

CREATE INDEX sessions_by_parent ON sessions (parent_id) WHERE parent_id IS NOT NULL;
