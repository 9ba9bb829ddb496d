//! The Redis store against a real Redis: the conformance suite, plus what only Redis has —
//! pub/sub wake-ups, timeouts on a hung server, recovery, TTLs, no leaked keys, the durable
//! log coming first, and the memory a session costs.
//!
//! Needs the Redis at `TESSERA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and
//! `redis-server` on `PATH` (some tests start their own, to stop and kill it). Every test
//! works under its own random key prefix and deletes every key under it when it ends.
//!
//! Run: `cargo test -p tessera-store --features redis --test redis`
//!
//! Over 500 lines: one test binary per server, whose tests share its helpers (own Redis
//! servers, prefix clean-up, failing logs), kept beside them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::redis::AsyncCommands;
use async_trait::async_trait;
use tessera_core::{
    LoginThrottle, RefreshStore, Revocation, RevocationLog, RevocationNotifier, Rotation,
    SessionId, SessionRecord, SessionStore, StoreError, ThrottleKey, ThrottleRule, Timestamp,
    UserId,
};
use tessera_store::conformance::{Fixture, MINUTE, at, child_session, new_refresh, new_session};
use tessera_store::memory::MemoryStore;
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sqlite::SqliteStore;

const START_REDIS: &str = "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
                           --save \"\" --appendonly no --dir /var/lib/redis \
                           --logfile /var/log/redis/ci.log";

fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// An error and its sources, `: `-separated.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unique_prefix() -> String {
    format!("tessera-test:{}:", SessionId::generate().unwrap())
}

/// A connection of the test's own, to look at what the store wrote.
async fn raw(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key under `prefix`.
async fn keys_under(url: &str, prefix: &str) -> Vec<Vec<u8>> {
    let mut connection = raw(url).await;
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = ::redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .unwrap();
        keys.extend(page);
        cursor = next;
        if cursor == 0 {
            return keys;
        }
    }
}

fn glob_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escape = matches!(c, '*' | '?' | '[' | ']' | '\\');
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// Deletes every key under its prefix when dropped (on a thread of its own, since the test's
/// runtime is still running), and checks that none is left.
struct PrefixCleanup {
    url: String,
    prefix: String,
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let left = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut connection = raw(&url).await;
                for chunk in keys_under(&url, &prefix).await.chunks(500) {
                    let _: i64 = connection.del(chunk).await.unwrap();
                }
                keys_under(&url, &prefix).await.len()
            })
        })
        .join();
        if !std::thread::panicking() {
            assert_eq!(left.ok(), Some(0), "keys left under {}", self.prefix);
        }
    }
}

/// A store on the shared Redis under a fresh prefix, and the guard that cleans it up.
async fn shared_store(log: Arc<dyn RevocationLog>) -> (RedisStore, PrefixCleanup) {
    let url = redis_url();
    let prefix = unique_prefix();
    let options = RedisOptions {
        prefix: prefix.clone(),
        ..RedisOptions::default()
    };
    let store = RedisStore::connect(&url, options, log)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot reach Redis at {} ({}): set TESSERA_TEST_REDIS_URL to a Redis \
                 these tests may write to, or start one with `{START_REDIS}`",
                redacted(&url),
                causes(&error)
            )
        });
    (store, PrefixCleanup { url, prefix })
}

tessera_store::conformance_tests!(redis, || async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = Arc::new(
        SqliteStore::open(&dir.path().join("log.db"))
            .await
            .expect("a SQLite revocation log"),
    );
    let (store, cleanup) = shared_store(log.clone()).await;
    let store = Arc::new(store);
    let memory = Arc::new(MemoryStore::new());
    // As a deployment has it: Redis for sessions, the SQL store beside it for the log and
    // the service registry.
    Fixture::from_parts(
        memory.clone(),
        store.clone(),
        store.clone(),
        memory.clone(),
        memory,
        log.clone(),
        store,
        log,
    )
    .keep_alive(cleanup)
    .keep_alive(dir)
});

fn key(prefix: &str, tag: u8, id: &[u8]) -> Vec<u8> {
    [prefix.as_bytes(), &[tag], id].concat()
}

/// The name a user agent's text is stored under, as the store's docs give it: the first 8
/// bytes of its SHA-256.
fn user_agent_digest(user_agent: &str) -> [u8; 8] {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(user_agent.as_bytes());
    digest[..8].try_into().unwrap()
}

/// A revocation log that can be made to fail, over a memory store.
#[derive(Debug, Default)]
struct FlakyLog {
    inner: MemoryStore,
    failing: AtomicBool,
}

