//! [`RedisStore`]: sessions, refresh-token chains and login-throttle counters in Redis — the
//! hot, shared, expiring state of a deployment with several instances — while the revocation
//! log stays in a durable [`RevocationLog`] (SQL).
//!
//! # Durability
//!
//! Redis may forget sessions: a restart without an append-only file loses all of them, and
//! their users log in again. That is safe. Losing a *revocation* is not — a verifier would
//! accept the session's tokens again — so no revocation is confirmed before the durable log
//! holds it, and Redis is never its only keeper. A revocation takes three steps:
//!
//! 1. **Claim** (one script): the session is marked "being revoked", which every read already
//!    reports as revoked and every touch refuses, and a lease (`c` key, 10 s) names the
//!    caller. A concurrent revocation of the same session waits for the claim to resolve, so
//!    exactly one caller logs it and returns `true`.
//! 2. **Log**: the entry is written to the durable [`RevocationLog`]. If that fails, the claim
//!    is handed back (the session is live again) and the call fails.
//! 3. **Commit** (one script): the session is marked revoked and the lease dropped; then a
//!    wake-up is published on `<prefix>revocations` for
//!    [`RevocationNotifier`](tessera_core::RevocationNotifier) listeners.
//!
//! A crash between steps 2 and 3 leaves a logged revocation whose Redis record is still
//! marked "being revoked": it keeps reading as revoked, so no instance validates the session
//! again. Once the lease has run out, a retried revocation claims it anew and logs it a
//! second time (a harmless duplicate for feed consumers), and every
//! [`purge_expired`](tessera_core::SessionStore::purge_expired) first applies the log's
//! entries to Redis, so the mark becomes final there too. The server's in-process
//! revocation set (every revocation the log names, checked on every store read) covers that
//! window as well; the claim keeps it closed for every other reader of the store. A crash
//! between steps 1 and 2 leaves a session that reads as revoked but is not logged: its user
//! is logged out, verifiers of access tokens learn nothing until those tokens expire, and a
//! retried revocation logs it.
//!
//! After a Redis restart, sessions, refresh chains and counters start empty; the log, in SQL,
//! is untouched, and [`revocations_since`](tessera_core::SessionStore::revocations_since) and
//! [`revocation_cursor`](tessera_core::SessionStore::revocation_cursor) read it.
//!
//! # Keys
//!
//! Every key and the channel start with [`RedisOptions::prefix`], then one tag byte:
//!
//! | key | holds | TTL |
//! |---|---|---|
//! | `s` + session id (16 raw bytes) | the session (binary, below) | its end + retention |
//! | `u` + user id (16 raw bytes) | sorted set: raw session id → when it ends (ms) | the longest of its sessions' |
//! | `a` + user agent digest (8 bytes) | the user agent's text, once for every session that sent it | the longest of those sessions' |
//! | `c` + session id (16 raw bytes) | the nonce of a revocation in progress | 10 s lease |
//! | `r` + token hash | the refresh record (binary) | its expiry + retention |
//! | `t` + throttle key | `count:window start` | the window |
//! | `l` | the last log sequence applied here | none (one key) |
//!
//! A session is found by its id, which its token carries (`SessionToken` is the id followed
//! by the secret), so it needs one key, not a second one by token hash. Its value is
//! `[format 2, 3 or 4][state 1][last_seen_at 6][idle_expires_at 6][expires_at 6]
//! [created_at 6][user id 16][verifier 16][transport 1][user agent: 0, or 1 + digest 8]
//! [address: tag + 4, 16 or text][parent: session id 16 + audience length 4 + text, format 4
//! only][auth_time 6, formats 3 and 4][revoked_at 6, unless live]` — times big-endian
//! 48-bit milliseconds, fixed fields first so scripts read and overwrite them in place; a
//! revocation rewrites the value (keeping its TTL). Format 2 is a session whose `auth_time`
//! is its `created_at` (as login wrote it): most sessions, kept 6 bytes shorter; a
//! re-authentication rewrites it as format 3. Format 4 is a child session (one a service
//! obtained by token exchange), the only kind that stores a parent; a re-authentication
//! keeps it format 4. (A version before format 4 reports such a value as corrupt, in a
//! listing or a "log out everywhere" of its user too: finish a rolling upgrade before
//! services exchange tokens for sessions.) The verifier is the first 128 bits of the SHA-256 of the token's
//! secret; the engine compares it in constant time. A refresh value is `[format][flags]
//! [spent_at 8][successor 32][issued_at 8][expires_at 8][access_expires_at 8][session id 22]
//! [access token id…]`. Tokens are never stored.
//!
//! # Expiry
//!
//! Tests and the engine pass times from a [`Clock`](tessera_core::Clock), not Redis's, so TTLs
//! are relative to a record's own times: on insert `min(idle_expires_at, expires_at) −
//! last_seen_at + retention`, on touch `min(idle_expires_at, expires_at) − seen + retention`,
//! for a refresh record `expires_at − issued_at + retention` (never an absolute `PEXPIREAT`).
//! [`RedisOptions::ended_retention`] keeps ended and revoked records readable for a while, as
//! the contract wants (the caller decides what an expired or revoked record means), and covers
//! the engine's touch interval, by which the stored idle expiry may lag. The user index never
//! expires before its longest session, and drops members whose session is gone as it reads
//! them and on purge, so it does not leak.
//!
//! [`purge_expired`](tessera_core::SessionStore::purge_expired) and
//! [`purge_refresh`](tessera_core::RefreshStore::purge_refresh) walk the keys with `SCAN`
//! (resuming where the previous call stopped): TTLs do the real work, purging deletes what
//! ended before its TTL runs out. A call costs up to one pass over the keyspace.
//!
//! # Reads under load
//!
//! Without the in-process session cache every request reads its session from Redis (with it,
//! every miss does). Those reads go through one queue per store: a task waits until the other
//! requests ready in the same turn of the scheduler have queued theirs, then sends them as one
//! `MGET` (a single read stays a `GET`), so concurrent requests share one round trip and Redis
//! wakes once for all of them ("auto-pipelining"); a lone request pays one hop through the
//! queue. What that buys under load is measured in `docs/benchmarks.md`. Each read still
//! waits about [`RedisOptions::command_timeout`] at most, and a failed batch fails every read
//! in it with [`StoreError::Unavailable`]. Every other command is sent as it comes.
//!
//! # Memory
//!
//! What keeps a session small: one key per session (the token carries the id); ids, times
//! and the verifier in raw binary (16, 6 and 16 bytes); and the user agent stored once per
//! distinct text, which is what a deployment's sessions mostly share. A user with a single
//! session pays for a whole index key of their own, and each TTL adds an entry to Redis's
//! expiry table. The bytes a session costs are measured by the `memory_per_session` test in
//! `tests/redis.rs` (which fails past its budget) and, from 10 000 to 1 000 000 sessions, by
//! the `scaling` example; the figures are in `docs/benchmarks.md`.
//!
//! # Operating Redis
//!
//! One Redis (or a primary with replicas), not a cluster: scripts derive keys from ids they
//! read. Run it with `maxmemory-policy noeviction` (the default): evicting a user index would
//! hide sessions from "log out everywhere". [`RedisStore::connect`] warns when it can see
//! another policy.

