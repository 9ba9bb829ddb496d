//! [`RefreshStore`] for [`SqliteStore`]: refresh-token chains in `refresh_tokens`, keyed by
//! the token's hash.

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use tessera_core::{
    RefreshRecord, RefreshStore, Rotation, SessionId, StoreError, Timestamp, TokenHash,
};

use super::{SqliteStore, conflict_or_unavailable, limit, malformed, unavailable};

macro_rules! refresh_columns {
    () => {
        "token_hash, session_id, issued_at, expires_at, access_token_id, access_expires_at, \
         spent_at, successor_hash"
    };
}

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

fn insert(record: &RefreshRecord) -> SqliteQuery<'_> {
    sqlx::query(concat!(
        "INSERT INTO refresh_tokens (",
        refresh_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))
    .bind(&record.token_hash.as_bytes()[..])
    .bind(record.session_id.as_str())
    .bind(record.issued_at.unix_millis())
    .bind(record.expires_at.unix_millis())
    .bind(record.access_token_id.as_str())
    .bind(record.access_expires_at.unix_millis())
    .bind(record.spent_at.map(Timestamp::unix_millis))
    .bind(
        record
            .successor_hash
            .as_ref()
            .map(|hash| &hash.as_bytes()[..]),
    )
}

fn select(token_hash: &TokenHash) -> SqliteQuery<'_> {
    sqlx::query(concat!(
        "SELECT ",
        refresh_columns!(),
        " FROM refresh_tokens WHERE token_hash = ?1"
    ))
    .bind(&token_hash.as_bytes()[..])
}

fn hash_from_row(row: &SqliteRow, column: &'static str) -> Result<Option<TokenHash>, StoreError> {
    let bytes: Option<&[u8]> = row.try_get(column).map_err(unavailable)?;
    bytes
        .map(|bytes| {
            <[u8; 32]>::try_from(bytes)
                .map(TokenHash::from_bytes)
                .map_err(|_| malformed(column))
        })
        .transpose()
}

fn refresh_from_row(row: &SqliteRow) -> Result<RefreshRecord, StoreError> {
    let time = |column| {
        row.try_get(column)
            .map(Timestamp::from_unix_millis)
            .map_err(unavailable)
    };
    let spent_at: Option<i64> = row.try_get("spent_at").map_err(unavailable)?;
    Ok(RefreshRecord {
        token_hash: hash_from_row(row, "token_hash")?.ok_or_else(|| malformed("token_hash"))?,
        session_id: SessionId::parse(row.try_get("session_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        issued_at: time("issued_at")?,
        expires_at: time("expires_at")?,
        access_token_id: row.try_get("access_token_id").map_err(unavailable)?,
        access_expires_at: time("access_expires_at")?,
        spent_at: spent_at.map(Timestamp::from_unix_millis),
        successor_hash: hash_from_row(row, "successor_hash")?,
    })
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        insert(record)
            .execute(&self.pool)
            .await
            .map_err(conflict_or_unavailable)?;
        Ok(())
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        select(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(refresh_from_row)
            .transpose()
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
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = ?2, successor_hash = ?3 \
             WHERE token_hash = ?1 AND spent_at IS NULL",
        )
        .bind(&parent.as_bytes()[..])
        .bind(now.unix_millis())
        .bind(&successor.token_hash.as_bytes()[..])
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if spent.rows_affected() == 1 {
            // On a conflict the transaction is dropped uncommitted, so the parent stays
            // unspent.
            insert(successor)
                .execute(&mut *tx)
                .await
                .map_err(conflict_or_unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            return Ok(Rotation::Rotated);
        }

        let Some(row) = select(parent)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?
        else {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(Rotation::Unknown);
        };
        let parent = refresh_from_row(&row)?;
        // The update above skipped an existing row, so it was spent.
        let spent_at = parent.spent_at.ok_or_else(|| malformed("spent_at"))?;
        let successor = match &parent.successor_hash {
            Some(hash) => select(hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?
                .as_ref()
                .map(refresh_from_row)
                .transpose()?,
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
        let purged = sqlx::query(
            "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rowid FROM refresh_tokens \
             WHERE expires_at <= ?1 LIMIT ?2)",
        )
        .bind(now.unix_millis())
        .bind(self::limit(limit))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(purged.rows_affected())
    }
}
