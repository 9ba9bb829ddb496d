//! [`AuditStore`] for [`MemoryStore`]: the audit trail in a vector, in id order. An audited
//! change takes the trail's lock while it still holds its own records' lock, and only then
//! changes anything, so the change and its event land together or not at all.

use async_trait::async_trait;
use tessera_core::{AuditEvent, AuditFilter, AuditRecord, AuditStore, StoreError, Timestamp};

use super::{MemoryStore, read, write};

#[derive(Debug, Default)]
pub(super) struct Trail {
    /// In increasing id order.
    events: Vec<AuditRecord>,
    /// The last id assigned; purging never lowers it.
    last_id: u64,
}

impl Trail {
    /// Appends `event` and returns its id.
    pub(super) fn push(&mut self, event: AuditEvent) -> u64 {
        self.last_id += 1;
        self.events.push(AuditRecord {
            id: self.last_id,
            event,
        });
        self.last_id
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append(&self, event: &AuditEvent) -> Result<u64, StoreError> {
        Ok(write(&self.audit)?.push(event.clone()))
    }

    async fn query(
        &self,
        filter: &AuditFilter,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let trail = read(&self.audit)?;
        let start = trail.events.partition_point(|record| record.id <= after);
        Ok(trail.events[start..]
            .iter()
            .filter(|record| filter.matches(&record.event))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn purge_before(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        let mut trail = write(&self.audit)?;
        let mut old: Vec<(Timestamp, u64)> = trail
            .events
            .iter()
            .filter(|record| record.event.at < before)
            .map(|record| (record.event.at, record.id))
            .collect();
        old.sort_unstable();
        old.truncate(limit);
        let mut doomed: Vec<u64> = old.into_iter().map(|(_, id)| id).collect();
        doomed.sort_unstable();
        trail
            .events
            .retain(|record| doomed.binary_search(&record.id).is_err());
        Ok(doomed.len() as u64)
    }
}
