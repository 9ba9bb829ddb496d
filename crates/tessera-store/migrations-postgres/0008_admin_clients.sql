-- The admin scope of API clients: a client added with `tessera client add NAME --admin` may
-- call the admin API (`/v1/admin/…`). Clients registered before this migration are not
-- admins.

ALTER TABLE clients ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;
