//! [`KeyStore`] for [`PgStore`]: signing keys in `signing_keys`, named secrets in
//! `server_secrets`. Key times are Unix seconds, as the trait has them.

use async_trait::async_trait;
use std::sync::LazyLock;

use tessera_core::{AuditEvent, Audited, KeyRecord, KeyStore, StoreError};

use super::PgStore;
use super::audit::audited;
use crate::sql::{self, Binds as _, unavailable};

const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, algorithm, secret, created_at, \
                          activates_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6)";

static INSERT_KEY_AUDITED: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{INSERT_KEY} RETURNING 1"), 6));

#[async_trait]
impl KeyStore for PgStore {
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let statement = sqlx::query(
            "SELECT kid, algorithm, secret, created_at, activates_at, retired_at \
             FROM signing_keys ORDER BY created_at, insertion_order",
        );
        self.bounded(sql::fetch_all(statement, &self.pool, sql::key))
            .await
    }

    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_KEY);
        self.bounded(sql::insert(statement.bind_key(key), &self.pool))
            .await
    }

    async fn retire_signing_keys(&self, except: &str, retired_at: i64) -> Result<u64, StoreError> {
        // One statement, so atomic on its own.
        let statement = sqlx::query(
            "UPDATE signing_keys SET retired_at = $2 WHERE retired_at IS NULL AND kid <> $1",
        )
        .bind(except)
        .bind(retired_at);
        let retired = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(retired.rows_affected())
    }

    async fn delete_signing_keys_retired_before(&self, before: i64) -> Result<u64, StoreError> {
        let statement = sqlx::query("DELETE FROM signing_keys WHERE retired_at < $1").bind(before);
        let deleted = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(deleted.rows_affected())
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.bounded(async {
            // The insert waits for any concurrent insert of the name to commit (and then does
            // nothing) or roll back (and then inserts), so exactly one candidate is stored.
            let inserted: Option<Vec<u8>> = sqlx::query_scalar(
                "INSERT INTO server_secrets (name, secret) VALUES ($1, $2) \
                 ON CONFLICT (name) DO NOTHING RETURNING secret",
            )
            .bind(name)
            .bind(candidate)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
            if let Some(secret) = inserted {
                return Ok(secret);
            }
            // A new statement, so it sees the winner committed after the insert began.
            sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)
        })
        .await
    }

    async fn insert_signing_key_audited(
        &self,
        key: &KeyRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let statement = sqlx::query(&INSERT_KEY_AUDITED)
            .bind_key(key)
            .bind_audit(event);
        self.bounded(sql::insert(statement, &self.pool)).await?;
        Ok(Audited::recorded(()))
    }
}
