//! [`RevocationLog`] for [`PgStore`]: the one revocation log (`revocations`, numbered by
//! `revocation_counter`) that it and the store's own [`SessionStore`](tessera_core::SessionStore)
//! revocations write, so a Redis session store can keep its revocations durable here.
//!
//! Every revoking statement takes its sequences from the counter row and holds that row's
//! lock until it commits, so entries commit in sequence order and a reader that moves its
//! cursor to the highest sequence it saw never skips one committed later. Each is a single
//! statement (an audited revocation appends its audit event in the same one), so the lock
//! is held for no client round trip.

use async_trait::async_trait;
use tessera_core::{Revocation, RevocationLog, SessionId, StoreError, Timestamp, UserId};

use super::PgStore;
use super::audit::audit_if_logged;
use crate::sql::{self, limit, malformed, unavailable};

/// Appends what the `revoked` CTE returned (`id`, `user_id`) to the log at `$revoked_at`,
/// numbered in id order, and returns the ids. Takes the counter's lock only if something
/// was revoked.
macro_rules! log_revoked {
    ($revoked:literal, $revoked_at:literal) => {
        concat!(
            "WITH revoked AS (",
            $revoked,
            "), counter AS (\
               UPDATE revocation_counter SET value = value + (SELECT count(*) FROM revoked) \
               WHERE EXISTS (SELECT FROM revoked) \
               RETURNING value - (SELECT count(*) FROM revoked) AS base\
             ) \
             INSERT INTO revocations (sequence, session_id, user_id, revoked_at) \
             SELECT counter.base + row_number() OVER (ORDER BY revoked.id), revoked.id, \
                    revoked.user_id, ",
            $revoked_at,
            " FROM revoked, counter \
             RETURNING session_id"
        )
    };
}

pub(super) use log_revoked;

/// [`log_revoked!`] with the audit event bound from `$first_audit` appended in the same
/// statement if anything was revoked (see [`audit_if_logged`]); returns the revoked ids.
pub(super) fn log_revoked_audited(
    revoked: &str,
    revoked_at: &str,
    first_audit: usize,
    count: bool,
) -> String {
    format!(
        "WITH revoked AS ({revoked}), counter AS (\
           UPDATE revocation_counter SET value = value + (SELECT count(*) FROM revoked) \
           WHERE EXISTS (SELECT FROM revoked) \
           RETURNING value - (SELECT count(*) FROM revoked) AS base\
         ), logged AS (\
           INSERT INTO revocations (sequence, session_id, user_id, revoked_at) \
           SELECT counter.base + row_number() OVER (ORDER BY revoked.id), revoked.id, \
                  revoked.user_id, {revoked_at} \
           FROM revoked, counter RETURNING session_id\
         ), {audit} \
         SELECT session_id FROM logged",
        audit = audit_if_logged(first_audit, count),
    )
}

impl PgStore {
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
             WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        )
        .bind(after)
        .bind(self::limit(limit));
        self.bounded(sql::fetch_all(statement, &self.pool, sql::revocation))
            .await
    }

    /// The highest sequence assigned; the counter is never lowered.
    pub(super) async fn cursor(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let value: i64 = sqlx::query_scalar("SELECT value FROM revocation_counter")
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
            u64::try_from(value).map_err(|_| malformed("value"))
        })
        .await
    }

    /// Appends a user entry (a NULL `session_id`) under the next sequence of the counter.
    pub(super) async fn log_user_entry(
        &self,
        user_id: &UserId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let statement = sqlx::query(
            "WITH counter AS (\
                   UPDATE revocation_counter SET value = value + 1 RETURNING value\
                 ) \
                 INSERT INTO revocations (sequence, session_id, user_id, revoked_at) \
                 SELECT counter.value, NULL, $1, $2 FROM counter",
        )
        .bind(user_id.as_str())
        .bind(at.unix_millis());
        self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(())
    }

    /// Deletes at most `limit` log entries revoked before `before`, oldest first.
    pub(super) async fn trim(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        // The outer condition is checked again on rows changed meanwhile.
        let statement = sqlx::query(
            "DELETE FROM revocations WHERE revoked_at < $1 AND sequence IN \
             (SELECT sequence FROM revocations WHERE revoked_at < $1 \
              ORDER BY revoked_at LIMIT $2)",
        )
        .bind(before.unix_millis())
        .bind(self::limit(limit));
        let trimmed = self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(trimmed.rows_affected())
    }
}

#[async_trait]
impl RevocationLog for PgStore {
    async fn log_revocations(
        &self,
        entries: &[(SessionId, UserId)],
        revoked_at: Timestamp,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let session_ids: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        let user_ids: Vec<&str> = entries.iter().map(|(_, user)| user.as_str()).collect();
        let count = limit(entries.len());
        // The same counter as `revoke_session`, so both write one log.
        let statement = sqlx::query(
            "WITH counter AS (\
                   UPDATE revocation_counter SET value = value + $4 RETURNING value - $4 AS base\
                 ) \
                 INSERT INTO revocations (sequence, session_id, user_id, revoked_at) \
                 SELECT counter.base + entry.position, entry.session_id, entry.user_id, $3 \
                 FROM counter, \
                      UNNEST($1::text[], $2::text[]) WITH ORDINALITY \
                        AS entry (session_id, user_id, position)",
        )
        .bind(&session_ids)
        .bind(&user_ids)
        .bind(revoked_at.unix_millis())
        .bind(count);
        self.bounded(sql::execute(statement, &self.pool)).await?;
        Ok(())
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
        self.trim(before, limit).await
    }
}