#[async_trait]
impl RevocationLog for FlakyLog {
    async fn log_revocations(
        &self,
        entries: &[(SessionId, UserId)],
        revoked_at: Timestamp,
    ) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(std::io::Error::other(
                "log is down",
            )));
        }
        self.inner.log_revocations(entries, revoked_at).await
    }
    async fn log_user_stale(&self, user_id: &UserId, at: Timestamp) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(std::io::Error::other(
                "log is down",
            )));
        }
        self.inner.log_user_stale(user_id, at).await
    }
    async fn logged_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        self.inner.logged_since(after, limit).await
    }
    async fn log_cursor(&self) -> Result<u64, StoreError> {
        self.inner.log_cursor().await
    }
    async fn trim_log(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner.trim_log(before, limit).await
    }
}

/// A revocation log whose writes never finish, to stop a revocation between its steps.
#[derive(Debug, Default)]
struct StuckLog {
    inner: MemoryStore,
}

#[async_trait]
impl RevocationLog for StuckLog {
    async fn log_revocations(
        &self,
        _: &[(SessionId, UserId)],
        _: Timestamp,
    ) -> Result<(), StoreError> {
        std::future::pending().await
    }
    async fn log_user_stale(&self, _: &UserId, _: Timestamp) -> Result<(), StoreError> {
        std::future::pending().await
    }
    async fn logged_since(&self, after: u64, limit: usize) -> Result<Vec<Revocation>, StoreError> {
        self.inner.logged_since(after, limit).await
    }
    async fn log_cursor(&self) -> Result<u64, StoreError> {
        self.inner.log_cursor().await
    }
    async fn trim_log(&self, before: Timestamp, limit: usize) -> Result<u64, StoreError> {
        self.inner.trim_log(before, limit).await
    }
}

/// A `redis-server` of the test's own on a free port, to stop, kill and restart; killed when
/// dropped.
struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        OwnRedis::start_on(port).await
    }

    async fn start_on(port: u16) -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests start their own redis-server, which must be on PATH");
        let own = OwnRedis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(client) = ::redis::Client::open(own.url())
                && let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && ::redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return own;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {port} did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn own_store(redis: &OwnRedis) -> RedisStore {
    RedisStore::connect(
        &redis.url(),
        RedisOptions::default(),
        Arc::new(MemoryStore::new()),
    )
    .await
    .unwrap()
}

/// A private Redis, a store on it, and one session stored there.
async fn own_store_with_a_session() -> (OwnRedis, RedisStore, SessionRecord) {
    let redis = OwnRedis::start().await;
    let store = own_store(&redis).await;
    let record = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&record).await.unwrap();
    (redis, store, record)
}

#[test]
fn options_default_to_their_documented_values() {
    let options = RedisOptions::default();
    assert_eq!(options.prefix, "tessera:");
    assert_eq!(options.command_timeout, Duration::from_secs(1));
    assert_eq!(options.connect_timeout, Duration::from_secs(1));
    assert_eq!(options.ended_retention, Duration::from_secs(15 * 60));
}

/// A revocation wakes subscribers of the same prefix, and only those.
#[tokio::test]
async fn revocations_wake_subscribers_of_their_prefix() {
    let log: Arc<dyn RevocationLog> = Arc::new(MemoryStore::new());
    let (store, cleanup) = shared_store(log.clone()).await;
    let (other, _other_cleanup) = shared_store(Arc::new(MemoryStore::new())).await;
    // Another process's store: same prefix, its own connections.
    let options = RedisOptions {
        prefix: cleanup.prefix.clone(),
        ..RedisOptions::default()
    };
    let listener = RedisStore::connect(&redis_url(), options, log)
        .await
        .unwrap();
    let mut subscription = listener.subscribe().await.unwrap();

    let elsewhere = new_session(&UserId::generate().unwrap(), at(0));
    other.insert_session(&elsewhere).await.unwrap();
    assert!(
        other
            .revoke_session(&elsewhere.id, at(MINUTE))
            .await
            .unwrap()
    );
    let quiet = tokio::time::timeout(Duration::from_millis(300), subscription.notified()).await;
    assert!(quiet.is_err(), "woken by another prefix's revocation");

    let record = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&record).await.unwrap();
    assert!(store.revoke_session(&record.id, at(MINUTE)).await.unwrap());
    tokio::time::timeout(Duration::from_secs(2), subscription.notified())
        .await
        .expect("no wake-up within 2s")
        .unwrap();

    let owner = UserId::generate().unwrap();
    store
        .insert_session(&new_session(&owner, at(0)))
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke_user_sessions(&owner, None, at(MINUTE))
            .await
            .unwrap()
            .len(),
        1
    );
    tokio::time::timeout(Duration::from_secs(2), subscription.notified())
        .await
        .expect("no wake-up for a bulk revocation within 2s")
        .unwrap();
}

/// When the subscription's connection drops, `notified` fails instead of waiting forever.
#[tokio::test]
async fn a_lost_subscription_is_an_error() {
    let mut redis = OwnRedis::start().await;
    let store = own_store(&redis).await;
    let mut subscription = store.subscribe().await.unwrap();
    redis.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(5), subscription.notified())
        .await
        .expect("notified() still waiting 5s after Redis died");
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
}

