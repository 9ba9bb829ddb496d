-- The audit trail: authentication and administration events, append-only (rows are only
-- ever inserted, and deleted by the retention purge). Never a secret: no password, token,
-- client secret or hash of one has a column here. Times are BIGINT milliseconds since the
-- Unix epoch (UTC).

-- Ids come from this one row, whose lock every appending statement holds until it commits:
-- ids then commit in increasing order, so a reader paging by id never skips an event that
-- commits after it read past its id (a sequence would hand out ids that commit out of
-- order). The same design as `revocation_counter`.
CREATE TABLE audit_counter (
    only_row BOOLEAN NOT NULL PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    value    BIGINT  NOT NULL CHECK (value >= 0)
);

INSERT INTO audit_counter (value) VALUES (0);

CREATE TABLE audit_events (
    id         BIGINT NOT NULL PRIMARY KEY CHECK (id > 0),
    at         BIGINT NOT NULL,
    -- `login_succeeded`, `logout`, … (tessera_core::AuditKind).
    kind       TEXT COLLATE "C" NOT NULL,
    -- `user`, `client`, `cli`, `system` or `anonymous`, and the user or client id.
    actor_type TEXT COLLATE "C" NOT NULL,
    actor_id   TEXT COLLATE "C",
    -- The subject: the account and the session the event concerns.
    user_id    TEXT COLLATE "C",
    session_id TEXT COLLATE "C",
    ip         TEXT,
    user_agent TEXT,
    -- `success` or `failure`.
    outcome    TEXT COLLATE "C" NOT NULL,
    -- A small JSON object of strings (text, as SQLite has it; cast to jsonb to query it).
    detail     TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, id);
CREATE INDEX audit_events_kind ON audit_events (kind, id);

-- Append-only: an event is never rewritten.
CREATE FUNCTION audit_events_append_only() RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END
$$;

CREATE TRIGGER audit_events_append_only
BEFORE UPDATE ON audit_events
FOR EACH ROW
EXECUTE FUNCTION audit_events_append_only();
