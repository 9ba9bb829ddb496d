//! [`LoginThrottle`] for [`PgStore`]: counters in `login_failures`, shared by every instance.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row as _;
use tessera_core::{LoginThrottle, StoreError, ThrottleKey, ThrottleRule, Timestamp};

use super::{PgStore, malformed, millis, timestamp, unavailable};
use crate::window;

/// Closed windows are deleted once per this many recorded failures: often enough that the
/// table stays near the number of keys failing right now, rarely enough to cost nothing.
const PRUNE_EVERY: u64 = 64;

#[async_trait]
impl LoginThrottle for PgStore {
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        self.bounded(async {
            let row = sqlx::query("SELECT count, window_start FROM login_failures WHERE key = $1")
                .bind(key.storage_key())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let count: i64 = row.try_get("count").map_err(unavailable)?;
            let count = u32::try_from(count).map_err(|_| malformed("count"))?;
            let opened_at = timestamp(&row, "window_start")?;
            Ok(window::blocked_for(count, opened_at, rule, now))
        })
        .await
    }

    async fn record_failure(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            // One upsert, so concurrent failures for a key are all counted: a second insert
            // waits for the first and then updates its row. The condition is
            // `window::is_open`, written as a difference so a huge window cannot overflow;
            // the counter stops at `u32::MAX`.
            sqlx::query(
                "INSERT INTO login_failures AS failures (key, count, window_start, window_end) \
                 VALUES ($1, 1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET \
                   count = CASE WHEN $2 - failures.window_start < $4 \
                     THEN LEAST(failures.count + 1, 4294967295) ELSE 1 END, \
                   window_start = CASE WHEN $2 - failures.window_start < $4 \
                     THEN failures.window_start ELSE $2 END, \
                   window_end = CASE WHEN $2 - failures.window_start < $4 \
                     THEN failures.window_end ELSE $3 END",
            )
            .bind(key.storage_key())
            .bind(now.unix_millis())
            .bind(now.saturating_add(rule.window).unix_millis())
            .bind(millis(rule.window))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            if self
                .shared
                .failures_recorded
                .fetch_add(1, Ordering::Relaxed)
                % PRUNE_EVERY
                == PRUNE_EVERY - 1
            {
                sqlx::query("DELETE FROM login_failures WHERE window_end <= $1")
                    .bind(now.unix_millis())
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("DELETE FROM login_failures WHERE key = $1")
                .bind(key.storage_key())
                .execute(&self.pool)
                .await
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}