/// Session reads of concurrent callers go to Redis together (`MGET`), and each caller gets
/// its own session back, or `None` for an id that has none; a lone read is one `GET`.
#[tokio::test]
async fn concurrent_session_reads_share_a_round_trip_and_each_gets_its_own() {
    let redis = OwnRedis::start().await;
    let store = own_store(&redis).await;
    let mut records = Vec::new();
    for minute in 0..40 {
        // Without a user agent, a read is the session key alone (no lookup of the text).
        let record = SessionRecord {
            user_agent: None,
            ..new_session(&UserId::generate().unwrap(), at(minute * MINUTE))
        };
        store.insert_session(&record).await.unwrap();
        records.push(record);
    }
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let () = ::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();

    // Every stored id, each followed by an id nobody stored, all at once.
    let mut reads = Vec::new();
    for record in &records {
        for id in [record.id.clone(), SessionId::generate().unwrap()] {
            let store = store.clone();
            reads.push(tokio::spawn(async move { store.session_by_id(&id).await }));
        }
    }
    for (index, read) in reads.into_iter().enumerate() {
        let found = read.await.unwrap().unwrap();
        if index % 2 == 0 {
            assert_eq!(found.as_ref(), Some(&records[index / 2]), "read {index}");
        } else {
            assert_eq!(found, None, "read {index}");
        }
    }
    let calls = |stats: &str, command: &str| -> u64 {
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    };
    let stats: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    let (gets, mgets) = (calls(&stats, "get"), calls(&stats, "mget"));
    assert!(mgets >= 1, "no MGET for 80 concurrent reads: {stats}");
    assert!(
        gets + mgets <= 4,
        "80 concurrent reads took {gets} GETs and {mgets} MGETs"
    );

    let () = ::redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        store.session_by_id(&records[0].id).await.unwrap(),
        Some(records[0].clone())
    );
    let stats: String = ::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(
        (calls(&stats, "get"), calls(&stats, "mget")),
        (1, 0),
        "{stats}"
    );
}

/// A hung Redis (stopped with SIGSTOP) fails calls with `Unavailable` within about the
/// command timeout; once it continues, the same store works again by itself.
#[tokio::test]
async fn a_hung_redis_fails_fast_and_the_store_recovers() {
    let (redis, store, record) = own_store_with_a_session().await;

    redis.signal("STOP");
    for attempt in 0..2 {
        let started = Instant::now();
        let result = store.session_by_id(&record.id).await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "attempt {attempt} failed after {took:?}, not about the 1s command timeout"
        );
    }
    let started = Instant::now();
    let late = new_session(&record.user_id, at(MINUTE));
    let result = store.insert_session(&late).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(2500));

    redis.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(5);
    let found = loop {
        match store.session_by_id(&record.id).await {
            Ok(found) => break found,
            Err(error) if Instant::now() < deadline => {
                eprintln!("not yet recovered: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("still failing 5s after Redis continued: {error}"),
        }
    };
    assert_eq!(found, Some(record.clone()));
    store
        .insert_session(&new_session(&record.user_id, at(2 * MINUTE)))
        .await
        .unwrap();
    assert!(
        store
            .touch_session(&record.id, at(MINUTE), at(31 * MINUTE))
            .await
            .unwrap()
    );
}

/// A Redis that dies fails calls fast; a new one on the same address is used without any
/// help (its sessions are gone, as documented).
#[tokio::test]
async fn a_restarted_redis_is_used_again() {
    let (mut redis, store, record) = own_store_with_a_session().await;
    let port = redis.port;

    redis.kill();
    let started = Instant::now();
    let result = store.session_by_id(&record.id).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(2500));

    let _restarted = OwnRedis::start_on(port).await;
    let fresh = new_session(&record.user_id, at(MINUTE));
    insert_once_recovered(&store, &fresh, Duration::from_secs(5)).await;
    assert_eq!(store.session_by_id(&fresh.id).await.unwrap(), Some(fresh));
    assert_eq!(store.session_by_id(&record.id).await.unwrap(), None);
}

