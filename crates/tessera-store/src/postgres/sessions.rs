//! [`SessionStore`] and [`RevocationLog`] for [`PgStore`]: sessions in `sessions`, and the one
//! revocation log (`revocations`, numbered by `revocation_counter`) that both traits write.
//!
//! Every revoking statement takes its sequences from the counter row and holds that row's
//! lock until it commits, so entries commit in sequence order and a reader that moves its
//! cursor to the highest sequence it saw never skips one committed later. Each is a single
//! statement, so the lock is held for no client round trip.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use tessera_core::{
    Revocation, RevocationLog, SessionId, SessionRecord, SessionStore, SessionVerifier, StoreError,
    Timestamp, Transport, UserId,
};

use super::{PgStore, conflict_or_unavailable, limit, malformed, millis, timestamp, unavailable};

macro_rules! session_columns {
    () => {
        "id, verifier, user_id, transport, created_at, last_seen_at, idle_expires_at, \
         expires_at, ip, user_agent, revoked_at"
    };
}

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

fn session_from_row(row: &PgRow) -> Result<SessionRecord, StoreError> {
    let verifier: &[u8] = row.try_get("verifier").map_err(unavailable)?;
    let verifier = <[u8; 16]>::try_from(verifier).map_err(|_| malformed("verifier"))?;
    let transport: &str = row.try_get("transport").map_err(unavailable)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(unavailable)?;
    Ok(SessionRecord {
        id: SessionId::parse(row.try_get("id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        verifier: SessionVerifier::from_bytes(verifier),
        user_id: UserId::parse(row.try_get("user_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        transport: Transport::parse(transport).ok_or_else(|| malformed("transport"))?,
        created_at: timestamp(row, "created_at")?,
        last_seen_at: timestamp(row, "last_seen_at")?,
        idle_expires_at: timestamp(row, "idle_expires_at")?,
        expires_at: timestamp(row, "expires_at")?,
        ip: row.try_get("ip").map_err(unavailable)?,
        user_agent: row.try_get("user_agent").map_err(unavailable)?,
        revoked_at: revoked_at.map(Timestamp::from_unix_millis),
    })
}

fn revocation_from_row(row: &PgRow) -> Result<Revocation, StoreError> {
    let sequence: i64 = row.try_get("sequence").map_err(unavailable)?;
    Ok(Revocation {
        sequence: u64::try_from(sequence).map_err(|_| malformed("sequence"))?,
        session_id: SessionId::parse(row.try_get("session_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        user_id: UserId::parse(row.try_get("user_id").map_err(unavailable)?)
            .map_err(StoreError::corrupt)?,
        revoked_at: timestamp(row, "revoked_at")?,
    })
}

impl PgStore {
    /// Log entries after `after`, oldest first, at most `limit`.
    async fn entries_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        // Sequences are positive `i64`s, so nothing lies beyond `i64::MAX`.
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        self.bounded(async {
            sqlx::query(
                "SELECT sequence, session_id, user_id, revoked_at FROM revocations \
                 WHERE sequence > $1 ORDER BY sequence LIMIT $2",
            )
            .bind(after)
            .bind(self::limit(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(revocation_from_row)
            .collect()
        })
        .await
    }

    /// The highest sequence assigned; the counter is never lowered.
    async fn cursor(&self) -> Result<u64, StoreError> {
        self.bounded(async {
            let value: i64 = sqlx::query_scalar("SELECT value FROM revocation_counter")
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
            u64::try_from(value).map_err(|_| malformed("value"))
        })
        .await
    }

    /// Deletes at most `limit` log entries revoked before `before`, oldest first.
    async fn trim(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.bounded(async {
            // The outer condition is checked again on rows changed meanwhile.
            let trimmed = sqlx::query(
                "DELETE FROM revocations WHERE revoked_at < $1 AND sequence IN \
                 (SELECT sequence FROM revocations WHERE revoked_at < $1 \
                  ORDER BY revoked_at LIMIT $2)",
            )
            .bind(before.unix_millis())
            .bind(self::limit(limit))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok(trimmed.rows_affected())
        })
        .await
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(record.id.as_str())
            .bind(&record.verifier.as_bytes()[..])
            .bind(record.user_id.as_str())
            .bind(record.transport.as_str())
            .bind(record.created_at.unix_millis())
            .bind(record.last_seen_at.unix_millis())
            .bind(record.idle_expires_at.unix_millis())
            .bind(record.expires_at.unix_millis())
            .bind(record.ip.as_deref())
            .bind(record.user_agent.as_deref())
            .bind(record.revoked_at.map(Timestamp::unix_millis))
            .execute(&self.pool)
            .await
            .map_err(conflict_or_unavailable)?;
            Ok(())
        })
        .await
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        self.bounded(async {
            sqlx::query(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE id = $1"
            ))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(session_from_row)
            .transpose()
        })
        .await
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            // One conditional statement. A revocation committed while it waited for the row
            // makes PostgreSQL check the condition again on the revoked row, which fails; and
            // it never writes `revoked_at`, so it cannot clear one.
            let result = sqlx::query(
                "UPDATE sessions SET last_seen_at = $2, idle_expires_at = $3 \
                 WHERE id = $1 AND revoked_at IS NULL AND last_seen_at < $2",
            )
            .bind(id.as_str())
            .bind(seen.unix_millis())
            .bind(idle_expires_at.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok(result.rows_affected() == 1)
        })
        .await
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        self.bounded(async {
            sqlx::query(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
                " AND idle_expires_at > $2 AND expires_at > $2",
                " ORDER BY created_at DESC, id DESC"
            ))
            .bind(user_id.as_str())
            .bind(now.unix_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?
            .iter()
            .map(session_from_row)
            .collect()
        })
        .await
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        self.bounded(async {
            // Of concurrent revocations one updates the row; the others wait for it, find it
            // revoked and log nothing.
            let logged = sqlx::query(log_revoked!(
                "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL \
                 RETURNING id, user_id",
                "$2"
            ))
            .bind(id.as_str())
            .bind(now.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok(logged.rows_affected() == 1)
        })
        .await
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
        let sessions = self
            .bounded(async {
                // A session has ended once `now` reaches the earlier of its expiries: exactly
                // when `SessionRecord::is_live` turns false for good, so no live session
                // matches — and the outer condition is checked again on a row a touch
                // changed meanwhile. Refresh rows stay: none expires after its session's
                // absolute expiry, so `purge_refresh` clears them by expiry alone.
                let purged = sqlx::query(
                    "DELETE FROM sessions WHERE LEAST(idle_expires_at, expires_at) <= $1 \
                     AND id IN (SELECT id FROM sessions \
                     WHERE LEAST(idle_expires_at, expires_at) <= $1 LIMIT $2)",
                )
                .bind(now.unix_millis())
                .bind(self::limit(limit))
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
                Ok(purged.rows_affected())
            })
            .await?;
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
        self.bounded(async {
            // The same counter as `revoke_session`, so both write one log.
            sqlx::query(
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
            .bind(count)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            Ok(())
        })
        .await
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
