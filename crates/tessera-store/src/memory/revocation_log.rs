//! [`RevocationLog`] for [`MemoryStore`]: the store's own revocation log, so entries written
//! here and revocations made through [`SessionStore`](tessera_core::SessionStore) share one
//! sequence.

use std::collections::VecDeque;

use async_trait::async_trait;
use tessera_core::{
    Revocation, RevocationKind, RevocationLog, SessionId, StoreError, Timestamp, UserId,
};

use super::{MemoryStore, read, write};

/// The revocation log, kept with the sessions (see `sessions::Sessions::log`).
#[derive(Debug, Default)]
pub(super) struct Log {
    /// Oldest first; sequences strictly increase from front to back.
    entries: VecDeque<Revocation>,
    /// The highest sequence ever assigned. Trimming the log does not lower it, so a sequence
    /// is never handed out twice.
    last_sequence: u64,
}

impl Log {
    /// Appends one session entry to the revocation log under the next sequence.
    pub(super) fn append(&mut self, session_id: SessionId, user_id: UserId, revoked_at: Timestamp) {
        self.push(RevocationKind::Session(session_id), user_id, revoked_at);
    }

    /// Appends one user entry (the user's access tokens went stale) under the next sequence.
    pub(super) fn append_user(&mut self, user_id: UserId, at: Timestamp) {
        self.push(RevocationKind::User, user_id, at);
    }

    fn push(&mut self, kind: RevocationKind, user_id: UserId, revoked_at: Timestamp) {
        self.last_sequence += 1;
        self.entries.push_back(Revocation {
            sequence: self.last_sequence,
            kind,
            user_id,
            revoked_at,
        });
    }

    /// Log entries with `sequence > after`, oldest first, at most `limit`.
    pub(super) fn since(&self, after: u64, limit: usize) -> Vec<Revocation> {
        let log = &self.entries;
        let start = log.partition_point(|revocation| revocation.sequence <= after);
        log.range(start..).take(limit).cloned().collect()
    }

    /// The highest sequence ever assigned.
    pub(super) fn cursor(&self) -> u64 {
        self.last_sequence
    }

    /// Drops at most `limit` log entries revoked before `cutoff`. Returns how many went.
    pub(super) fn trim(&mut self, cutoff: Timestamp, limit: usize) -> u64 {
        // The log is in sequence order, which is revocation order unless the clock stepped
        // back; trimming from the front keeps it a contiguous suffix either way.
        let mut trimmed = 0;
        while trimmed < limit
            && self
                .entries
                .front()
                .is_some_and(|oldest| oldest.revoked_at < cutoff)
        {
            self.entries.pop_front();
            trimmed += 1;
        }
        trimmed as u64
    }
}

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
            sessions
                .log
                .append(session_id.clone(), user_id.clone(), revoked_at);
        }
        Ok(())
    }

    async fn log_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        write(&self.sessions)?.log.append_user(user_id.clone(), at);
        Ok(())
    }

    async fn logged_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        Ok(read(&self.sessions)?.log.since(after, limit))
    }

    async fn log_cursor(&self) -> Result<u64, StoreError> {
        Ok(read(&self.sessions)?.log.cursor())
    }

    async fn trim_log(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        Ok(write(&self.sessions)?.log.trim(before, limit))
    }
}
