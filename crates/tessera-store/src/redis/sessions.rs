//! [`SessionStore`] for [`RedisStore`]: one key per session (its id), a per-user index, user
//! agent texts stored once each, and revocations logged durably before Redis records them
//! (see the module docs of `redis` for the three steps).

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_core::{
    Revocation, SessionId, SessionRecord, SessionStore, StoreError, Timestamp, UserId,
};

use super::purge::{MAX_PURGE, Purge};
use super::record::{self, short_time};
use super::{RedisStore, millis, scripts, ttl_ms};

/// How long a claimed revocation holds its session before another caller may take it over
/// (when the claimer died): longer than a revocation-log write takes.
const CLAIM_LEASE: Duration = Duration::from_secs(10);

/// How long a revocation waits for a concurrent one of the same session to finish before
/// failing with [`StoreError::Unavailable`].
const CLAIM_WAIT: Duration = Duration::from_secs(3);

/// Pause between looks at a concurrent revocation.
const CLAIM_POLL: Duration = Duration::from_millis(5);

/// Log entries applied to Redis per script call.
const APPLY_BATCH: usize = 500;

/// Another caller is revoking the same session and has not finished in time.
#[derive(Debug)]
struct RevocationInProgress;

impl fmt::Display for RevocationInProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a concurrent revocation of the same session did not finish in time")
    }
}

impl std::error::Error for RevocationInProgress {}

/// What claiming one session found.
enum Claim {
    Unknown,
    Revoked,
    Busy,
    Claimed(UserId),
}

/// A raw id read back from Redis.
fn raw_id(bytes: &[u8]) -> Result<[u8; 16], StoreError> {
    <[u8; 16]>::try_from(bytes).map_err(|_| record::malformed("id"))
}

/// When a session ends: the earlier of its expiries.
fn ends_at(record: &SessionRecord) -> Timestamp {
    record.idle_expires_at.min(record.expires_at)
}

impl RedisStore {
    /// A fresh claim nonce: 128 random bits, so no two revocations mistake each other's claim.
    fn nonce() -> Result<String, StoreError> {
        SessionId::generate()
            .map(|id| id.as_str().to_owned())
            .map_err(StoreError::unavailable)
    }

    async fn claim_session(
        &self,
        id: &SessionId,
        nonce: &str,
        now: Timestamp,
    ) -> Result<Claim, StoreError> {
        let mut connection = self.connection();
        let (code, user): (i64, Option<Vec<u8>>) = self
            .run(
                scripts::CLAIM_SESSION
                    .arg(self.key_names().prefix())
                    .arg(&id.to_bytes()[..])
                    .arg(nonce)
                    .arg(millis(CLAIM_LEASE))
                    .arg(&short_time(now)[..])
                    .invoke_async(&mut connection),
            )
            .await?;
        Ok(match (code, user) {
            (0, _) => Claim::Unknown,
            (1, _) => Claim::Revoked,
            (2, _) => Claim::Busy,
            (3, Some(user)) => Claim::Claimed(UserId::from_bytes(&raw_id(&user)?)),
            _ => return Err(record::malformed("claim reply")),
        })
    }

