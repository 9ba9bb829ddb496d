-- Fan-out: every statement that adds to the revocation log wakes the processes listening, so
-- they read the log in milliseconds instead of at their next poll. A trigger, not the
-- application, sends it, so every writer notifies: any instance, the CLI, a manual fix.
-- NOTIFY is delivered only when the transaction commits, so a woken reader finds the entries.

-- The channel for the tables in `schema_name`: deployments (and tests) sharing a database
-- in separate schemas do not wake each other. Channel names are at most 63 bytes, so a long
-- schema name is replaced by its MD5. The store asks this function for the channel it
-- listens on, so the two cannot drift apart.
CREATE FUNCTION revocation_channel(schema_name TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT CASE
        WHEN octet_length('tessera_revocations:' || schema_name) <= 63
            THEN 'tessera_revocations:' || schema_name
        ELSE 'tessera_revocations:' || md5(schema_name)
    END
$$;

-- `SET search_path FROM CURRENT` pins the search path of the migration, so the function
-- above is found whatever search path the writer's session has.
CREATE FUNCTION notify_revocations() RETURNS TRIGGER
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    -- A revoking statement that revoked nothing inserts no rows but still fires the
    -- trigger; it wakes nobody.
    IF EXISTS (SELECT FROM added) THEN
        PERFORM pg_notify(revocation_channel(TG_TABLE_SCHEMA), '');
    END IF;
    RETURN NULL;
END
$$;

-- Once per statement, however many entries it added.
CREATE TRIGGER revocations_notify
AFTER INSERT ON revocations
REFERENCING NEW TABLE AS added
FOR EACH STATEMENT
EXECUTE FUNCTION notify_revocations();