/// Inserts `record` as soon as the store works again, failing the test after `patience`.
async fn insert_once_recovered(store: &RedisStore, record: &SessionRecord, patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        match store.insert_session(record).await {
            Ok(()) => return,
            Err(error) if Instant::now() < deadline => {
                eprintln!("not yet recovered: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("still failing {patience:?} after Redis came back: {error}"),
        }
    }
}

/// Redis dies and something that accepts connections but never answers takes its port: the
/// reconnection hangs, retrying with backoff for several seconds, and calls arriving meanwhile
/// wait on it. Each call must still fail with `Unavailable` within about the command timeout,
/// and the store recovers once a real Redis is back on the port.
#[tokio::test]
async fn calls_during_a_hung_reconnection_fail_within_the_command_timeout() {
    let (mut redis, store, record) = own_store_with_a_session().await;
    let port = redis.port;

    redis.kill();
    // Accepts (the kernel completes the handshake into the backlog) and never replies.
    let silent = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut waited = Duration::ZERO;
    for attempt in 0..4 {
        let started = Instant::now();
        let result = store.session_by_id(&record.id).await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: {result:?}"
        );
        assert!(
            took < Duration::from_millis(2500),
            "attempt {attempt} failed after {took:?}, not about the 1s command timeout"
        );
        waited = waited.max(took);
    }
    // The hung reconnection was waited on (not only refused at once), and cut at the bound.
    assert!(
        waited >= Duration::from_millis(900),
        "no call waited on the hung reconnection (longest {waited:?})"
    );

    drop(silent);
    let _restarted = OwnRedis::start_on(port).await;
    let fresh = new_session(&record.user_id, at(MINUTE));
    insert_once_recovered(&store, &fresh, Duration::from_secs(10)).await;
    assert_eq!(store.session_by_id(&fresh.id).await.unwrap(), Some(fresh));
}

/// Nobody listening: connecting fails with `Unavailable` within about the connect timeout.
#[tokio::test]
async fn an_unreachable_redis_fails_connect_fast() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let result = RedisStore::connect(
        &format!("redis://127.0.0.1:{port}"),
        RedisOptions::default(),
        Arc::new(MemoryStore::new()),
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

async fn pttl(connection: &mut ::redis::aio::MultiplexedConnection, key: &[u8]) -> i64 {
    ::redis::cmd("PTTL")
        .arg(key)
        .query_async(connection)
        .await
        .unwrap()
}

fn assert_about(ttl: i64, expected: i64, what: &str) {
    assert!(
        ttl <= expected && ttl > expected - 5_000,
        "{what}: TTL {ttl} ms, expected about {expected} ms"
    );
}

/// TTLs follow the records' own times plus the retention — not the wall clock — and a touch
/// moves them.
#[tokio::test]
async fn ttls_follow_the_records_own_times() {
    let (store, cleanup) = shared_store(Arc::new(MemoryStore::new())).await;
    let prefix = cleanup.prefix.clone();
    let mut connection = raw(&cleanup.url).await;
    let retention = 15 * MINUTE;

    let record = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&record).await.unwrap();
    let session_key = key(&prefix, b's', &record.id.to_bytes());
    let user_key = key(&prefix, b'u', &record.user_id.to_bytes());
    let agent_key = key(
        &prefix,
        b'a',
        &user_agent_digest(record.user_agent.as_deref().unwrap()),
    );
    for (name, k) in [
        ("session", &session_key),
        ("user index", &user_key),
        ("user agent", &agent_key),
    ] {
        assert_about(
            pttl(&mut connection, k).await,
            30 * MINUTE + retention,
            name,
        );
    }

    assert!(
        store
            .touch_session(&record.id, at(5 * MINUTE), at(65 * MINUTE))
            .await
            .unwrap()
    );
    for (name, k) in [
        ("session", &session_key),
        ("user index", &user_key),
        ("user agent", &agent_key),
    ] {
        assert_about(
            pttl(&mut connection, k).await,
            60 * MINUTE + retention,
            name,
        );
    }
    // A shorter session of the same user does not shorten the index.
    let short = SessionRecord {
        idle_expires_at: at(MINUTE),
        ..new_session(&record.user_id, at(0))
    };
    store.insert_session(&short).await.unwrap();
    for (name, k) in [("user index", &user_key), ("user agent", &agent_key)] {
        assert_about(
            pttl(&mut connection, k).await,
            60 * MINUTE + retention,
            name,
        );
    }
    let short_key = key(&prefix, b's', &short.id.to_bytes());
    assert_about(
        pttl(&mut connection, &short_key).await,
        MINUTE + retention,
        "short session",
    );

    let token = new_refresh(&record.id, at(0));
    store.insert_refresh(&token).await.unwrap();
    let refresh_key = key(&prefix, b'r', token.token_hash.as_bytes());
    assert_about(
        pttl(&mut connection, &refresh_key).await,
        24 * 60 * MINUTE + retention,
        "refresh",
    );

    let rule = ThrottleRule {
        max_failures: 3,
        window: Duration::from_secs(600),
    };
    let account = ThrottleKey::Account("alice".to_owned());
    store.record_failure(&account, rule, at(0)).await.unwrap();
    let throttle_key = key(&prefix, b't', account.storage_key().as_bytes());
    assert_about(
        pttl(&mut connection, &throttle_key).await,
        10 * MINUTE,
        "throttle",
    );
}

