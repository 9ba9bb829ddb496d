//! [`RefreshStore`] for [`MemoryStore`]: refresh-token chains in a hash map.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use tessera_core::{RefreshRecord, RefreshStore, Rotation, StoreError, Timestamp, TokenHash};

use super::{MemoryStore, read, write};

/// Every refresh record, spent or not, until it is purged.
#[derive(Debug, Default)]
pub(super) struct RefreshChains {
    by_hash: HashMap<TokenHash, RefreshRecord>,
    /// Every record keyed by its expiry, so a purge visits only what it deletes. (A
    /// [`TokenHash`] has no order; its bytes do.)
    by_expiry: BTreeSet<(Timestamp, [u8; 32])>,
}

impl RefreshChains {
    fn insert(&mut self, record: &RefreshRecord) -> Result<(), StoreError> {
        if self.by_hash.contains_key(&record.token_hash) {
            return Err(StoreError::Conflict);
        }
        self.by_expiry
            .insert((record.expires_at, *record.token_hash.as_bytes()));
        self.by_hash.insert(record.token_hash, record.clone());
        Ok(())
    }

    fn rotate(
        &mut self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let Some(record) = self.by_hash.get(parent) else {
            return Ok(Rotation::Unknown);
        };
        if let Some(spent_at) = record.spent_at {
            let successor = record
                .successor_hash
                .and_then(|hash| self.by_hash.get(&hash))
                .cloned();
            return Ok(Rotation::AlreadySpent {
                spent_at,
                successor,
            });
        }
        // The successor goes in first, so a conflicting one leaves the parent unspent.
        self.insert(successor)?;
        // Always found: the parent was there a moment ago under the same write lock, and
        // inserting another hash removes nothing.
        if let Some(record) = self.by_hash.get_mut(parent) {
            record.spent_at = Some(now);
            record.successor_hash = Some(successor.token_hash);
        }
        Ok(Rotation::Rotated)
    }
}

#[async_trait]
impl RefreshStore for MemoryStore {
    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        write(&self.refresh)?.insert(record)
    }

    async fn refresh_by_token(
        &self,
        token_hash: &TokenHash,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        Ok(read(&self.refresh)?.by_hash.get(token_hash).cloned())
    }

    async fn rotate_refresh(
        &self,
        parent: &TokenHash,
        successor: &RefreshRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        // One write lock around the check and the change: that is the single winner.
        write(&self.refresh)?.rotate(parent, successor, now)
    }

    async fn purge_refresh(&self, now: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut chains = write(&self.refresh)?;
        // Expired once `now` reaches `expires_at`, as sessions are.
        let expired: Vec<(Timestamp, [u8; 32])> = chains
            .by_expiry
            .iter()
            .take_while(|(expires_at, _)| *expires_at <= now)
            .take(limit)
            .copied()
            .collect();
        for entry in &expired {
            chains.by_expiry.remove(entry);
            chains.by_hash.remove(&TokenHash::from_bytes(entry.1));
        }
        Ok(expired.len() as u64)
    }
}
