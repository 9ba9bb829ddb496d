//! [`AuditStore`] for [`SqliteStore`]: the audit trail in `audit_events`. The store's audited
//! changes (users, sessions, clients, keys) append their event with [`append_in`] inside
//! their own transaction.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};
use tessera_core::{AuditEvent, AuditFilter, AuditRecord, AuditStore, StoreError, Timestamp};

use super::SqliteStore;
use crate::sql::audit::{self, audit_columns};
use crate::sql::records::Columns as _;
use crate::sql::{self, Binds as _, limit, unavailable};

/// Appends `event` inside the caller's transaction (which holds the write lock, so ids
/// commit in order). Returns its id.
pub(super) async fn append_in(
    tx: &mut Transaction<'static, Sqlite>,
    event: &AuditEvent,
) -> Result<u64, StoreError> {
    let row = sqlx::query(concat!(
        "INSERT INTO audit_events (",
        audit_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id"
    ))
    .bind_audit(event)
    .fetch_one(&mut **tx)
    .await
    .map_err(unavailable)?;
    u64::try_from(row.integer("id")?).map_err(|_| sql::malformed("id"))
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, event: &AuditEvent) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = append_in(&mut tx, event).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn query(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        // Ids are positive `i64`s, so nothing lies beyond `i64::MAX`.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        let text = audit::select(filter, |n| format!("?{n}"));
        let statement = sqlx::query(&text).bind_audit_query(filter, after, self::limit(limit));
        sql::fetch_all(statement, &self.pool, audit::record).await
    }

    async fn purge_before(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let statement = sqlx::query(
            "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events \
             WHERE at < ?1 ORDER BY at, id LIMIT ?2)",
        )
        .bind(before.unix_millis())
        .bind(self::limit(limit));
        Ok(sql::execute(statement, &self.pool).await?.rows_affected())
    }
}
