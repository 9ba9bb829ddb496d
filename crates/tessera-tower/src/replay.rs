//! Replay guards: where the `jti` of every one-time operation token accepted is recorded
//! until the token expires, so a second presentation is refused. In memory for one process
//! ([`MemoryReplayGuard`], the default); in Redis for services running several replicas
//! (`RedisReplayGuard`, cargo feature `redis`).

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures_util::future::BoxFuture;

use crate::feed;

/// Records one-time operation tokens as used. Shared by every request of a layer (and, for
/// a shared backend, by every replica of a service).
///
/// The contract every implementation keeps:
/// - [`consume`](Self::consume) is atomic per `token_id`: of any number of concurrent calls
///   with the same id — from this process or, for a shared backend, from any replica — exactly
///   one answers [`Presentation::First`]; every other call, and every later one while the id
///   is remembered, answers [`Presentation::Replay`].
/// - An id is remembered at least until `remember_until` (unix seconds: the token's `exp`
///   plus the verifier's leeway, after which the verifier refuses the token anyway), and may
///   be forgotten after it.
/// - When the guard cannot tell (its backend unreachable or too slow, its memory full) it
///   answers an error, never `First`: the layer then answers `503` with `Retry-After`
///   (fail closed). An id the guard may or may not have recorded before failing is lost to
///   its holder, who asks Tessera for a new token.
pub trait ReplayGuard: fmt::Debug + Send + Sync + 'static {
    /// Records `token_id` as presented, remembered until `remember_until`, and says whether
    /// it had been presented before.
    fn consume<'a>(
        &'a self,
        token_id: &'a str,
        remember_until: i64,
    ) -> BoxFuture<'a, Result<Presentation, GuardError>>;
}

/// What a replay guard found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presentation {
    /// The id was not recorded: it is now, and this presentation is the one accepted.
    First,
    /// The id was recorded before: refuse the token.
    Replay,
}

/// Why a replay guard could not tell whether a token was used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The in-memory guard holds `capacity` unexpired ids already.
    #[error("the replay guard is full ({capacity} unexpired tokens)")]
    Full {
        /// The configured capacity.
        capacity: usize,
    },
    /// The backend did not answer within the timeout.
    #[error("the replay guard did not answer within {0:?}")]
    TimedOut(Duration),
    /// The backend failed (connection refused or lost, an error reply).
    #[error("the replay guard's backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The default replay guard: the ids of one process's accepted one-time tokens in memory.
/// Right for a service running one replica; with several, a token could be accepted once
/// by each — use a shared guard (`RedisReplayGuard`).
///
/// Bounded: at most `capacity` unexpired ids (about 100 bytes each); each is dropped by a
/// sweep once its `remember_until` has passed. Sweeps run on the request path, at most every
/// 10 seconds, and when the guard is full; a guard still full after a sweep refuses new
/// tokens with [`GuardError::Full`] rather than forget one early.
#[derive(Debug)]
pub struct MemoryReplayGuard {
    /// `jti` → `remember_until`, unix seconds.
    seen: DashMap<Box<str>, i64>,
    capacity: usize,
    /// About how many ids `seen` holds (exact after each sweep), so the request path never
    /// locks every shard to count.
    count: AtomicUsize,
    last_sweep: AtomicI64,
}

/// How often the memory guard sweeps expired ids, at most.
const SWEEP_EVERY_SECONDS: i64 = 10;

impl MemoryReplayGuard {
    /// The default capacity: `100000` unexpired tokens (about 10 MB), over 300 one-time
    /// tokens a second at the default 5-minute lifetime bound.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A guard remembering at most `capacity` unexpired ids.
    pub fn new(capacity: usize) -> MemoryReplayGuard {
        MemoryReplayGuard {
            seen: DashMap::new(),
            capacity,
            count: AtomicUsize::new(0),
            last_sweep: AtomicI64::new(feed::now_unix()),
        }
    }

