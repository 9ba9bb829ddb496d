//! [`RevocationLog`] for [`MemoryStore`]: the store's own revocation log, so entries written
//! here and revocations made through [`SessionStore`](tessera_core::SessionStore) share one
//! sequence.

use async_trait::async_trait;
use tessera_core::{Revocation, RevocationLog, SessionId, StoreError, Timestamp, UserId};

use super::{MemoryStore, read, write};

#[async_trait]
impl RevocationLog for MemoryStore {
    async fn log_revocations(
        &self,
        entries: &[(SessionId, UserId)],
        revoked_at: Timestamp,
    ) -> Result<(), StoreError> {
        // One write lock for the batch: no other entry can land between its entries.
        let mut sessions = write(&self.sessions)?;
        for (session_id, user_id) in entries {
            sessions.append_revocation(session_id.clone(), user_id.clone(), revoked_at);
        }
        Ok(())
    }

    async fn logged_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        Ok(read(&self.sessions)?.revocations_since(after, limit))
    }

    async fn log_cursor(&self) -> Result<u64, StoreError> {
        Ok(read(&self.sessions)?.revocation_cursor())
    }

    async fn trim_log(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(write(&self.sessions)?.trim_revocations(before, limit))
    }
}
