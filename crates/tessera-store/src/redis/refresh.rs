//! [`RefreshStore`] for [`RedisStore`]: each refresh record under its token hash, spent in
//! place by one script so concurrent rotations have exactly one winner.

use async_trait::async_trait;
use tessera_core::{RefreshRecord, RefreshStore, Rotation, StoreError, Timestamp, TokenHash};

use super::purge::Purge;
use super::record::{self, refresh, time_bytes};
use super::{RedisStore, scripts, ttl_ms};

impl RedisStore {
    fn refresh_ttl(&self, record: &RefreshRecord) -> i64 {
        ttl_ms(
            record.expires_at.unix_millis(),
            record.issued_at.unix_millis(),
            self.retention_ms(),
        )
    }
}

#[async_trait]
impl RefreshStore for RedisStore {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        let mut connection = self.connection();
        // One `SET NX`: atomic on its own, and never overwrites.
        let inserted: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(self.key_names().refresh(&record.token_hash))
                    .arg(record::encode_refresh(record))
                    .arg("NX")
                    .arg("PX")
                    .arg(self.refresh_ttl(record))
                    .query_async(&mut connection),
            )
            .await?;
        match inserted {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict),
        }
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let mut connection = self.connection();
        let value: Option<Vec<u8>> = self
            .run(
                redis::cmd("GET")
                    .arg(self.key_names().refresh(token_hash))
                    .query_async(&mut connection),
            )
            .await?;
        value
            .map(|value| record::decode_refresh(*token_hash, &value))
            .transpose()
    }

    async fn rotate_refresh(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut spent = Vec::with_capacity(41);
        spent.push(refresh::SPENT | refresh::HAS_SUCCESSOR);
        spent.extend_from_slice(&time_bytes(now));
        spent.extend_from_slice(successor.token_hash.as_bytes());
        let mut connection = self.connection();
        let (outcome, parent_value, successor_value): (i64, Option<Vec<u8>>, Option<Vec<u8>>) =
            self.run(
                scripts::ROTATE_REFRESH
                    .key(self.key_names().refresh(parent))
                    .key(self.key_names().refresh(&successor.token_hash))
                    .arg(record::encode_refresh(successor))
                    .arg(self.refresh_ttl(successor))
                    .arg(spent)
                    .arg(self.key_names().prefix())
                    .invoke_async(&mut connection),
            )
            .await?;
        match (outcome, parent_value) {
            (0, _) => Ok(Rotation::Unknown),
            (1, Some(parent_value)) => {
                let parent = record::decode_refresh(*parent, &parent_value)?;
                let spent_at = parent
                    .spent_at
                    .ok_or_else(|| record::malformed("spent_at"))?;
                let successor = match (parent.successor_hash, successor_value) {
                    (Some(hash), Some(value)) => Some(record::decode_refresh(hash, &value)?),
                    _ => None,
                };
                Ok(Rotation::AlreadySpent {
                    spent_at,
                    successor,
                })
            }
            (2, _) => Err(StoreError::Conflict),
            (3, _) => Ok(Rotation::Rotated),
            _ => Err(record::malformed("rotation reply")),
        }
    }

    async fn purge_refresh(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        // Expired once `now` reaches `expires_at`, as sessions are.
        self.scan_purge(Purge::Refresh, now.unix_millis(), limit)
            .await
    }
}
