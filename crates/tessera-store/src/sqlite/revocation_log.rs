//! [`RevocationLog`] for [`SqliteStore`]: the `revocations` table the store's own
//! [`SessionStore`](tessera_core::SessionStore) revocations go to, so both share one
//! `AUTOINCREMENT` sequence and a Redis session store can keep its revocations durable here.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};
use tessera_core::{Revocation, RevocationLog, SessionId, StoreError, Timestamp, UserId};

use super::SqliteStore;
use crate::sql::{self, limit, malformed, unavailable};

/// Appends one entry to the revocation log, inside the caller's transaction.
pub(super) async fn log_revocation(
    tx: &mut Transaction<'static, Sqlite>,
    session_id: &str,
    user_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let statement = sqlx::query(
        "INSERT INTO revocations (session_id, user_id, revoked_at) VALUES (?1, ?2, ?3)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(now.unix_millis());
    sql::execute(statement, &mut **tx).await?;
    Ok(())
}

impl SqliteStore {
    /// Appends a user entry (a NULL `session_id`) to the log, in a transaction of its own.
    pub(super) async fn log_user_entry(
        &self,
        user_id: &UserId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = sqlx::query(
            "INSERT INTO revocations (session_id, user_id, revoked_at) VALUES (NULL, ?1, ?2)",
        )
        .bind(user_id.as_str())
        .bind(at.unix_millis());
        sql::execute(statement, &mut *tx).await?;
        tx.commit().await.map_err(unavailable)
    }

    /// Log entries after `after`, oldest first, at most `limit`.
    pub(super) async fn entries_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        // Sequences are positive `i64`s, so nothing lies beyond `i64::MAX`.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let statement = sqlx::query(
            "SELECT sequence, session_id, user_id, revoked_at FROM revocations \
             WHERE sequence > ?1 ORDER BY sequence LIMIT ?2",
        )
        .bind(after)
        .bind(self::limit(limit));
        sql::fetch_all(statement, &self.pool, sql::revocation).await
    }

    /// The highest sequence assigned.
    pub(super) async fn cursor(&self) -> Result<u64, StoreError> {
        // AUTOINCREMENT keeps the highest sequence ever assigned in `sqlite_sequence`, which
        // trimming the log does not lower.
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        u64::try_from(cursor.unwrap_or(0)).map_err(|_| malformed("seq"))
    }
}

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

    async fn log_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        self.log_user_entry(user_id, at).await
    }

    async fn logged_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        self.entries_since(after, limit).await
    }

    async fn log_cursor(&self) -> Result<u64, StoreError> {
        self.cursor().await
    }

    async fn trim_log(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let statement = sqlx::query(
            "DELETE FROM revocations WHERE sequence IN (SELECT sequence FROM revocations \
             WHERE revoked_at < ?1 ORDER BY sequence LIMIT ?2)",
        )
        .bind(before.unix_millis())
        .bind(self::limit(limit));
        Ok(sql::execute(statement, &self.pool).await?.rows_affected())
    }
}