    /// Ids remembered now (approximate between sweeps).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`ReplayGuard::consume`] at `now` (unix seconds).
    fn consume_at(
        &self,
        token_id: &str,
        remember_until: i64,
        now: i64,
    ) -> Result<Presentation, GuardError> {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= SWEEP_EVERY_SECONDS
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep(now);
        }
        if self.seen.contains_key(token_id) {
            return Ok(Presentation::Replay);
        }
        if self.count.load(Ordering::Relaxed) >= self.capacity {
            self.sweep(now);
            if self.count.load(Ordering::Relaxed) >= self.capacity {
                return Err(GuardError::Full {
                    capacity: self.capacity,
                });
            }
        }
        // The entry holds its shard's lock: of concurrent callers, one finds it vacant.
        match self.seen.entry(token_id.into()) {
            Entry::Occupied(_) => Ok(Presentation::Replay),
            Entry::Vacant(vacant) => {
                vacant.insert(remember_until);
                self.count.fetch_add(1, Ordering::Relaxed);
                Ok(Presentation::First)
            }
        }
    }

    /// Drops ids whose `remember_until` has passed.
    fn sweep(&self, now: i64) {
        self.seen.retain(|_, remember_until| now <= *remember_until);
        self.count.store(self.seen.len(), Ordering::Relaxed);
    }
}

impl Default for MemoryReplayGuard {
    /// A guard of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY).
    fn default() -> Self {
        MemoryReplayGuard::new(Self::DEFAULT_CAPACITY)
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn consume<'a>(
        &'a self,
        token_id: &'a str,
        remember_until: i64,
    ) -> BoxFuture<'a, Result<Presentation, GuardError>> {
        let answer = self.consume_at(token_id, remember_until, feed::now_unix());
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(feature = "redis")]
pub use self::redis::RedisReplayGuard;

#[cfg(feature = "redis")]
mod redis {
    use std::time::Duration;

