-- When the user last proved their password for a session: at login, and at every
-- re-authentication (`POST /v1/reauthenticate`). Sensitive self-service actions need it to be
-- recent.
--
-- Nullable, with no backfill: a row without it (written before this migration, or by an
-- older instance during a rolling upgrade) reads as its `created_at`, when the password was
-- proven at login.

ALTER TABLE sessions ADD COLUMN auth_time INTEGER;