    /// Claims every unrevoked session of `user_id` but `keep`. Returns how many are claimed by
    /// someone else, and the ids claimed for this call.
    async fn claim_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        nonce: &str,
        now: Timestamp,
    ) -> Result<(u64, Vec<SessionId>), StoreError> {
        let mut connection = self.connection();
        let reply: Vec<redis::Value> = self
            .run(
                scripts::CLAIM_USER_SESSIONS
                    .key(self.key_names().user(user_id))
                    .arg(self.key_names().prefix())
                    .arg(nonce)
                    .arg(millis(CLAIM_LEASE))
                    .arg(&short_time(now)[..])
                    .arg(keep.map_or(Vec::new(), |keep| keep.to_bytes().to_vec()))
                    .invoke_async(&mut connection),
            )
            .await?;
        let mut reply = reply.into_iter();
        let busy = match reply.next() {
            Some(redis::Value::Int(busy)) => u64::try_from(busy).unwrap_or(0),
            _ => return Err(record::malformed("claim reply")),
        };
        let claimed = reply
            .map(|id| {
                let id: Vec<u8> =
                    redis::from_redis_value(id).map_err(|_| record::malformed("claim reply"))?;
                Ok(SessionId::from_bytes(&raw_id(&id)?))
            })
            .collect::<Result<_, _>>()?;
        Ok((busy, claimed))
    }

    /// Steps 2 and 3 of a revocation: log the claimed sessions durably, then mark them
    /// revoked in Redis and wake listeners. If logging fails the claims are handed back.
    async fn log_then_mark(
        &self,
        entries: &[(SessionId, UserId)],
        nonce: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if let Err(error) = self.shared.log.log_revocations(entries, now).await {
            // Nothing was logged, so nothing may stay revoked. Should this fail too, the
            // sessions keep reading as revoked until a retry logs them: safe.
            if let Err(release) = self.release(entries, nonce).await {
                tracing::warn!(error = %release, "could not hand back revocation claims");
            }
            return Err(error);
        }
        // From here the revocation is durable. If Redis fails now (or this process dies),
        // the sessions stay marked "being revoked" — read as revoked everywhere — until a
        // retry or the next purge applies the log.
        let mut connection = self.connection();
        let mut commit = scripts::COMMIT_REVOCATIONS.prepare_invoke();
        commit
            .arg(self.key_names().prefix())
            .arg(nonce)
            .arg(&short_time(now)[..]);
        for (id, _) in entries {
            commit.arg(&id.to_bytes()[..]);
        }
        let () = self.run(commit.invoke_async(&mut connection)).await?;
        self.publish().await;
        Ok(())
    }

    async fn release(
        &self,
        entries: &[(SessionId, UserId)],
        nonce: &str,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let mut release = scripts::RELEASE_REVOCATIONS.prepare_invoke();
        release.arg(self.key_names().prefix()).arg(nonce);
        for (id, _) in entries {
            release.arg(&id.to_bytes()[..]);
        }
        self.run(release.invoke_async(&mut connection)).await
    }

    /// Wakes [`RevocationNotifier`](tessera_core::RevocationNotifier) listeners. A hint only:
    /// listeners also poll the log, so a failure is logged, not returned.
    async fn publish(&self) {
        let mut connection = self.connection();
        let published: Result<u64, _> = self
            .run(
                redis::cmd("PUBLISH")
                    .arg(self.key_names().channel())
                    .arg("1")
                    .query_async(&mut connection),
            )
            .await;
        if let Err(error) = published {
            tracing::warn!(%error, "could not publish a revocation wake-up");
        }
    }

    /// The user's sessions live at `now`, as stored (user agents not yet looked up), in no
    /// particular order.
    async fn live_sessions_of(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<record::StoredSession>, StoreError> {
        let mut connection = self.connection();
        let found: Vec<Vec<u8>> = self
            .run(
                scripts::SESSIONS_OF_USER
                    .key(self.key_names().user(user_id))
                    .arg(self.key_names().prefix())
                    .arg(now.unix_millis())
                    .invoke_async(&mut connection),
            )
            .await?;
        let mut stored = Vec::with_capacity(found.len() / 2);
        for pair in found.chunks(2) {
            let [id, value] = pair else {
                return Err(record::malformed("session list"));
            };
            let session = record::decode_session(SessionId::from_bytes(&raw_id(id)?), value)?;
            // The index scores say "not ended"; this also checks revocation and both
            // expiries exactly, whatever the index says.
            if session.record.is_live(now) {
                stored.push(session);
            }
        }
        Ok(stored)
    }

    /// Marks in Redis every revocation the durable log holds beyond what was applied here
    /// before: repairs a revocation whose commit step never ran. Returns how many sessions it
    /// marked.
    async fn apply_logged_revocations(&self) -> Result<u64, StoreError> {
        let applied_key = self.key_names().applied();
        let mut connection = self.connection();
        let applied: Option<u64> = self
            .run(
                redis::cmd("GET")
                    .arg(&applied_key)
                    .query_async(&mut connection),
            )
            .await?;
        let mut after = applied.unwrap_or(0);
        let mut marked = 0;
        loop {
            let batch = self.shared.log.logged_since(after, APPLY_BATCH).await?;
            let Some(last) = batch.last() else {
                return Ok(marked);
            };
            let mut apply = scripts::APPLY_LOGGED_REVOCATIONS.prepare_invoke();
            apply
                .key(&applied_key)
                .arg(self.key_names().prefix())
                .arg(last.sequence);
            // User entries name no session: nothing to mark for them.
            for (session_id, entry) in batch
                .iter()
                .filter_map(|entry| Some((entry.session_id()?, entry)))
            {
                apply
                    .arg(&session_id.to_bytes()[..])
                    .arg(&short_time(entry.revoked_at)[..]);
            }
            marked += self.run(apply.invoke_async::<u64>(&mut connection)).await?;
            after = last.sequence;
            if batch.len() < APPLY_BATCH {
                return Ok(marked);
            }
        }
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let ends = ends_at(record).unix_millis();
        let ttl = ttl_ms(ends, record.last_seen_at.unix_millis(), self.retention_ms());
        let mut connection = self.connection();
        let mut insert = scripts::INSERT_SESSION.prepare_invoke();
        insert
            .key(self.key_names().session(&record.id))
            .key(self.key_names().user(&record.user_id))
            .arg(record::encode_session(record)?)
            .arg(ttl)
            .arg(ends)
            .arg(&record.id.to_bytes()[..]);
        if let Some(user_agent) = &record.user_agent {
            insert
                .key(
                    self.key_names()
                        .user_agent(&record::user_agent_digest(user_agent)),
                )
                .arg(user_agent.as_str());
        }
        let inserted: bool = self.run(insert.invoke_async(&mut connection)).await?;
        if inserted {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn session_by_id(&self, id: &SessionId) -> Result<Option<SessionRecord>, StoreError> {
        let value = self.shared.reads.get(self.key_names().session(id)).await?;
        let Some(value) = value else {
            return Ok(None);
        };
        let stored = record::decode_session(id.clone(), &value)?;
        self.with_user_agent(stored).await.map(Some)
    }

    async fn touch_session(
        &self,
        id: &SessionId,
        seen: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut times = [0; 2 * record::TIME_LEN];
        times[..record::TIME_LEN].copy_from_slice(&short_time(seen));
        times[record::TIME_LEN..].copy_from_slice(&short_time(idle_expires_at));
        let mut connection = self.connection();
        self.run(
            scripts::TOUCH_SESSION
                .arg(self.key_names().prefix())
                .arg(&id.to_bytes()[..])
                .arg(seen.unix_millis())
                .arg(idle_expires_at.unix_millis())
                .arg(&times[..])
                .arg(self.retention_ms())
                .invoke_async(&mut connection),
        )
        .await
    }

    async fn record_authentication(
        &self,
        id: &SessionId,
        auth_time: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection();
        self.run(
            scripts::RECORD_AUTHENTICATION
                .arg(self.key_names().prefix())
                .arg(&id.to_bytes()[..])
                .arg(auth_time.unix_millis())
                .arg(&short_time(auth_time)[..])
                .invoke_async(&mut connection),
        )
        .await
    }

    async fn sessions_of_user(
        &self,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let stored = self.live_sessions_of(user_id, now).await?;
        let mut live = self.with_user_agents(stored).await?;
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
        // Through the user's index: a child shares its parent's user, and a user has few
        // sessions. No user agent texts are needed, so none is fetched.
        let mut children: Vec<SessionRecord> = self
            .live_sessions_of(user_id, now)
            .await?
            .into_iter()
            .map(|stored| stored.record)
            .filter(|record| record.parent.as_ref().is_some_and(|of| &of.id == parent))
            .collect();
        children.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(children.into_iter().map(|record| record.id).collect())
    }

    async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool, StoreError> {
        let nonce = RedisStore::nonce()?;
        let deadline = Instant::now() + CLAIM_WAIT;
        let user_id = loop {
            match self.claim_session(id, &nonce, now).await? {
                Claim::Unknown | Claim::Revoked => return Ok(false),
                Claim::Claimed(user_id) => break user_id,
                // Another caller is logging this very revocation: its outcome decides ours.
                Claim::Busy if Instant::now() < deadline => tokio::time::sleep(CLAIM_POLL).await,
                Claim::Busy => return Err(StoreError::unavailable(RevocationInProgress)),
            }
        };
        self.log_then_mark(&[(id.clone(), user_id)], &nonce, now)
            .await?;
        Ok(true)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        now: Timestamp,
    ) -> Result<Vec<SessionId>, StoreError> {
        let nonce = RedisStore::nonce()?;
        let deadline = Instant::now() + CLAIM_WAIT;
        let claimed = loop {
            // Claims are kept across rounds (the nonce is ours), so each round only adds the
            // sessions another revocation has let go of.
            let (busy, claimed) = self.claim_user_sessions(user_id, keep, &nonce, now).await?;
            if busy == 0 {
                break claimed;
            }
            if Instant::now() >= deadline {
                let entries: Vec<_> = claimed
                    .into_iter()
                    .map(|id| (id, user_id.clone()))
                    .collect();
                if let Err(error) = self.release(&entries, &nonce).await {
                    tracing::warn!(%error, "could not hand back revocation claims");
                }
                return Err(StoreError::unavailable(RevocationInProgress));
            }
            tokio::time::sleep(CLAIM_POLL).await;
        };
        if claimed.is_empty() {
            return Ok(claimed);
        }
        let entries: Vec<(SessionId, UserId)> = claimed
            .iter()
            .map(|id| (id.clone(), user_id.clone()))
            .collect();
        self.log_then_mark(&entries, &nonce, now).await?;
        Ok(claimed)
    }

    async fn log_lost_revocation(
        &self,
        id: &SessionId,
        user_id: &UserId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // Redis forgot the session (a restart without persistence); the durable log still
        // gets the revocation, so every instance that caches the session drops it.
        self.shared
            .log
            .log_revocations(&[(id.clone(), user_id.clone())], now)
            .await?;
        self.publish().await;
        Ok(true)
    }

    async fn mark_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        // Durable in the SQL log first, then the same wake-up as a revocation.
        self.shared.log.log_user_stale(user_id, at).await?;
        self.publish().await;
        Ok(())
    }

    async fn revocations_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Revocation>, StoreError> {
        self.shared.log.logged_since(after, limit).await
    }

    async fn revocation_cursor(&self) -> Result<u64, StoreError> {
        self.shared.log.log_cursor().await
    }

    async fn purge_expired(
        &self,
        now: Timestamp,
        revocation_retention: Duration,
        limit: usize,
    ) -> Result<u64, StoreError> {
        // First the log's revocations, before any of them is trimmed: a revocation whose
        // commit step never ran gets its final mark here.
        self.apply_logged_revocations().await?;
        // A session has ended once `now` reaches the earlier of its expiries — its index
        // score — exactly when `SessionRecord::is_live` turns false for good.
        let sessions = self
            .scan_purge(Purge::Sessions, now.unix_millis(), limit)
            .await?;
        let cutoff = now.saturating_sub(revocation_retention);
        let trimmed = self
            .shared
            .log
            .trim_log(cutoff, limit.min(MAX_PURGE))
            .await?;
        Ok(sessions + trimmed)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: String = self
            .run(redis::cmd("PING").query_async(&mut connection))
            .await?;
        Ok(())
    }
}
