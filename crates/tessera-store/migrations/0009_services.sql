-- Downstream services registered for token exchange (`tessera service add`): token
-- exchange only issues tokens whose audience is a registered service's. Times are INTEGER
-- milliseconds since the Unix epoch (UTC).

CREATE TABLE services (
    -- A name for people; deletion goes by it.
    name       TEXT    NOT NULL PRIMARY KEY,
    -- What its tokens carry in `aud`.
    audience   TEXT    NOT NULL UNIQUE,
    -- JSON array of [scope, [role, ...]] pairs, in registration order.
    scopes     TEXT    NOT NULL,
    -- The longest token lifetime (and child-session idle period), milliseconds.
    max_ttl    INTEGER NOT NULL CHECK (max_ttl > 0),
    -- Whether it may exchange an access token for a child session.
    sessions   INTEGER NOT NULL CHECK (sessions IN (0, 1)),
    created_at INTEGER NOT NULL
);
