-- Registered API clients (resource servers allowed to introspect tokens and read the
-- revocation feed). Times are INTEGER milliseconds since the Unix epoch (UTC).

CREATE TABLE clients (
    id          TEXT    NOT NULL PRIMARY KEY,
    -- A name for people; deletion goes by it.
    name        TEXT    NOT NULL UNIQUE,
    -- SHA-256 of the client secret. The secret itself is never written anywhere.
    secret_hash BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    created_at  INTEGER NOT NULL
);
