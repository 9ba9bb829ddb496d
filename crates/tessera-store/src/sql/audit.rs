//! The audit trail's rows, written once for both databases: the columns, the binds of an
//! event and of a query's filter, the `SELECT` a filter makes, and the decoding of a row.

use std::collections::BTreeMap;

use tessera_core::{
    Actor, AuditDetail, AuditEvent, AuditFilter, AuditKind, AuditRecord, Outcome, SessionId,
    StoreError, UserId,
};

use super::malformed;
use super::records::Columns;

/// The columns of `audit_events` but `id`, in the order [`Binds::bind_audit`] binds them.
///
/// [`Binds::bind_audit`]: super::Binds::bind_audit
macro_rules! audit_columns {
    () => {
        "at, kind, actor_type, actor_id, user_id, session_id, ip, user_agent, outcome, detail"
    };
}

pub(crate) use audit_columns;

/// The detail map as stored: a JSON object of strings.
pub(crate) fn detail_json(detail: &AuditDetail) -> String {
    let map: BTreeMap<&str, &str> = detail.iter().collect();
    // A map of strings always serializes.
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
}

/// `event` with `count` added to its detail: the event of a bulk revocation as stored.
pub(crate) fn with_count(event: &AuditEvent, count: usize) -> AuditEvent {
    event.clone().detail("count", count)
}

/// The `SELECT` of [`AuditStore::query`](tessera_core::AuditStore::query) for `filter`,
/// with parameters numbered by `placeholder` in the order
/// [`Binds::bind_audit_query`](super::Binds::bind_audit_query) binds them: the cursor, each
/// filter field that is set, the limit. Only placeholders are spliced in, never a value.
pub(crate) fn select(filter: &AuditFilter, placeholder: fn(usize) -> String) -> String {
    let mut next = 1;
    let mut parameter = || {
        let text = placeholder(next);
        next += 1;
        text
    };
    let mut sql = format!(
        concat!(
            "SELECT id, ",
            audit_columns!(),
            " FROM audit_events WHERE id > {}"
        ),
        parameter()
    );
    if filter.user_id.is_some() {
        sql.push_str(&format!(" AND user_id = {}", parameter()));
    }
    if filter.kind.is_some() {
        sql.push_str(&format!(" AND kind = {}", parameter()));
    }
    if filter.since.is_some() {
        sql.push_str(&format!(" AND at >= {}", parameter()));
    }
    if filter.until.is_some() {
        sql.push_str(&format!(" AND at < {}", parameter()));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", parameter()));
    sql
}

/// A row of `id` and [`audit_columns!`] from `audit_events`.
pub(crate) fn record(row: &impl Columns) -> Result<AuditRecord, StoreError> {
    let id = u64::try_from(row.integer("id")?).map_err(|_| malformed("id"))?;
    let kind: AuditKind = row.text("kind")?.parse().map_err(StoreError::corrupt)?;
    let actor_id = row.optional_text("actor_id")?;
    let actor = Actor::from_parts(row.text("actor_type")?, actor_id.as_deref())
        .map_err(StoreError::corrupt)?;
    let outcome: Outcome = row.text("outcome")?.parse().map_err(StoreError::corrupt)?;
    let detail: BTreeMap<String, String> =
        serde_json::from_str(row.text("detail")?).map_err(StoreError::corrupt)?;
    Ok(AuditRecord {
        id,
        event: AuditEvent {
            kind,
            at: row.timestamp("at")?,
            actor,
            user_id: row
                .optional_text("user_id")?
                .map(|id| UserId::parse(&id))
                .transpose()
                .map_err(StoreError::corrupt)?,
            session_id: row
                .optional_text("session_id")?
                .map(|id| SessionId::parse(&id))
                .transpose()
                .map_err(StoreError::corrupt)?,
            ip: row.optional_text("ip")?,
            user_agent: row.optional_text("user_agent")?,
            outcome,
            detail: detail.into_iter().collect(),
        },
    })
}
