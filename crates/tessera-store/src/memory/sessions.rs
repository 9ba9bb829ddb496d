//! [`SessionStore`] for [`MemoryStore`]: sessions in hash maps, with an index by user and one
//! by end; revoking one appends to the revocation log (see `revocation_log`) under the same
//! lock.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{
    AuditEvent, Audited, Revocation, SessionId, SessionRecord, SessionStore, StoreError, Timestamp,
    UserId,
};

use super::revocation_log::Log;
use super::{MemoryStore, read, write};

#[derive(Debug, Default)]
pub(super) struct Sessions {
    by_id: HashMap<SessionId, SessionRecord>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
    /// Every session keyed by when it ends (the earlier of its idle and absolute expiry), so a
    /// purge visits only what it deletes.
    by_end: BTreeSet<(Timestamp, SessionId)>,
    /// The revocation log, under the sessions' lock so a revocation and its entry land
    /// together.
    pub(super) log: Log,
}

fn ends_at(record: &SessionRecord) -> Timestamp {
    record.idle_expires_at.min(record.expires_at)
}

impl Sessions {
    fn insert(&mut self, record: &SessionRecord) -> Result<(), StoreError> {
        if self.by_id.contains_key(&record.id) {
            return Err(StoreError::Conflict);
        }
        self.by_user
            .entry(record.user_id.clone())
            .or_default()
            .insert(record.id.clone());
        self.by_end.insert((ends_at(record), record.id.clone()));
        self.by_id.insert(record.id.clone(), record.clone());
        Ok(())
    }

    fn remove(&mut self, id: &SessionId) -> bool {
        let Some(record) = self.by_id.remove(id) else {
            return false;
        };
        if let Some(ids) = self.by_user.get_mut(&record.user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&record.user_id);
            }
        }
        self.by_end.remove(&(ends_at(&record), record.id));
        true
    }

    /// Revokes every unrevoked session of the user but `keep`, logging each.
    fn revoke_all(
        &mut self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Vec<SessionId> {
        let candidates: Vec<SessionId> = self
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter(|id| Some(*id) != keep)
            .cloned()
            .collect();
        candidates
            .into_iter()
            .filter(|id| self.revoke(id, now))
            .collect()
    }

    /// Marks the session revoked and logs it; `false` if it is unknown or revoked already.
    fn revoke(&mut self, id: &SessionId, now: Timestamp) -> bool {
        let Some(record) = self.by_id.get_mut(id) else {
            return false;
        };
        if record.revoked_at.is_some() {
            return false;
        }
        record.revoked_at = Some(now);
        let (session_id, user_id) = (record.id.clone(), record.user_id.clone());
        self.log.append(session_id, user_id, now);
        true
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        write(&self.sessions)?.insert(record)
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        Ok(read(&self.sessions)?.by_id.get(id).cloned())
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut sessions = write(&self.sessions)?;
        let Some(record) = sessions.by_id.get_mut(id) else {
            return Ok(false);
        };
        if record.revoked_at.is_some() || record.last_seen_at >= seen {
            return Ok(false);
        }
        let old_end = ends_at(record);
        record.last_seen_at = seen;
        record.idle_expires_at = idle_expires_at;
        let new_end = ends_at(record);
        if new_end != old_end {
            let id = record.id.clone();
            sessions.by_end.remove(&(old_end, id.clone()));
            sessions.by_end.insert((new_end, id));
        }
        Ok(true)
    }

    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut sessions = write(&self.sessions)?;
        match sessions.by_id.get_mut(id) {
            Some(record) if record.revoked_at.is_none() => {
                record.auth_time = record.auth_time.max(auth_time);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sessions = read(&self.sessions)?;
        let mut live: Vec<SessionRecord> = sessions
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|id| sessions.by_id.get(id))
            .filter(|record| record.is_live(now))
            .cloned()
            .collect();
        drop(sessions);
        // Newest first; the id breaks ties the same way the SQL backends' `ORDER BY` does.
        live.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(live)
    }

    async fn children_of(
        &self,
        parent: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let sessions = read(&self.sessions)?;
        let mut children: Vec<&SessionRecord> = sessions
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|id| sessions.by_id.get(id))
            .filter(|record| record.parent.as_ref().is_some_and(|of| &of.id == parent))
            .filter(|record| record.is_live(now))
            .collect();
        children.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(children
            .into_iter()
            .map(|record| record.id.clone())
            .collect())
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        Ok(write(&self.sessions)?.revoke(id, now))
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        Ok(write(&self.sessions)?.revoke_all(user_id, keep, now))
    }

    async fn mark_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        write(&self.sessions)?.log.append_user(user_id.clone(), at);
        Ok(())
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        Ok(read(&self.sessions)?.log.since(after, limit))
    }

    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        Ok(read(&self.sessions)?.log.cursor())
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let cutoff =
            Timestamp::from_unix_millis(now.unix_millis().saturating_sub(
                i64::try_from(revocation_retention.as_millis()).unwrap_or(i64::MAX),
            ));
        let mut sessions = write(&self.sessions)?;
        // A session has ended once `now` reaches the earlier of its expiries: exactly when
        // `is_live` turns false for good, so no live session is ever in this range.
        // Its refresh tokens stay: none expires after the session's absolute expiry, so
        // `purge_refresh` clears them by expiry alone.
        let ended: Vec<SessionId> = sessions
            .by_end
            .iter()
            .take_while(|(end, _)| *end <= now)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect();
        let mut removed = 0;
        for id in &ended {
            if sessions.remove(id) {
                removed += 1;
            }
        }
        Ok(removed + sessions.log.trim(cutoff, limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        read(&self.sessions).map(drop)
    }

    async fn revoke_session_audited(
        &self,
        id: &SessionId,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<bool>, StoreError> {
        let mut sessions = write(&self.sessions)?;
        let mut trail = write(&self.audit)?;
        let revoked = sessions.revoke(id, now);
        if revoked {
            trail.push(event.clone());
        }
        Ok(Audited::recorded(revoked))
    }

    async fn revoke_user_sessions_audited(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
        event: &AuditEvent,
    ) -> Result<Audited<Vec<SessionId>>, StoreError> {
        let mut sessions = write(&self.sessions)?;
        let mut trail = write(&self.audit)?;
        let revoked = sessions.revoke_all(user_id, keep, now);
        if !revoked.is_empty() {
            trail.push(event.clone().detail("count", revoked.len()));
        }
        Ok(Audited::recorded(revoked))
    }
}
