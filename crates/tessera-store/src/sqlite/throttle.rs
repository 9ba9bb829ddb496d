//! [`LoginThrottle`] for [`SqliteStore`]: counters in `login_failures`, so they survive a
//! restart and are shared by every process using the file.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{LoginThrottle, StoreError, ThrottleKey, ThrottleRule, Timestamp};

use super::SqliteStore;
use crate::sql::{self, Binds as _};

/// Closed windows are deleted once per this many recorded failures: often enough that the
/// table stays near the number of keys failing right now, rarely enough to cost nothing.
const PRUNE_EVERY: u64 = 64;

#[async_trait]
impl LoginThrottle for SqliteStore {
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let statement =
            sqlx::query("SELECT count, window_start FROM login_failures WHERE key = ?1")
                .bind(key.storage_key());
        let failures = sql::fetch_optional(statement, &self.pool, sql::failures).await?;
        Ok(failures.and_then(|failures| failures.blocked_for(rule, now)))
    }

    async fn record_failure(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        // One upsert, so concurrent failures for a key are all counted. The condition is
        // `window::is_open`; the counter stops at `u32::MAX` rather than overflow.
        let statement = sqlx::query(
            "INSERT INTO login_failures (key, count, window_start, window_end) \
             VALUES (?1, 1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN ?2 < window_start + ?4 THEN min(count + 1, 4294967295) ELSE 1 END, \
               window_start = CASE WHEN ?2 < window_start + ?4 THEN window_start ELSE ?2 END, \
               window_end = CASE WHEN ?2 < window_start + ?4 THEN window_end ELSE ?3 END",
        )
        .bind_failure(key, rule, now);
        sql::execute(statement, &self.pool).await?;
        if self.failures_recorded.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            let prune = sqlx::query("DELETE FROM login_failures WHERE window_end <= ?1")
                .bind(now.unix_millis());
            sql::execute(prune, &self.pool).await?;
        }
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        // Every successful login resets, and almost none has a failure to forget. A DELETE
        // takes the database's one write lock even when it matches nothing, so logins would
        // queue behind every other write (and wait out the busy timeout under a flood); a read
        // takes no lock. A failure counted between the read and the end of this login is kept
        // — the stricter outcome.
        let key = key.storage_key();
        let exists = sqlx::query("SELECT 1 FROM login_failures WHERE key = ?1").bind(&key);
        if sql::fetch_optional(exists, &self.pool, |_| Ok(()))
            .await?
            .is_none()
        {
            return Ok(());
        }
        let statement = sqlx::query("DELETE FROM login_failures WHERE key = ?1").bind(&key);
        sql::execute(statement, &self.pool).await?;
        Ok(())
    }
}
