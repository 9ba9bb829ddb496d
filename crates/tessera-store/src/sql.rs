//! What the SQLite and PostgreSQL stores share: how a failed query becomes a [`StoreError`],
//! how a row becomes a record and a record becomes binds, the column lists both schemas
//! have, and the few ways a statement is run.
//!
//! Only the SQL text differs between the two backends (`?1` against `$1`, `rowid` against
//! `insertion_order`, `INSERT OR IGNORE` against `ON CONFLICT`), so each keeps its own
//! statements and passes them through the generic helpers here. Both schemas store times as
//! 64-bit milliseconds (key times as seconds), ids as text and hashes as 32-byte blobs.

pub(crate) mod audit;
pub(crate) mod records;

use std::fmt;
use std::time::Duration;

use sqlx::query::Query;
use sqlx::{Database, Executor, IntoArguments};
use tessera_core::StoreError;

pub(crate) use records::{
    Binds, client, failures, key, refresh, revocation, service, session, user,
};

/// The columns of `sessions`, in the order [`Binds::bind_session`] binds them.
macro_rules! session_columns {
    () => {
        "id, verifier, user_id, transport, created_at, last_seen_at, idle_expires_at, \
         expires_at, ip, user_agent, revoked_at, auth_time, parent_id, parent_audience"
    };
}

/// The columns of `users` that [`user`] decodes.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, created_at, roles, claims, disabled"
    };
}

/// The columns of `refresh_tokens`, in the order [`Binds::bind_refresh`] binds them.
macro_rules! refresh_columns {
    () => {
        "token_hash, session_id, issued_at, expires_at, access_token_id, access_expires_at, \
         spent_at, successor_hash"
    };
}

pub(crate) use {refresh_columns, session_columns, user_columns};

/// A row the database returned but this code cannot make sense of.
#[derive(Debug)]
struct MalformedRow {
    column: &'static str,
}

impl fmt::Display for MalformedRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed `{}` column", self.column)
    }
}

impl std::error::Error for MalformedRow {}

pub(crate) fn malformed(column: &'static str) -> StoreError {
    StoreError::corrupt(MalformedRow { column })
}

/// Any failure of a query: a value that will not decode is [`StoreError::Corrupt`], the rest
/// (refused or lost connections, timeouts, cancelled statements) [`StoreError::Unavailable`].
pub(crate) fn unavailable(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::corrupt(error),
        other => StoreError::unavailable(other),
    }
}

/// A failed write: a unique key already taken is [`StoreError::Conflict`].
pub(crate) fn conflict_or_unavailable(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => StoreError::Conflict,
        _ => unavailable(error),
    }
}

pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Binds a `usize` limit; both databases' integers are signed.
pub(crate) fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A statement of database `DB` with its binds.
pub(crate) type Statement<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Runs `statement`.
pub(crate) async fn execute<'q, 'e, 'c: 'e, DB, E>(
    statement: Statement<'q, DB>,
    executor: E,
) -> Result<DB::QueryResult, StoreError>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    E: 'e + Executor<'c, Database = DB>,
    'q: 'e,
{
    statement.execute(executor).await.map_err(unavailable)
}

/// Runs an inserting `statement`: a unique key already taken is [`StoreError::Conflict`].
pub(crate) async fn insert<'q, 'e, 'c: 'e, DB, E>(
    statement: Statement<'q, DB>,
    executor: E,
) -> Result<(), StoreError>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    E: 'e + Executor<'c, Database = DB>,
    'q: 'e,
{
    statement
        .execute(executor)
        .await
        .map_err(conflict_or_unavailable)?;
    Ok(())
}

/// Runs `statement` and decodes the row it finds, if any, with `decode`.
pub(crate) async fn fetch_optional<'q, 'e, 'c: 'e, DB, E, T>(
    statement: Statement<'q, DB>,
    executor: E,
    decode: fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    E: 'e + Executor<'c, Database = DB>,
    'q: 'e,
{
    statement
        .fetch_optional(executor)
        .await
        .map_err(unavailable)?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Runs `statement` and decodes every row it finds with `decode`, in order.
pub(crate) async fn fetch_all<'q, 'e, 'c: 'e, DB, E, T>(
    statement: Statement<'q, DB>,
    executor: E,
    decode: fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError>
where
    DB: Database,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    E: 'e + Executor<'c, Database = DB>,
    'q: 'e,
{
    statement
        .fetch_all(executor)
        .await
        .map_err(unavailable)?
        .iter()
        .map(decode)
        .collect()
}