/// After purging past every expiry and resetting the counters, nothing is left under the
/// prefix but the one key that remembers how far the log was applied: no index leaks.
#[tokio::test]
async fn purging_leaves_no_keys_behind() {
    let (store, cleanup) = shared_store(Arc::new(MemoryStore::new())).await;
    let owners = [UserId::generate().unwrap(), UserId::generate().unwrap()];
    let mut records = Vec::new();
    for n in 0..6 {
        let record = new_session(&owners[n % 2], at(n as i64 * MINUTE));
        store.insert_session(&record).await.unwrap();
        records.push(record);
    }
    assert!(
        store
            .revoke_session(&records[0].id, at(10 * MINUTE))
            .await
            .unwrap()
    );
    store
        .revoke_user_sessions(&owners[1], Some(&records[1].id), at(11 * MINUTE))
        .await
        .unwrap();
    store
        .touch_session(&records[2].id, at(12 * MINUTE), at(42 * MINUTE))
        .await
        .unwrap();
    let parent = new_refresh(&records[2].id, at(0));
    store.insert_refresh(&parent).await.unwrap();
    let successor = new_refresh(&records[2].id, at(MINUTE));
    assert_eq!(
        store
            .rotate_refresh(&parent.token_hash, &successor, at(MINUTE))
            .await
            .unwrap(),
        Rotation::Rotated
    );
    let rule = ThrottleRule {
        max_failures: 3,
        window: Duration::from_secs(600),
    };
    let account = ThrottleKey::Account("alice".to_owned());
    store.record_failure(&account, rule, at(0)).await.unwrap();
    assert!(keys_under(&cleanup.url, &cleanup.prefix).await.len() > 10);

    let later = at(48 * 60 * MINUTE);
    assert_eq!(
        store
            .purge_expired(later, Duration::ZERO, 1000)
            .await
            .unwrap(),
        6 + 3
    );
    assert_eq!(store.purge_refresh(later, 1000).await.unwrap(), 2);
    store.reset(&account).await.unwrap();
    // What is left: the applied-log key, and the one user agent text all six sessions
    // shared, whose TTL (which never outlasts the longest of them by more than the
    // retention) removes it.
    let mut left = keys_under(&cleanup.url, &cleanup.prefix).await;
    left.sort();
    let agent_key = key(
        &cleanup.prefix,
        b'a',
        &user_agent_digest(records[0].user_agent.as_deref().unwrap()),
    );
    let mut connection = raw(&cleanup.url).await;
    assert_about(
        pttl(&mut connection, &agent_key).await,
        42 * MINUTE - 12 * MINUTE + 15 * MINUTE,
        "user agent",
    );
    assert_eq!(
        left,
        [agent_key, key(&cleanup.prefix, b'l', b"")],
        "{:?}",
        left.iter()
            .map(|k| String::from_utf8_lossy(k))
            .collect::<Vec<_>>()
    );
}

/// Sessions Redis forgot (their TTL ran out) drop out of the user index as it is read; an
/// index left empty is deleted.
#[tokio::test]
async fn the_user_index_drops_forgotten_sessions() {
    let (store, cleanup) = shared_store(Arc::new(MemoryStore::new())).await;
    let mut connection = raw(&cleanup.url).await;
    let owner = UserId::generate().unwrap();
    let kept = new_session(&owner, at(0));
    let forgotten = new_session(&owner, at(MINUTE));
    store.insert_session(&kept).await.unwrap();
    store.insert_session(&forgotten).await.unwrap();
    let user_key = key(&cleanup.prefix, b'u', &owner.to_bytes());

    // What an expiring TTL does: the session's key vanishes, the index member stays.
    let forget = |record: &SessionRecord| key(&cleanup.prefix, b's', &record.id.to_bytes());
    let _: i64 = connection.del(forget(&forgotten)).await.unwrap();
    let _: i64 = connection.del(forget(&kept)).await.unwrap();
    let members: i64 = connection.zcard(&user_key).await.unwrap();
    assert_eq!(members, 2);

    assert_eq!(
        store
            .sessions_of_user(&owner, at(2 * MINUTE))
            .await
            .unwrap(),
        []
    );
    let exists: i64 = connection.exists(&user_key).await.unwrap();
    assert_eq!(exists, 0, "an emptied index is left behind");
    assert_eq!(
        store
            .revoke_user_sessions(&owner, None, at(3 * MINUTE))
            .await
            .unwrap(),
        []
    );
}

/// The log comes first: when it cannot be written the revocation fails and leaves the
/// session as it was, live and touchable; once the log works, the revocation goes through
/// at once (the failed one's claim was handed back, not left to expire).
#[tokio::test]
async fn a_revocation_that_cannot_be_logged_changes_nothing() {
    let log = Arc::new(FlakyLog::default());
    let (store, _cleanup) = shared_store(log.clone()).await;
    let record = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&record).await.unwrap();

    log.failing.store(true, Ordering::SeqCst);
    let result = store.revoke_session(&record.id, at(MINUTE)).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    let result = store
        .revoke_user_sessions(&record.user_id, None, at(MINUTE))
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(
        store.session_by_id(&record.id).await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(store.revocations_since(0, 10).await.unwrap(), []);
    assert!(
        store
            .touch_session(&record.id, at(2 * MINUTE), at(32 * MINUTE))
            .await
            .unwrap()
    );

    log.failing.store(false, Ordering::SeqCst);
    let started = Instant::now();
    assert!(
        store
            .revoke_session(&record.id, at(3 * MINUTE))
            .await
            .unwrap()
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited for a stale claim"
    );
    let logged = store.revocations_since(0, 10).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].session_id(), Some(&record.id));
    assert_eq!(
        store
            .session_by_id(&record.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(3 * MINUTE))
    );
}

