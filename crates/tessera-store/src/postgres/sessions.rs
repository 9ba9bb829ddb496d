//! [`SessionStore`] for [`PgStore`]: sessions in `sessions`; revoking one appends to the
//! revocation log (see `revocation_log`) in the same statement.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{
    AuditEvent, Audited, Revocation, SessionId, SessionRecord, SessionStore, StoreError, Timestamp,
    UserId,
};

use super::PgStore;
use super::revocation_log::{log_revoked, log_revoked_audited};
use crate::sql::records::Columns as _;
use crate::sql::{self, Binds as _, limit, millis, session_columns, unavailable};

/// `revoke_session`'s statement with the audit event bound from `$3`.
static REVOKE_ONE_AUDITED: LazyLock<String> = LazyLock::new(|| {
    log_revoked_audited(
        "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
         RETURNING id, user_id",
        "$2",
        3,
        false,
    )
});

/// `revoke_user_sessions`'s statement with the audit event bound from `$4`, its detail
/// given the count.
static REVOKE_ALL_AUDITED: LazyLock<String> = LazyLock::new(|| {
    log_revoked_audited(
        "UPDATE sessions SET revoked_at = $3 WHERE revoked_at IS NULL AND id IN \
         (SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
          AND id IS DISTINCT FROM $2 ORDER BY id FOR UPDATE) \
         RETURNING id, user_id",
        "$3",
        4,
        true,
    )
});

#[async_trait]
impl SessionStore for PgStore {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let statement = sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ));
        self.bounded(sql::insert(statement.bind_session(record), &self.pool))
            .await
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id.as_str());
        self.bounded(sql::fetch_optional(statement, &self.pool, sql::session))
            .await
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        // One conditional statement. A revocation committed while it waited for the row makes
        // PostgreSQL check the condition again on the revoked row, which fails; and it never
        // writes `revoked_at`, so it cannot clear one.
        let statement = sqlx::query(
            "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 \
             WHERE id = $1 AND revoked_at IS NULL AND last_seen_at < $2",
        )
        .bind(id.as_str())
        .bind(seen.unix_millis())
        .bind(idle_expires_at.unix_millis());
        let result = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(result.rows_affected() == 1)
    }

    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError> {
        // One conditional statement, like `touch_session`: a revocation committed while it
        // waited for the row fails the condition on re-check. `greatest` keeps a later time
        // another instance wrote; a NULL (a row from before the column) counts as
        // `created_at`.
        let statement = sqlx::query(
            "UPDATE sessions SET auth_time = greatest(coalesce(auth_time, created_at), $2) \
             WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(auth_time.unix_millis());
        let result = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(result.rows_affected() == 1)
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let statement = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            " AND idle_expires_at > $2 AND expires_at > $2",
            " ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id.as_str())
        .bind(now.unix_millis());
        self.bounded(sql::fetch_all(statement, &self.pool, sql::session))
            .await
    }

    async fn children_of(
        &self,
        parent: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        // By `sessions_by_parent`: `parent_id = $1` implies the index's `IS NOT NULL`.
        let statement = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE parent_id = $1 AND user_id = $2 \
             AND revoked_at IS NULL AND idle_expires_at > $3 AND expires_at > $3 \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(parent.as_str())
        .bind(user_id.as_str())
        .bind(now.unix_millis());
        let ids: Vec<String> = self
            .bounded(async { statement.fetch_all(&self.pool).await.map_err(unavailable) })
            .await?;
        ids.iter()
            .map(|id| SessionId::parse(id).map_err(StoreError::corrupt))
            .collect()
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        // Of concurrent revocations one updates the row; the others wait for it, find it
        // revoked and log nothing.
        let statement = sqlx::query(log_revoked!(
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
             RETURNING id, user_id",
            "$2"
        ))
        .bind(id.as_str())
        .bind(now.unix_millis());
        let logged = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(logged.rows_affected() == 1)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        self.bounded(async {
            // Rows are locked in id order, so two of these for one user cannot deadlock.
            let revoked: Vec<String> = sqlx::query_scalar(log_revoked!(
                "UPDATE sessions SET revoked_at = $3 WHERE revoked_at IS NULL AND id IN \
                 (SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
                  AND id IS DISTINCT FROM $2 ORDER BY id FOR UPDATE) \
                 RETURNING id, user_id",
                "$3"
            ))
            .bind(user_id.as_str())
            .bind(keep.map(SessionId::as_str))
            .bind(now.unix_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            revoked
                .iter()
                .map(|id| SessionId::parse(id).map_err(StoreError::corrupt))
                .collect()
        })
        .await
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
        // `SessionRecord::is_live` turns false for good, so no live session matches — and the
        // outer condition is checked again on a row a touch changed meanwhile. Refresh rows
        // stay: none expires after its session's absolute expiry, so `purge_refresh` clears
        // them by expiry alone.
        let statement = sqlx::query(
            "DELETE FROM sessions WHERE LEAST(idle_expires_at, expires_at) <= $1 \
             AND id IN (SELECT id FROM sessions \
             WHERE LEAST(idle_expires_at, expires_at) <= $1 LIMIT $2)",
        )
        .bind(now.unix_millis())
        .bind(self::limit(limit));
        let sessions = self
            .bounded(sql::execute(statement, &self.pool))
            .await?
            .rows_affected();
        let cutoff = Timestamp::from_unix_millis(
            now.unix_millis()
                .saturating_sub(millis(revocation_retention)),
        );
        let revocations = self.trim(cutoff, limit).await?;
        Ok(sessions + revocations)
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
        let statement = sqlx::query(&REVOKE_ONE_AUDITED)
            .bind(id.as_str())
            .bind(now.unix_millis())
            .bind_audit(event);
        let revoked = self
            .bounded(async { statement.fetch_all(&self.pool).await.map_err(unavailable) })
            .await?;
        Ok(Audited::recorded(!revoked.is_empty()))
    }

    async fn revoke_user_sessions_audited(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<Vec<SessionId>>, StoreError> {
        let statement = sqlx::query(&REVOKE_ALL_AUDITED)
            .bind(user_id.as_str())
            .bind(keep.map(SessionId::as_str))
            .bind(now.unix_millis())
            .bind_audit(event);
        let ids = self
            .bounded(sql::fetch_all(statement, &self.pool, |row| {
                row.id("session_id", SessionId::parse)
            }))
            .await?;
        Ok(Audited::recorded(ids))
    }
}
