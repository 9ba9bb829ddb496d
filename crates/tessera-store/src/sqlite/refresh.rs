//! [`RefreshStore`] for [`SqliteStore`]: refresh-token chains in `refresh_tokens`, keyed by
//! the token's hash.

use async_trait::async_trait;
use sqlx::Sqlite;
use tessera_core::{RefreshRecord, RefreshStore, Rotation, StoreError, Timestamp, TokenHash};

use super::SqliteStore;
use crate::sql::{self, Binds as _, Statement, limit, malformed, refresh_columns, unavailable};

fn insert(record: &RefreshRecord) -> Statement<'_, Sqlite> {
    sqlx::query(concat!(
        "INSERT INTO refresh_tokens (",
        refresh_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))
    .bind_refresh(record)
}

fn select(token_hash: &TokenHash) -> Statement<'_, Sqlite> {
    sqlx::query(concat!(
        "SELECT ",
        refresh_columns!(),
        " FROM refresh_tokens WHERE token_hash = ?1"
    ))
    .bind(&token_hash.as_bytes()[..])
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        sql::insert(insert(record), &self.pool).await
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        sql::fetch_optional(select(token_hash), &self.pool, sql::refresh).await
    }

    async fn rotate_refresh(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        // The write lock is held from the first statement to the end, so exactly one caller
        // finds the parent unspent, and the losers read the winner's committed successor.
        let mut tx = self.begin_write().await?;
        let spend = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = ?2, successor_hash = ?3 \
             WHERE token_hash = ?1 AND spent_at IS NULL",
        )
        .bind(&parent.as_bytes()[..])
        .bind(now.unix_millis())
        .bind(&successor.token_hash.as_bytes()[..]);
        let spent = sql::execute(spend, &mut *tx).await?;
        if spent.rows_affected() == 1 {
            // On a conflict the transaction is dropped uncommitted, so the parent stays
            // unspent.
            sql::insert(insert(successor), &mut *tx).await?;
            tx.commit().await.map_err(unavailable)?;
            return Ok(Rotation::Rotated);
        }

        let Some(parent) = sql::fetch_optional(select(parent), &mut *tx, sql::refresh).await?
        else {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(Rotation::Unknown);
        };
        // The update above skipped an existing row, so it was spent.
        let spent_at = parent.spent_at.ok_or_else(|| malformed("spent_at"))?;
        let successor = match &parent.successor_hash {
            Some(hash) => sql::fetch_optional(select(hash), &mut *tx, sql::refresh).await?,
            None => None,
        };
        tx.rollback().await.map_err(unavailable)?;
        Ok(Rotation::AlreadySpent {
            spent_at,
            successor,
        })
    }

    async fn purge_refresh(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        // Expired once `now` reaches `expires_at`, as sessions are.
        let statement = sqlx::query(
            "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rowid FROM refresh_tokens \
             WHERE expires_at <= ?1 LIMIT ?2)",
        )
        .bind(now.unix_millis())
        .bind(self::limit(limit));
        Ok(sql::execute(statement, &self.pool).await?.rows_affected())
    }
}
