//! Purging for [`RedisStore`]: TTLs do the real work, and a purge walks the keys with `SCAN`,
//! resuming where the previous one stopped, to delete what ended before its TTL ran out.

use std::sync::Mutex;

use tessera_core::StoreError;

use super::{RedisStore, key_names, record, scripts};

/// Purges do at most this much per call whatever `limit` says (so it fits a Redis integer);
/// callers loop while a call removes as many as they asked for.
pub(super) const MAX_PURGE: usize = 1_000_000;

/// What a `SCAN` walk purges.
#[derive(Debug, Clone, Copy)]
pub(super) enum Purge {
    /// Ended sessions, found through the user indexes.
    Sessions,
    /// Expired refresh records.
    Refresh,
}

impl RedisStore {
    /// Walks the keys `purge` looks at with `SCAN`, from where the previous walk stopped,
    /// deleting what ended at or before `now` until `limit` records went or a full pass is
    /// over. Returns how many went.
    pub(super) async fn scan_purge(
        &self,
        purge: Purge,
        now: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        const PAGE: usize = 1000;
        let limit = limit.min(MAX_PURGE);
        if limit == 0 {
            return Ok(0);
        }
        let (slot, tag, key_type, id_len) = match purge {
            Purge::Sessions => (
                &self.shared.session_scan,
                key_names::USER,
                "zset",
                record::RAW_ID_LEN,
            ),
            Purge::Refresh => (&self.shared.refresh_scan, key_names::REFRESH, "string", 32),
        };
        let pattern = self.key_names().pattern(tag);
        let started_at = *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut cursor = started_at;
        let mut wrapped = started_at == 0;
        let mut removed = 0;
        loop {
            let mut connection = self.connection();
            let (next, found): (u64, Vec<Vec<u8>>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(PAGE)
                        .arg("TYPE")
                        .arg(key_type)
                        .query_async(&mut connection),
                )
                .await?;
            let ours: Vec<Vec<u8>> = found
                .into_iter()
                .filter(|key| self.key_names().is(key, id_len))
                .collect();
            if !ours.is_empty() {
                removed += self.purge_page(purge, ours, now, limit - removed).await?;
            }
            if removed >= limit {
                // The page may hold more: the next call starts again at its beginning.
                set_cursor(slot, cursor);
                return Ok(removed as u64);
            }
            cursor = next;
            if cursor == 0 {
                if wrapped {
                    set_cursor(slot, 0);
                    return Ok(removed as u64);
                }
                // Started mid-way: go round once more to cover what came before.
                wrapped = true;
            }
        }
    }

    async fn purge_page(
        &self,
        purge: Purge,
        keys: Vec<Vec<u8>>,
        now: i64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut connection = self.connection();
        let mut invocation = match purge {
            Purge::Sessions => {
                let mut invocation = scripts::PURGE_SESSIONS.prepare_invoke();
                invocation.arg(self.key_names().prefix());
                invocation
            }
            Purge::Refresh => scripts::PURGE_REFRESH.prepare_invoke(),
        };
        invocation.arg(now).arg(limit);
        for key in &keys {
            invocation.key(key);
        }
        self.run(invocation.invoke_async(&mut connection)).await
    }
}

fn set_cursor(slot: &Mutex<u64>, cursor: u64) {
    // A poisoned cursor is still a valid cursor: it only decides where a walk starts.
    *slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = cursor;
}