/// A revocation that dies after claiming the session (here: while its log write hangs)
/// leaves the session reading as revoked — never live — and touches fail; a concurrent
/// revocation waits for it instead of logging twice.
#[tokio::test]
async fn a_revocation_stopped_midway_leaves_the_session_revoked() {
    let log = Arc::new(StuckLog::default());
    let (store, _cleanup) = shared_store(log.clone()).await;
    let record = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&record).await.unwrap();

    let revoking = tokio::spawn({
        let (store, id) = (store.clone(), record.id.clone());
        async move { store.revoke_session(&id, at(MINUTE)).await }
    });
    let deadline = Instant::now() + Duration::from_secs(2);
    while store
        .session_by_id(&record.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none()
    {
        assert!(Instant::now() < deadline, "the claim never showed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    revoking.abort();

    let stored = store.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(at(MINUTE)));
    assert!(
        !store
            .touch_session(&record.id, at(2 * MINUTE), at(32 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .sessions_of_user(&record.user_id, at(2 * MINUTE))
            .await
            .unwrap(),
        []
    );
    // Within the dead claim's lease another revocation cannot know whether it was logged:
    // it waits, then asks to be retried, rather than report `false` or log a duplicate.
    let started = Instant::now();
    let retry = store.revoke_session(&record.id, at(3 * MINUTE)).await;
    assert!(
        matches!(retry, Err(StoreError::Unavailable(_))),
        "{retry:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(log.log_cursor().await.unwrap(), 0);
}

/// A revocation the log has but Redis never marked (the process died between the two) is
/// applied to Redis by the next purge.
#[tokio::test]
async fn purging_applies_logged_revocations_redis_missed() {
    let log = Arc::new(MemoryStore::new());
    let (store, _cleanup) = shared_store(log.clone()).await;
    let missed = new_session(&UserId::generate().unwrap(), at(0));
    let bystander = new_session(&missed.user_id, at(0));
    store.insert_session(&missed).await.unwrap();
    store.insert_session(&bystander).await.unwrap();
    log.log_revocations(&[(missed.id.clone(), missed.user_id.clone())], at(MINUTE))
        .await
        .unwrap();
    assert_eq!(
        store
            .session_by_id(&missed.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    store
        .purge_expired(at(2 * MINUTE), Duration::from_secs(3600), 100)
        .await
        .unwrap();
    let repaired = store.session_by_id(&missed.id).await.unwrap().unwrap();
    assert_eq!(repaired.revoked_at, Some(at(MINUTE)));
    assert_eq!(
        store.session_by_id(&bystander.id).await.unwrap(),
        Some(bystander)
    );
    assert!(
        !store
            .revoke_session(&missed.id, at(3 * MINUTE))
            .await
            .unwrap()
    );
    assert_eq!(store.revocations_since(0, 10).await.unwrap().len(), 1);
}

/// Values under the store's keys that it cannot read are `Corrupt`, not `Unavailable`.
#[tokio::test]
async fn malformed_values_are_corrupt() {
    let (store, cleanup) = shared_store(Arc::new(MemoryStore::new())).await;
    let mut connection = raw(&cleanup.url).await;
    let record = new_session(&UserId::generate().unwrap(), at(0));
    store.insert_session(&record).await.unwrap();
    let session_key = key(&cleanup.prefix, b's', &record.id.to_bytes());
    let _: () = ::redis::cmd("SET")
        .arg(&session_key)
        .arg(b"\x01garbage")
        .arg("KEEPTTL")
        .query_async(&mut connection)
        .await
        .unwrap();

    let by_token = store.session_by_id(&record.id).await;
    assert!(
        matches!(by_token, Err(StoreError::Corrupt(_))),
        "{by_token:?}"
    );
    let by_id = store.session_by_id(&record.id).await;
    assert!(matches!(by_id, Err(StoreError::Corrupt(_))), "{by_id:?}");
    let touch = store
        .touch_session(&record.id, at(MINUTE), at(31 * MINUTE))
        .await;
    assert!(matches!(touch, Err(StoreError::Corrupt(_))), "{touch:?}");

    let token = new_refresh(&record.id, at(0));
    let refresh_key = key(&cleanup.prefix, b'r', token.token_hash.as_bytes());
    let _: () = ::redis::cmd("SET")
        .arg(&refresh_key)
        .arg(b"\x09")
        .arg("EX")
        .arg(60)
        .query_async(&mut connection)
        .await
        .unwrap();
    let found = store.refresh_by_token(&token.token_hash).await;
    assert!(matches!(found, Err(StoreError::Corrupt(_))), "{found:?}");
    let rotation = store
        .rotate_refresh(
            &token.token_hash,
            &new_refresh(&record.id, at(MINUTE)),
            at(MINUTE),
        )
        .await;
    assert!(
        matches!(rotation, Err(StoreError::Corrupt(_))),
        "{rotation:?}"
    );
}

/// What one session costs in Redis memory, with realistic fields, on a Redis of the test's
/// own (so nothing else moves `used_memory`). Prints the numbers; run with `--nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_per_session() {
    const SESSIONS: usize = 10_000;
    /// The 300-byte target at four sessions per user (this layout measures 277 on Redis
    /// 7.0), and what one session per user measures (403) with a little room, to catch a
    /// regression. See "Memory" in the `redis` module docs and `docs/benchmarks.md`.
    const BUDGETS: [(usize, usize); 2] = [(1, 430), (4, 300)];
    let user_agent = &"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, \
                       like Gecko) Chrome/126.0.0.0 Safari/537.36"[..100];
    assert_eq!(user_agent.len(), 100);

    for (sessions_per_user, budget) in BUDGETS {
        let redis = OwnRedis::start().await;
        let store = Arc::new(own_store(&redis).await);
        let mut connection = raw(&redis.url()).await;
        let now = Timestamp::from_unix_millis(1_750_000_000_000);
        let realistic = |user_id: &UserId, n: usize| SessionRecord {
            ip: Some(format!(
                "10.{}.{}.{}",
                n / 65536 % 256,
                n / 256 % 256,
                n % 256
            )),
            user_agent: Some(user_agent.to_owned()),
            ..new_session(user_id, now)
        };
        // One session first, so the scripts' cache and the connection's buffers are counted
        // before the measurement starts.
        store
            .insert_session(&realistic(&UserId::generate().unwrap(), 0))
            .await
            .unwrap();
        let used_memory = |info: String| -> usize {
            info.lines()
                .find_map(|line| line.strip_prefix("used_memory:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let info: String = ::redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await
            .unwrap();
        let before = used_memory(info);

        let users: Vec<UserId> = (0..SESSIONS / sessions_per_user)
            .map(|_| UserId::generate().unwrap())
            .collect();
        let records: Vec<SessionRecord> = (0..SESSIONS)
            .map(|n| realistic(&users[n % users.len()], n))
            .collect();
        for chunk in records.chunks(500) {
            let tasks: Vec<_> = chunk
                .iter()
                .cloned()
                .map(|record| {
                    let store = Arc::clone(&store);
                    tokio::spawn(async move { store.insert_session(&record).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        }

        let info: String = ::redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await
            .unwrap();
        let per_session = (used_memory(info) - before) / SESSIONS;
        let usage = |key: Vec<u8>| {
            let mut connection = connection.clone();
            async move {
                ::redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key)
                    .query_async::<usize>(&mut connection)
                    .await
                    .unwrap()
            }
        };
        let sample = &records[0];
        let session_key = usage(key("tessera:", b's', &sample.id.to_bytes())).await;
        let user_key = usage(key("tessera:", b'u', &sample.user_id.to_bytes())).await;
        println!(
            "{SESSIONS} sessions, {sessions_per_user} per user: {per_session} bytes of \
             used_memory per session; MEMORY USAGE: session key {session_key}, user index \
             {user_key} ({sessions_per_user} members)"
        );
        assert!(
            per_session <= budget,
            "{per_session} bytes per session at {sessions_per_user} per user, over {budget}"
        );
    }
}

/// A session value written before `auth_time` existed (format 2: the same bytes without it)
/// reads it as its `created_at`; a re-authentication rewrites it in the current format and
/// keeps its TTL.
#[tokio::test]
async fn values_without_auth_time_read_their_login_time() {
    let (store, cleanup) = shared_store(Arc::new(MemoryStore::new())).await;
    let mut connection = raw(&cleanup.url).await;
    let record = SessionRecord {
        auth_time: at(30_000),
        ..new_session(&UserId::generate().unwrap(), at(0))
    };
    store.insert_session(&record).await.unwrap();
    let session_key = key(&cleanup.prefix, b's', &record.id.to_bytes());
    let current: Vec<u8> = connection.get(&session_key).await.unwrap();
    assert_eq!(current[0], 3, "the current format");
    // Format 2: no auth_time, which is the last 6 bytes of a live value.
    let mut old = current[..current.len() - 6].to_vec();
    old[0] = 2;
    let () = ::redis::cmd("SET")
        .arg(&session_key)
        .arg(&old)
        .arg("KEEPTTL")
        .query_async(&mut connection)
        .await
        .unwrap();
    let ttl_before = pttl(&mut connection, &session_key).await;
    let read = store.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(
        read,
        SessionRecord {
            auth_time: record.created_at,
            ..record.clone()
        }
    );

    assert!(
        store
            .record_authentication(&record.id, at(MINUTE))
            .await
            .unwrap()
    );
    let upgraded: Vec<u8> = connection.get(&session_key).await.unwrap();
    assert_eq!(upgraded[0], 3);
    assert_eq!(upgraded.len(), current.len());
    let read = store.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(
        read,
        SessionRecord {
            auth_time: at(MINUTE),
            ..record.clone()
        }
    );
    let ttl_after = pttl(&mut connection, &session_key).await;
    assert!(
        ttl_after > 0 && ttl_after <= ttl_before,
        "{ttl_before} {ttl_after}"
    );

    // A format-2 value of a revoked session stays as it is.
    store
        .revoke_session(&record.id, at(2 * MINUTE))
        .await
        .unwrap();
    let revoked: Vec<u8> = connection.get(&session_key).await.unwrap();
    let mut old_revoked = [
        &revoked[..revoked.len() - 12],
        &revoked[revoked.len() - 6..],
    ]
    .concat();
    old_revoked[0] = 2;
    let () = ::redis::cmd("SET")
        .arg(&session_key)
        .arg(&old_revoked)
        .arg("KEEPTTL")
        .query_async(&mut connection)
        .await
        .unwrap();
    let read = store.session_by_id(&record.id).await.unwrap().unwrap();
    assert_eq!(read.revoked_at, Some(at(2 * MINUTE)));
    assert_eq!(read.auth_time, record.created_at);
    assert!(
        !store
            .record_authentication(&record.id, at(3 * MINUTE))
            .await
            .unwrap()
    );
    let after: Vec<u8> = connection.get(&session_key).await.unwrap();
    assert_eq!(after, old_revoked);
}

/// Only a child session is stored in format 4 (its parent after the address): an ordinary
/// session written beside it keeps format 2 and its 73 bytes. The scripts that rewrite a
/// value (re-authentication, revocation) keep the child's format and parent, and its TTL.
#[tokio::test]
async fn child_sessions_have_a_format_of_their_own() {
    let (store, cleanup) = shared_store(Arc::new(MemoryStore::new())).await;
    let mut connection = raw(&cleanup.url).await;
    let parent = new_session(&UserId::generate().unwrap(), at(0));
    let audience = "https://orders.example";
    let child = child_session(&parent, audience, at(MINUTE));
    store.insert_session(&parent).await.unwrap();
    store.insert_session(&child).await.unwrap();
    let value_of = |record: &SessionRecord| key(&cleanup.prefix, b's', &record.id.to_bytes());

    let ordinary: Vec<u8> = connection.get(value_of(&parent)).await.unwrap();
    assert_eq!((ordinary[0], ordinary.len()), (2, 73));
    let stored: Vec<u8> = connection.get(value_of(&child)).await.unwrap();
    assert_eq!(stored[0], 4);
    let parent_at = stored.len() - 6 - (16 + 4 + audience.len());
    assert_eq!(
        stored[parent_at..parent_at + 16],
        parent.id.to_bytes(),
        "the parent's raw id, after the address"
    );
    let ttl_before = pttl(&mut connection, &value_of(&child)).await;

    assert!(
        store
            .record_authentication(&child.id, at(2 * MINUTE))
            .await
            .unwrap()
    );
    let reauthenticated: Vec<u8> = connection.get(value_of(&child)).await.unwrap();
    assert_eq!(reauthenticated[0], 4);
    assert_eq!(reauthenticated.len(), stored.len());
    assert_eq!(
        reauthenticated[..stored.len() - 6],
        stored[..stored.len() - 6],
        "only auth_time changed"
    );
    let ttl_after = pttl(&mut connection, &value_of(&child)).await;
    assert!(
        ttl_after > 0 && ttl_after <= ttl_before,
        "{ttl_before} {ttl_after}"
    );

    assert!(
        store
            .revoke_session(&child.id, at(3 * MINUTE))
            .await
            .unwrap()
    );
    let revoked: Vec<u8> = connection.get(value_of(&child)).await.unwrap();
    assert_eq!(revoked[0], 4);
    assert_eq!(revoked.len(), stored.len() + 6);
    let read = store.session_by_id(&child.id).await.unwrap().unwrap();
    assert_eq!(
        read,
        SessionRecord {
            auth_time: at(2 * MINUTE),
            revoked_at: Some(at(3 * MINUTE)),
            ..child.clone()
        }
    );
    let unchanged: Vec<u8> = connection.get(value_of(&parent)).await.unwrap();
    assert_eq!(unchanged, ordinary);
}
