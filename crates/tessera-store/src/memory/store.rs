//! [`MemoryStore`]: users, sessions and the revocation log in hash maps. Refresh-token chains,
//! keys, API clients and the log's [`RevocationLog`](tessera_core::RevocationLog) face, which
//! live in the same store, are in the sibling modules `refresh`, `keys`, `clients` and
//! `revocation_log`.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{
    Revocation, SessionId, SessionRecord, SessionStore, StoreError, Timestamp, User, UserId,
    UserRecord, UserStore, Username,
};

use super::clients::Clients;
use super::keys::Keys;
use super::refresh::RefreshChains;
use super::{read, write};

/// Users, sessions, the revocation log, refresh-token chains, signing keys and API clients, in
/// memory.
///
/// Implements [`UserStore`], [`SessionStore`], [`RefreshStore`](tessera_core::RefreshStore),
/// [`KeyStore`](tessera_core::KeyStore) and [`ClientStore`](tessera_core::ClientStore); pair
/// it with a [`MemoryThrottle`](super::MemoryThrottle). Each kind of record sits behind its own
/// lock so that, say, account look-ups never wait on session writes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: RwLock<Users>,
    pub(super) sessions: RwLock<Sessions>,
    pub(super) refresh: RwLock<RefreshChains>,
    pub(super) keys: RwLock<Keys>,
    pub(super) clients: RwLock<Clients>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

#[derive(Debug, Default)]
struct Users {
    by_id: HashMap<UserId, StoredUser>,
    by_key: HashMap<String, UserId>,
    /// Counts insertions, so users created in the same millisecond still list in order.
    inserted: u64,
}

#[derive(Debug)]
struct StoredUser {
    record: UserRecord,
    key: String,
    order: u64,
}

#[derive(Debug, Default)]
pub(super) struct Sessions {
    by_id: HashMap<SessionId, SessionRecord>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
    /// Every session keyed by when it ends (the earlier of its idle and absolute expiry), so a
    /// purge visits only what it deletes.
    by_end: BTreeSet<(Timestamp, SessionId)>,
    /// Oldest first; sequences strictly increase from front to back.
    revocations: VecDeque<Revocation>,
    /// The highest sequence ever assigned. Trimming the log does not lower it, so a sequence
    /// is never handed out twice.
    last_sequence: u64,
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
        self.append_revocation(session_id, user_id, now);
        true
    }

    /// Appends one entry to the revocation log under the next sequence.
    pub(super) fn append_revocation(
        &mut self,
        session_id: SessionId,
        user_id: UserId,
        revoked_at: Timestamp,
    ) {
        self.last_sequence += 1;
        self.revocations.push_back(Revocation {
            sequence: self.last_sequence,
            session_id,
            user_id,
            revoked_at,
        });
    }

    /// Log entries with `sequence > after`, oldest first, at most `limit`.
    pub(super) fn revocations_since(&self, after: u64, limit: usize) -> Vec<Revocation> {
        let log = &self.revocations;
        let start = log.partition_point(|revocation| revocation.sequence <= after);
        log.range(start..).take(limit).cloned().collect()
    }

    /// The highest sequence ever assigned.
    pub(super) fn revocation_cursor(&self) -> u64 {
        self.last_sequence
    }

    /// Drops at most `limit` log entries revoked before `cutoff`. Returns how many went.
    pub(super) fn trim_revocations(&mut self, cutoff: Timestamp, limit: usize) -> u64 {
        // The log is in sequence order, which is revocation order unless the clock stepped
        // back; trimming from the front keeps it a contiguous suffix either way.
        let mut trimmed = 0;
        while trimmed < limit
            && self
                .revocations
                .front()
                .is_some_and(|oldest| oldest.revoked_at < cutoff)
        {
            self.revocations.pop_front();
            trimmed += 1;
        }
        trimmed as u64
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(
        &self,
        username: &Username,
        record: &UserRecord,
    ) -> Result<(), StoreError> {
        let mut users = write(&self.users)?;
        if users.by_key.contains_key(username.key()) || users.by_id.contains_key(&record.user.id) {
            return Err(StoreError::Conflict);
        }
        users.inserted += 1;
        let order = users.inserted;
        users
            .by_key
            .insert(username.key().to_owned(), record.user.id.clone());
        users.by_id.insert(
            record.user.id.clone(),
            StoredUser {
                record: record.clone(),
                key: username.key().to_owned(),
                order,
            },
        );
        Ok(())
    }

    async fn user_by_username(&self, username_key: &str) -> Result<Option<UserRecord>, StoreError> {
        let users = read(&self.users)?;
        Ok(users
            .by_key
            .get(username_key)
            .and_then(|id| users.by_id.get(id))
            .map(|stored| stored.record.clone()))
    }

    async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(read(&self.users)?
            .by_id
            .get(id)
            .map(|stored| stored.record.clone()))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let users = read(&self.users)?;
        let mut listed: Vec<&StoredUser> = users.by_id.values().collect();
        listed.sort_by_key(|stored| (stored.record.user.created_at, stored.order));
        Ok(listed
            .into_iter()
            .map(|stored| stored.record.user.clone())
            .collect())
    }

    async fn set_password_hash(
        &self,
        id: &UserId,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let mut users = write(&self.users)?;
        match users.by_id.get_mut(id) {
            Some(stored) => {
                password_hash.clone_into(&mut stored.record.password_hash);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        let mut users = write(&self.users)?;
        match users.by_id.remove(id) {
            Some(stored) => {
                users.by_key.remove(&stored.key);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        read(&self.users).map(drop)
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

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        Ok(write(&self.sessions)?.revoke(id, now))
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut sessions = write(&self.sessions)?;
        let candidates: Vec<SessionId> = sessions
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter(|id| Some(*id) != keep)
            .cloned()
            .collect();
        Ok(candidates
            .into_iter()
            .filter(|id| sessions.revoke(id, now))
            .collect())
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        Ok(read(&self.sessions)?.revocations_since(after, limit))
    }

    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        Ok(read(&self.sessions)?.revocation_cursor())
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
        Ok(removed + sessions.trim_revocations(cutoff, limit))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        read(&self.sessions).map(drop)
    }
}
