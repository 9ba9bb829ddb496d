//! [`RevocationLog`] for [`SqliteStore`]: the `revocations` table the store's own
//! [`SessionStore`] revocations go to, so both share one `AUTOINCREMENT` sequence and a Redis
//! session store can keep its revocations durable here.

use async_trait::async_trait;
use tessera_core::{
    Revocation, RevocationLog, SessionId, SessionStore, StoreError, Timestamp, UserId,
};

use super::{SqliteStore, limit, log_revocation, unavailable};

#[async_trait]
impl RevocationLog for SqliteStore {
    async fn log_revocations(
        &self,
        entries: &[(SessionId, UserId)],
        revoked_at: Timestamp,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // One transaction holding the write lock: all entries or none, numbered in the order
        // given, and durable once committed (the store syncs every commit).
        let mut tx = self.begin_write().await?;
        for (session_id, user_id) in entries {
            log_revocation(&mut tx, session_id.as_str(), user_id.as_str(), revoked_at).await?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn logged_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        SessionStore::revocations_since(self, after, limit).await
    }

    async fn log_cursor(&self) -> Result<u64, StoreError> {
        SessionStore::revocation_cursor(self).await
    }

    async fn trim_log(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let trimmed = sqlx::query(
            "DELETE FROM revocations WHERE sequence IN (SELECT sequence FROM revocations \
             WHERE revoked_at < ?1 ORDER BY sequence LIMIT ?2)",
        )
        .bind(before.unix_millis())
        .bind(self::limit(limit))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(trimmed.rows_affected())
    }
}