mod batch;
mod key_names;
mod notify;
mod purge;
mod record;
mod refresh;
mod scripts;
mod sessions;
mod throttle;
mod user_agents;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, ProtocolVersion, RedisError, RedisResult};
use tessera_core::{RevocationLog, StoreError};

use key_names::KeyNames;

/// How a [`RedisStore`] uses Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Starts every key and the pub/sub channel, so deployments (or tests) can share one Redis.
    /// Defaults to `"tessera:"`.
    pub prefix: String,
    /// How long one command may take before the call fails with [`StoreError::Unavailable`],
    /// so a hung Redis answers fast and callers fail closed.
    /// Defaults to `1s`.
    pub command_timeout: Duration,
    /// How long connecting (at start, and each reconnection attempt) may take.
    /// Defaults to `1s`.
    pub connect_timeout: Duration,
    /// How long a session or refresh record stays readable after it ended (expired, or was
    /// revoked and then reached its expiry) before Redis drops it. Must exceed the session
    /// policy's touch interval, by which a stored idle expiry may lag.
    /// Defaults to `15m`.
    pub ended_retention: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "tessera:".to_owned(),
            command_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            ended_retention: Duration::from_secs(15 * 60),
        }
    }
}

/// Sessions, refresh-token chains and login-failure counters in Redis, with revocations
/// logged durably in a [`RevocationLog`].
///
/// Implements [`SessionStore`](tessera_core::SessionStore),
/// [`RefreshStore`](tessera_core::RefreshStore), [`LoginThrottle`](tessera_core::LoginThrottle)
/// and [`RevocationNotifier`](tessera_core::RevocationNotifier); pair it with a
/// SQL store for users, keys, clients and the log. Cheap to clone; clones share one
/// multiplexed connection, which reconnects by itself after Redis comes back.
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::path::Path;
/// use std::sync::Arc;
/// use tessera_core::Stores;
/// use tessera_store::redis::{RedisOptions, RedisStore};
/// use tessera_store::sqlite::SqliteStore;
///
/// let sql = Arc::new(SqliteStore::open(Path::new("tessera.db")).await?);
/// let options = RedisOptions::default();
/// let redis = Arc::new(RedisStore::connect("redis://127.0.0.1:6379", options, sql.clone()).await?);
/// let stores = Stores {
///     users: sql.clone(),
///     sessions: redis.clone(),
///     refresh: redis.clone(),
///     throttle: redis,
///     keys: sql.clone(),
///     services: sql.clone(),
///     clients: sql,
/// };
/// # drop(stores);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "sqlite"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    shared: Arc<Shared>,
}

