//! [`KeyStore`] for [`SqliteStore`]: signing keys in `signing_keys`, named secrets in
//! `server_secrets`. Key times are Unix seconds, as the trait has them.

use async_trait::async_trait;
use tessera_core::{AuditEvent, Audited, KeyRecord, KeyStore, StoreError};

use super::SqliteStore;
use super::audit::append_in;
use crate::sql::{self, Binds as _, unavailable};

const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, algorithm, secret, created_at, \
                          activates_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let statement = sqlx::query(
            "SELECT kid, algorithm, secret, created_at, activates_at, retired_at \
             FROM signing_keys ORDER BY created_at, rowid",
        );
        sql::fetch_all(statement, &self.pool, sql::key).await
    }

    async fn insert_signing_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(INSERT_KEY);
        sql::insert(statement.bind_key(key), &self.pool).await
    }

    async fn retire_signing_keys(&self, except: &str, retired_at: i64) -> Result<u64, StoreError> {
        // One statement, so atomic on its own.
        let statement = sqlx::query(
            "UPDATE signing_keys SET retired_at = ?2 WHERE retired_at IS NULL AND kid <> ?1",
        )
        .bind(except)
        .bind(retired_at);
        Ok(sql::execute(statement, &self.pool).await?.rows_affected())
    }

    async fn delete_signing_keys_retired_before(&self, before: i64) -> Result<u64, StoreError> {
        let statement = sqlx::query("DELETE FROM signing_keys WHERE retired_at < ?1").bind(before);
        Ok(sql::execute(statement, &self.pool).await?.rows_affected())
    }

    async fn server_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        // Under the write lock, the first caller's insert wins and everyone reads it back.
        let mut tx = self.begin_write().await?;
        let statement =
            sqlx::query("INSERT OR IGNORE INTO server_secrets (name, secret) VALUES (?1, ?2)")
                .bind(name)
                .bind(candidate);
        sql::execute(statement, &mut *tx).await?;
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = ?1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(secret)
    }

    async fn insert_signing_key_audited(
        &self,
        key: &KeyRecord,
        event: &AuditEvent,
    ) -> Result<Audited<()>, StoreError> {
        let mut tx = self.begin_write().await?;
        sql::insert(sqlx::query(INSERT_KEY).bind_key(key), &mut *tx).await?;
        append_in(&mut tx, event).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(()))
    }
}
