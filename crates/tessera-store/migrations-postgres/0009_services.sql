-- Downstream services registered for token exchange (`tessera service add`): token
-- exchange only issues tokens whose audience is a registered service's.

CREATE TABLE services (
    -- A name for people; deletion goes by it.
    name            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- What its tokens carry in `aud`.
    audience        TEXT COLLATE "C" NOT NULL UNIQUE,
    -- JSON array of [scope, [role, ...]] pairs, in registration order.
    scopes          TEXT    NOT NULL,
    -- The longest token lifetime (and child-session idle period), milliseconds.
    max_ttl         BIGINT  NOT NULL CHECK (max_ttl > 0),
    -- Whether it may exchange an access token for a child session.
    sessions        BOOLEAN NOT NULL,
    created_at      BIGINT  NOT NULL,
    insertion_order BIGINT GENERATED ALWAYS AS IDENTITY
);