    use futures_util::future::BoxFuture;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};

    use super::{GuardError, Presentation, ReplayGuard};
    use crate::feed;

    /// A replay guard in Redis, shared by every replica of a service: one `SET key 1 NX PX
    /// ttl` per accepted token (one round trip; Redis makes it atomic across replicas), the
    /// key `prefix` + `jti`, expiring by itself once the token has.
    ///
    /// Fails closed: Redis unreachable, or slower than the command timeout, is
    /// [`GuardError`], which the layer answers `503` with `Retry-After`; the connection is
    /// re-established in the background. Give every service its own prefix (or its own
    /// database): two services sharing one would still refuse a replay, as `jti`s are
    /// unique, but their keys would mix.
    #[derive(Clone)]
    pub struct RedisReplayGuard {
        connection: ConnectionManager,
        prefix: String,
        command_timeout: Duration,
    }

    impl std::fmt::Debug for RedisReplayGuard {
        fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // The connection (and any password in its URL) stays out of logs.
            formatter
                .debug_struct("RedisReplayGuard")
                .field("prefix", &self.prefix)
                .field("command_timeout", &self.command_timeout)
                .finish_non_exhaustive()
        }
    }

    impl RedisReplayGuard {
        /// The default command timeout, `1s`: past it a presentation is answered `503`.
        pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

        /// Connects to the Redis at `url` (`redis://[:password@]host:port[/db]`), keys under
        /// `prefix` (e.g. `billing:used-tokens:`). Fails when Redis cannot be reached now,
        /// within [`DEFAULT_COMMAND_TIMEOUT`](Self::DEFAULT_COMMAND_TIMEOUT) per attempt,
        /// so a misconfigured service does not start; later outages are answered `503`.
        pub async fn connect(
            url: &str,
            prefix: impl Into<String>,
        ) -> Result<RedisReplayGuard, GuardError> {
            let backend = |error: redis::RedisError| GuardError::Backend(Box::new(error));
            let client = redis::Client::open(url).map_err(backend)?;
            let timeout = Self::DEFAULT_COMMAND_TIMEOUT;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            let connection = tokio::time::timeout(
                timeout.saturating_mul(4),
                ConnectionManager::new_with_config(client, config),
            )
            .await
            .map_err(|_| GuardError::TimedOut(timeout.saturating_mul(4)))?
            .map_err(backend)?;
            Ok(RedisReplayGuard {
                connection,
                prefix: prefix.into(),
                command_timeout: timeout,
            })
        }

        /// How long one `SET` may take before the presentation is answered `503`.
        /// Defaults to `1s`.
        #[must_use]
        pub fn command_timeout(mut self, timeout: Duration) -> RedisReplayGuard {
            self.command_timeout = timeout;
            self
        }

        /// The key prefix.
        pub fn prefix(&self) -> &str {
            &self.prefix
        }
    }

    impl ReplayGuard for RedisReplayGuard {
        fn consume<'a>(
            &'a self,
            token_id: &'a str,
            remember_until: i64,
        ) -> BoxFuture<'a, Result<Presentation, GuardError>> {
            Box::pin(async move {
                // Whole seconds past now, plus one: Redis's clock is not ours, and keeping
                // a key a second longer than needed costs nothing.
                let ttl_ms = remember_until
                    .saturating_sub(feed::now_unix())
                    .saturating_add(1)
                    .max(1)
                    .saturating_mul(1000);
                let mut connection = self.connection.clone();
                let mut command = redis::cmd("SET");
                command
                    .arg(format!("{}{token_id}", self.prefix))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms);
                let set = command.query_async::<Option<String>>(&mut connection);
                match tokio::time::timeout(self.command_timeout, set).await {
                    Err(_) => Err(GuardError::TimedOut(self.command_timeout)),
                    Ok(Err(error)) => Err(GuardError::Backend(Box::new(error))),
                    Ok(Ok(Some(_))) => Ok(Presentation::First),
                    Ok(Ok(None)) => Ok(Presentation::Replay),
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_id_is_accepted_once_and_remembered_until_its_time() {
        let guard = MemoryReplayGuard::new(10);
        let now = 1_000;
        assert_eq!(
            guard.consume_at("a", now + 60, now).unwrap(),
            Presentation::First
        );
        assert_eq!(
            guard.consume_at("a", now + 60, now + 1).unwrap(),
            Presentation::Replay
        );
        assert_eq!(
            guard.consume_at("b", now + 60, now).unwrap(),
            Presentation::First
        );
        guard.sweep(now + 60);
        assert_eq!(
            guard.consume_at("a", now + 60, now + 60).unwrap(),
            Presentation::Replay,
            "still remembered at remember_until"
        );
        guard.sweep(now + 61);
        assert!(guard.is_empty());
    }

    #[test]
    fn a_full_guard_sweeps_then_refuses_rather_than_forget_early() {
        let guard = MemoryReplayGuard::new(2);
        let now = 1_000;
        guard.consume_at("a", now + 5, now).unwrap();
        guard.consume_at("b", now + 60, now).unwrap();
        assert!(matches!(
            guard.consume_at("c", now + 60, now),
            Err(GuardError::Full { capacity: 2 })
        ));
        assert_eq!(
            guard.consume_at("a", now + 5, now + 1).unwrap(),
            Presentation::Replay,
            "a full guard still answers for what it holds"
        );
        // `a` has expired by now + 6: the sweep makes room.
        assert_eq!(
            guard.consume_at("c", now + 60, now + 6).unwrap(),
            Presentation::First
        );
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn expired_ids_are_swept_on_the_way() {
        let guard = MemoryReplayGuard::new(100);
        let start = guard.last_sweep.load(Ordering::Relaxed);
        for index in 0..50 {
            guard
                .consume_at(&format!("old-{index}"), start + 1, start)
                .unwrap();
        }
        assert_eq!(guard.len(), 50);
        guard
            .consume_at("new", start + 100, start + SWEEP_EVERY_SECONDS)
            .unwrap();
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn concurrent_presentations_of_one_id_accept_exactly_one() {
        let guard = std::sync::Arc::new(MemoryReplayGuard::new(100));
        let accepted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let guard = &guard;
                    scope.spawn(move || guard.consume_at("same", 2_000, 1_000).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| usize::from(handle.join().unwrap() == Presentation::First))
                .sum()
        });
        assert_eq!(accepted, 1);
    }
}
