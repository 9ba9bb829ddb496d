//! [`LoginThrottle`] for [`RedisStore`]: one counter per key, `count:window start`, living as
//! long as its window, so every instance counts the same failures.

use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{LoginThrottle, StoreError, ThrottleKey, ThrottleRule, Timestamp};

use super::record::malformed;
use super::{MAX_TTL_MS, RedisStore, millis, scripts};
use crate::window;

#[async_trait]
impl LoginThrottle for RedisStore {
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let mut connection = self.connection();
        let value: Option<String> = self
            .run(
                redis::cmd("GET")
                    .arg(self.key_names().throttle(key))
                    .query_async(&mut connection),
            )
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let (count, opened_at) = value
            .split_once(':')
            .ok_or_else(|| malformed("throttle counter"))?;
        let count: u32 = count.parse().map_err(|_| malformed("throttle counter"))?;
        let opened_at: i64 = opened_at
            .parse()
            .map_err(|_| malformed("throttle counter"))?;
        Ok(window::blocked_for(
            count,
            Timestamp::from_unix_millis(opened_at),
            rule,
            now,
        ))
    }

    async fn record_failure(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let window = millis(rule.window);
        let mut connection = self.connection();
        let _: i64 = self
            .run(
                scripts::RECORD_FAILURE
                    .key(self.key_names().throttle(key))
                    .arg(now.unix_millis())
                    .arg(window)
                    .arg(window.clamp(1, MAX_TTL_MS))
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: i64 = self
            .run(
                redis::cmd("DEL")
                    .arg(self.key_names().throttle(key))
                    .query_async(&mut connection),
            )
            .await?;
        Ok(())
    }
}
