//! [`SessionStore`] for [`SqliteStore`]: sessions in `sessions`; revoking one appends to the
//! revocation log (see `revocation_log`) in the same transaction.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};
use tessera_core::{
    AuditEvent, Audited, Revocation, SessionId, SessionRecord, SessionStore, StoreError, Timestamp,
    UserId,
};

use super::SqliteStore;
use super::audit::append_in;
use super::revocation_log::log_revocation;
use crate::sql::{self, Binds as _, limit, millis, session_columns, unavailable};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ));
        sql::insert(statement.bind_session(record), &self.pool).await
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = ?1"
        ));
        sql::fetch_optional(statement.bind(id.as_str()), &self.pool, sql::session).await
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        // One conditional statement: SQLite runs it under the write lock, so it cannot
        // interleave with a revocation and can never clear `revoked_at`.
        let statement = sqlx::query(
            "UPDATE sessions SET last_seen_at = ?2, idle_expires_at = ?3 \
             WHERE id = ?1 AND revoked_at IS NULL AND last_seen_at < ?2",
        )
        .bind(id.as_str())
        .bind(seen.unix_millis())
        .bind(idle_expires_at.unix_millis());
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError> {
        // One statement under the write lock, like `touch_session`: it cannot interleave with
        // a revocation. `max` keeps a later time another instance wrote; a NULL (a row from
        // before the column) counts as `created_at`.
        let statement = sqlx::query(
            "UPDATE sessions SET auth_time = max(coalesce(auth_time, created_at), ?2) \
             WHERE id = ?1 AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(auth_time.unix_millis());
        Ok(sql::execute(statement, &self.pool).await?.rows_affected() == 1)
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL",
            " AND idle_expires_at > ?2 AND expires_at > ?2",
            " ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id.as_str())
        .bind(now.unix_millis());
        sql::fetch_all(statement, &self.pool, sql::session).await
    }

    async fn children_of(
        &self,
        parent: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        // By `sessions_by_parent`: `parent_id = ?1` implies the index's `IS NOT NULL`.
        let statement = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE parent_id = ?1 AND user_id = ?2 \
             AND revoked_at IS NULL AND idle_expires_at > ?3 AND expires_at > ?3 \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(parent.as_str())
        .bind(user_id.as_str())
        .bind(now.unix_millis());
        let ids: Vec<String> = statement.fetch_all(&self.pool).await.map_err(unavailable)?;
        ids.iter()
            .map(|id| SessionId::parse(id).map_err(StoreError::corrupt))
            .collect()
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = revoke_one(&mut tx, id, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(revoked)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids = revoke_all(&mut tx, user_id, keep, now).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(ids)
    }

    async fn mark_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        self.log_user_entry(user_id, at).await
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        self.entries_since(after, limit).await
    }

    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        self.cursor().await
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        // A session has ended once `now` reaches the earlier of its expiries: exactly when
        // `SessionRecord::is_live` turns false for good, so no live session matches.
        // Revoked sessions go at the same point; until then a presented token still finds
        // its (revoked) record. The revocation log is trimmed on its own schedule below.
        // Refresh rows stay: none expires after its session's absolute expiry, so
        // `purge_refresh` clears them by expiry alone.
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions \
             WHERE min(idle_expires_at, expires_at) <= ?1 LIMIT ?2)",
        )
        .bind(now.unix_millis())
        .bind(self::limit(limit));
        let sessions = sql::execute(sessions, &self.pool).await?;
        let cutoff = now
            .unix_millis()
            .saturating_sub(millis(revocation_retention));
        let revocations = sqlx::query(
            "DELETE FROM revocations WHERE sequence IN (SELECT sequence FROM revocations \
             WHERE revoked_at < ?1 LIMIT ?2)",
        )
        .bind(cutoff)
        .bind(self::limit(limit));
        let revocations = sql::execute(revocations, &self.pool).await?;
        Ok(sessions.rows_affected() + revocations.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        tessera_core::UserStore::ping(self).await
    }

    async fn revoke_session_audited(
        &self,
        id: &SessionId,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut tx = self.begin_write().await?;
        let revoked = revoke_one(&mut tx, id, now).await?;
        if revoked {
            append_in(&mut tx, event).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(revoked))
    }

    async fn revoke_user_sessions_audited(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<Vec<SessionId>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids = revoke_all(&mut tx, user_id, keep, now).await?;
        if !ids.is_empty() {
            append_in(&mut tx, &crate::sql::audit::with_count(event, ids.len())).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Audited::recorded(ids))
    }
}

/// Revokes one session and logs it, inside the caller's transaction. `false` if it was
/// unknown or revoked already.
async fn revoke_one(
    tx: &mut Transaction<'static, Sqlite>,
    id: &SessionId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let user_id: Option<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL \
         RETURNING user_id",
    )
    .bind(id.as_str())
    .bind(now.unix_millis())
    .fetch_optional(&mut **tx)
    .await
    .map_err(unavailable)?;
    if let Some(user_id) = &user_id {
        log_revocation(tx, id.as_str(), user_id, now).await?;
    }
    Ok(user_id.is_some())
}

/// Revokes every unrevoked session of the user but `keep` and logs each, inside the caller's
/// transaction.
async fn revoke_all(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: &UserId,
    keep: Option<&SessionId>,
    now: Timestamp,
) -> Result<Vec<SessionId>, StoreError> {
    // `id IS NOT NULL` holds for every row, so no `keep` keeps nothing.
    let revoked: Vec<String> = sqlx::query_scalar(
        "UPDATE sessions SET revoked_at = ?3 \
         WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?2 RETURNING id",
    )
    .bind(user_id.as_str())
    .bind(keep.map(SessionId::as_str))
    .bind(now.unix_millis())
    .fetch_all(&mut **tx)
    .await
    .map_err(unavailable)?;
    let mut ids = Vec::with_capacity(revoked.len());
    for id in &revoked {
        // A malformed id fails the whole call and the transaction rolls back on drop.
        ids.push(SessionId::parse(id).map_err(StoreError::corrupt)?);
        log_revocation(tx, id, user_id.as_str(), now).await?;
    }
    Ok(ids)
}
