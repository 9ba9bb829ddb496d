-- The audit trail: authentication and administration events, append-only (rows are only
-- ever inserted, and deleted by the retention purge). Never a secret: no password, token,
-- client secret or hash of one has a column here. Times are INTEGER milliseconds since the
-- Unix epoch (UTC).

CREATE TABLE audit_events (
    -- The trail's cursor. AUTOINCREMENT never reuses an id, even after the newest rows were
    -- purged, and SQLite's single writer commits ids in increasing order.
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    -- `login_succeeded`, `logout`, … (tessera_core::AuditKind).
    kind       TEXT    NOT NULL,
    -- `user`, `client`, `cli`, `system` or `anonymous`, and the user or client id.
    actor_type TEXT    NOT NULL,
    actor_id   TEXT,
    -- The subject: the account and the session the event concerns.
    user_id    TEXT,
    session_id TEXT,
    ip         TEXT,
    user_agent TEXT,
    -- `success` or `failure`.
    outcome    TEXT    NOT NULL,
    -- A small JSON object of strings.
    detail     TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, id);
CREATE INDEX audit_events_kind ON audit_events (kind, id);

-- Append-only: an event is never rewritten.
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
