//! [`AuditStore`] for [`PgStore`]: the audit trail in `audit_events`, numbered by
//! `audit_counter`.
//!
//! Every appending statement takes its id from the counter row and holds that row's lock
//! until it commits, so ids commit in increasing order and a reader paging by id never
//! skips an event that commits after it has read past its id. An audited change is one
//! statement — the change in a `WITH` clause, the event appended only if the change
//! returned a row — so it commits or fails as a whole and holds the lock for no client
//! round trip.

use std::sync::LazyLock;

use async_trait::async_trait;
use tessera_core::{AuditEvent, AuditFilter, AuditRecord, AuditStore, StoreError, Timestamp};

use super::PgStore;
use crate::sql::audit::{self, audit_columns};
use crate::sql::records::Columns as _;
use crate::sql::{self, Binds as _, limit, unavailable};

/// `$first, …, $first+9`: the placeholders of an event's columns.
fn event_placeholders(first: usize) -> Vec<String> {
    (first..first + 10).map(|n| format!("${n}")).collect()
}

/// One statement that runs `change` (a data-modifying statement over parameters `$1` to
/// `$parameters`, returning a row for each record it changed) and, if it changed anything,
/// appends the event bound after its parameters. The statement affects one row (the event)
/// exactly when the change did something.
pub(super) fn audited(change: &str, parameters: usize) -> String {
    format!(
        concat!(
            "WITH changed AS ({change}), ",
            "audit_id AS (UPDATE audit_counter SET value = value + 1 ",
            "WHERE EXISTS (SELECT FROM changed) RETURNING value) ",
            "INSERT INTO audit_events (id, ",
            audit_columns!(),
            ") SELECT audit_id.value, {values} FROM audit_id"
        ),
        change = change,
        values = event_placeholders(parameters + 1).join(", "),
    )
}

/// The `CTE`s that append the event bound from `$first` if `logged` (a `WITH` clause of
/// the same statement) returned rows; with `count`, the number of those rows is added to
/// the event's detail, as a bulk revocation records it.
pub(super) fn audit_if_logged(first: usize, count: bool) -> String {
    let mut values = event_placeholders(first);
    if count {
        let detail = values.pop().unwrap_or_default();
        values.push(format!(
            "({detail}::jsonb || jsonb_build_object('count', \
             (SELECT count(*) FROM logged)::text))::text"
        ));
    }
    format!(
        concat!(
            "audit_id AS (UPDATE audit_counter SET value = value + 1 ",
            "WHERE EXISTS (SELECT FROM logged) RETURNING value), ",
            "audited AS (INSERT INTO audit_events (id, ",
            audit_columns!(),
            ") SELECT audit_id.value, {values} FROM audit_id)"
        ),
        values = values.join(", "),
    )
}

static APPEND: LazyLock<String> = LazyLock::new(|| {
    format!(
        concat!(
            "WITH audit_id AS (UPDATE audit_counter SET value = value + 1 RETURNING value) ",
            "INSERT INTO audit_events (id, ",
            audit_columns!(),
            ") SELECT audit_id.value, {values} FROM audit_id RETURNING id"
        ),
        values = event_placeholders(1).join(", "),
    )
});

#[async_trait]
impl AuditStore for PgStore {
    async fn append(&self, event: &AuditEvent) -> Result<u64, StoreError> {
        self.bounded(async {
            let row = sqlx::query(&APPEND)
                .bind_audit(event)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
            u64::try_from(row.integer("id")?).map_err(|_| sql::malformed("id"))
        })
        .await
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
        let text = audit::select(filter, |n| format!("${n}"));
        let statement = sqlx::query(&text).bind_audit_query(filter, after, self::limit(limit));
        self.bounded(sql::fetch_all(statement, &self.pool, audit::record))
            .await
    }

    async fn purge_before(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let statement = sqlx::query(
            "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events \
             WHERE at < $1 ORDER BY at, id LIMIT $2)",
        )
        .bind(before.unix_millis())
        .bind(self::limit(limit));
        let purged = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(purged.rows_affected())
    }
}
