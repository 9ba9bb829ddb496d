//! What `Engine::validate` costs over each backend, and what a password check costs beside it.
//!
//! Run with `cargo bench -p tessera-store --bench validate`. Cases per backend:
//!
//! - `cache_hit`: the session is in the engine's cache and no store write is due.
//! - `cache_miss`: the cache is off, so each call reads the session and its user from the store.
//! - `touch`: the clock moves past the touch interval before each call, so each call writes
//!   the idle extension to the store.
//! - `unknown_token`: a token no session has: cache miss, store miss, refused.
//!
//! The SQLite database lives under Cargo's target directory (a real disk, not a tmpfs), with
//! the store's production settings (WAL, `synchronous=FULL`).

// Benchmark code: a failed setup should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use tempfile::TempDir;
use tessera_core::password::{HashingLimits, HashingParams};
use tessera_core::{
    Engine, EngineConfig, Error, LoginAttempt, ManualClock, PasswordHasher, SessionPolicy,
    SessionToken, Stores, Timestamp, Transport,
};
use tessera_store::memory::{MemoryStore, MemoryThrottle};
use tessera_store::sqlite::SqliteStore;
use tokio::runtime::Runtime;

const PASSWORD: &str = "correct horse battery staple";

/// Long enough that advancing the clock by a touch interval per iteration never ends the
/// session during a run.
const POLICY: SessionPolicy = SessionPolicy {
    idle_timeout: Duration::from_secs(30 * 60),
    absolute_timeout: Duration::from_secs(100 * 365 * 24 * 60 * 60),
    touch_interval: Duration::from_secs(1),
};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
        }
    }

    /// Fresh stores, and the directory that must outlive them.
    async fn stores(self) -> (Stores, Option<TempDir>) {
        match self {
            Backend::Memory => {
                let store = Arc::new(MemoryStore::new());
                let stores = Stores {
                    users: store.clone(),
                    sessions: store.clone(),
                    refresh: store.clone(),
                    keys: store.clone(),
                    services: store.clone(),
                    clients: store,
                    throttle: Arc::new(MemoryThrottle::new()),
                };
                (stores, None)
            }
            Backend::Sqlite => {
                let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
                let store = Arc::new(
                    SqliteStore::open(&dir.path().join("bench.db"))
                        .await
                        .unwrap(),
                );
                let stores = Stores {
                    users: store.clone(),
                    sessions: store.clone(),
                    refresh: store.clone(),
                    keys: store.clone(),
                    services: store.clone(),
                    clients: store.clone(),
                    throttle: store,
                };
                (stores, Some(dir))
            }
        }
    }
}

/// An engine with one logged-in session.
struct Scenario {
    engine: Engine,
    token: SessionToken,
    clock: ManualClock,
    _dir: Option<TempDir>,
}

async fn scenario(backend: Backend, hasher: &PasswordHasher, cache_capacity: usize) -> Scenario {
    let (stores, dir) = backend.stores().await;
    let clock = ManualClock::new(Timestamp::from_unix_millis(1_700_000_000_000));
    let config = EngineConfig {
        session: POLICY,
        cache_capacity,
        ..EngineConfig::default()
    };
    let engine = Engine::new(stores, hasher.clone(), Arc::new(clock.clone()), config)
        .await
        .unwrap();
    engine.create_user("alice", PASSWORD).await.unwrap();
    let login = engine
        .login(LoginAttempt {
            username: "alice",
            password: PASSWORD,
            transport: Transport::Cookie,
            ip: None,
            user_agent: Some("bench"),
        })
        .await
        .unwrap();
    Scenario {
        engine,
        token: login.token,
        clock,
        _dir: dir,
    }
}

fn validate(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
    let mut group = c.benchmark_group("validate");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);

    for backend in [Backend::Memory, Backend::Sqlite] {
        let name = backend.name();

        let hit = runtime.block_on(scenario(backend, &hasher, 100_000));
        group.bench_function(format!("{name}/cache_hit"), |b| {
            b.to_async(&runtime)
                .iter(|| async { hit.engine.validate(&hit.token).await.unwrap() });
        });

        let miss = runtime.block_on(scenario(backend, &hasher, 0));
        group.bench_function(format!("{name}/cache_miss"), |b| {
            b.to_async(&runtime)
                .iter(|| async { miss.engine.validate(&miss.token).await.unwrap() });
        });

        let touch = runtime.block_on(scenario(backend, &hasher, 100_000));
        group.bench_function(format!("{name}/touch"), |b| {
            b.to_async(&runtime).iter(|| async {
                touch.clock.advance(POLICY.touch_interval);
                touch.engine.validate(&touch.token).await.unwrap()
            });
        });

        let unknown = runtime.block_on(scenario(backend, &hasher, 100_000));
        let stranger = SessionToken::generate().unwrap();
        group.bench_function(format!("{name}/unknown_token"), |b| {
            b.to_async(&runtime).iter(|| async {
                let result = unknown.engine.validate(&stranger).await;
                assert!(matches!(result, Err(Error::Unauthenticated)));
            });
        });
    }
    group.finish();
}

fn password(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let hasher = PasswordHasher::new(HashingParams::default(), HashingLimits::default()).unwrap();
    let hash = runtime.block_on(hasher.hash(PASSWORD)).unwrap();
    let mut group = c.benchmark_group("argon2id");
    // Tens of milliseconds per call: equal-sized samples, as few as criterion allows.
    group
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    group.bench_function("verify_default_params", |b| {
        b.to_async(&runtime)
            .iter(|| async { hasher.verify(&hash, PASSWORD).await.unwrap() });
    });
    group.finish();
}

criterion_group!(benches, validate, password);
criterion_main!(benches);