struct Shared {
    key_names: KeyNames,
    options: RedisOptions,
    log: Arc<dyn RevocationLog>,
    /// Opens subscriptions: RESP3, which carries pub/sub messages as pushes on an ordinary
    /// connection.
    subscriber: redis::Client,
    /// User agent texts by digest (see `user_agents::USER_AGENT_CACHE_CAPACITY`).
    user_agents: RwLock<HashMap<record::UserAgentDigest, Arc<str>>>,
    /// The `SCAN` cursor where the last session purge stopped, so the next resumes there.
    session_scan: Mutex<u64>,
    /// The same for refresh purges.
    refresh_scan: Mutex<u64>,
    /// Session reads, batched across concurrent requests.
    reads: batch::Reads,
}

/// The longest TTL the store sets (10 years): far beyond any session, and far from overflow.
const MAX_TTL_MS: i64 = 10 * 365 * 24 * 60 * 60 * 1000;

/// The longest wait between reconnection attempts, so the store notices soon that Redis is
/// back.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`, or `rediss://`
    /// ...), writing revocations to `log` first.
    ///
    /// Fails with [`StoreError::Unavailable`] if Redis cannot be reached within
    /// [`RedisOptions::connect_timeout`].
    pub async fn connect(
        url: &str,
        options: RedisOptions,
        log: Arc<dyn RevocationLog>,
    ) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::unavailable)?;
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let subscriber =
            redis::Client::open(info.set_redis_settings(resp3)).map_err(StoreError::unavailable)?;
        // One plain attempt first: it fails with the real cause (refused, unknown host, bad
        // password), where the manager would retry until the timeout.
        let probe_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout));
        let mut probe = within(
            options.connect_timeout,
            client.get_multiplexed_async_connection_with_config(&probe_config),
        )
        .await?;
        warn_unless_noeviction(&mut probe, options.command_timeout).await;
        drop(probe);
        // No response timeout of the connection's own: every exchange runs inside
        // `RedisStore::run`, whose one timer bounds both a sent command and the wait for a
        // reconnection in progress (which the connection's timeout would not cover). A second
        // timer per command showed in the profile of a cookie check without the session cache.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(None)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let connection = within(
            options.connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await?;
        let reads = batch::Reads::start(connection.clone(), options.command_timeout);
        let store = RedisStore {
            connection,
            shared: Arc::new(Shared {
                key_names: KeyNames::new(&options.prefix),
                options,
                log,
                subscriber,
                user_agents: RwLock::new(HashMap::new()),
                session_scan: Mutex::new(0),
                refresh_scan: Mutex::new(0),
                reads,
            }),
        };
        tracing::debug!(prefix = %store.shared.options.prefix, "connected to Redis");
        Ok(store)
    }

    /// Runs one exchange with Redis within the command timeout: the only bound on it, as
    /// the shared connection has no response timeout of its own.
    async fn run<T>(
        &self,
        exchange: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        within(self.shared.options.command_timeout, exchange).await
    }

    /// A handle on the shared connection, for one call. It waits on Redis without limit:
    /// use it only inside [`RedisStore::run`].
    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    fn key_names(&self) -> &KeyNames {
        &self.shared.key_names
    }

    fn retention_ms(&self) -> i64 {
        millis(self.shared.options.ended_retention)
    }
}

async fn warn_unless_noeviction(connection: &mut MultiplexedConnection, limit: Duration) {
    let reply: Result<Vec<String>, _> = within(
        limit,
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(connection),
    )
    .await;
    // Managed Redis often disables CONFIG; the warning is then left to the docs.
    if let Ok(reply) = reply
        && let Some(policy) = reply.get(1)
        && policy != "noeviction"
    {
        tracing::warn!(
            policy = %policy,
            "Redis may evict keys (maxmemory-policy is not noeviction); an evicted user index \
             would hide sessions from revoking all of a user's sessions"
        );
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password, so it is not shown.
        f.debug_struct("RedisStore")
            .field("options", &self.shared.options)
            .field("log", &self.shared.log)
            .finish_non_exhaustive()
    }
}

/// Redis did not answer in time.
#[derive(Debug)]
struct TimedOut {
    limit: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis did not answer within {:?}", self.limit)
    }
}

impl std::error::Error for TimedOut {}

/// Runs `exchange`, failing with [`StoreError::Unavailable`] after `limit`: covers the wait
/// for a reconnection in progress as well as a sent command.
async fn within<T>(
    limit: Duration,
    exchange: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(store_error(error)),
        Err(_) => Err(StoreError::unavailable(TimedOut { limit })),
    }
}

/// A Redis failure as a store error: a value a script found malformed is
/// [`StoreError::Corrupt`], anything else [`StoreError::Unavailable`].
fn store_error(error: RedisError) -> StoreError {
    if error.code() == Some("CORRUPT") {
        StoreError::corrupt(error)
    } else {
        StoreError::unavailable(error)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The TTL of a record that ends at `ends`, counted from `from` (one of its own times), kept
/// `retention` longer: what Redis should wait before forgetting it.
fn ttl_ms(ends: i64, from: i64, retention: i64) -> i64 {
    ends.saturating_sub(from)
        .max(0)
        .saturating_add(retention)
        .clamp(1, MAX_TTL_MS)
}
