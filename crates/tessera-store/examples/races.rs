//! The races a token-transport client and an attacker can start, at scale, on every store:
//! how often concurrent refreshes log someone out or fork a chain, whether reuse after the
//! grace window revokes the family every time, and whether a logout racing session checks
//! ever leaves a live session behind.
//!
//! Run (release: every trial logs in with real Argon2id parameters):
//!
//! ```text
//! cargo run --release -p tessera-store --features redis,postgres --example races -- [CHAINS] [TRIALS]
//! ```
//!
//! `CHAINS` (default 1000) refresh chains are each spent by 10 concurrent refreshes; `TRIALS`
//! (default 100) reuse-after-grace and logout-race trials run per store. Stores: memory,
//! SQLite (a temporary file), PostgreSQL (a schema of its own) and PostgreSQL + Redis (a key
//! prefix of its own), with the URLs of the stores' tests (`TESSERA_TEST_POSTGRES_URL`,
//! `TESSERA_TEST_REDIS_URL`); the schema and keys are removed at the end, also after an error.
//!
//! Outcomes, per store:
//!
//! - **logouts**: a concurrent refresh of a live, unspent token that was refused;
//! - **forks**: two refreshes of one token that got different successors;
//! - **reuse → revoked**: a token presented again after the grace window was refused *and*
//!   the session (every credential of it) was revoked;
//! - **live after logout**: a session check that started after an acknowledged logout and
//!   still succeeded, on this instance or on a second engine over the same stores.
//!
//! The program exits non-zero if any of logouts, forks or live-after-logout is not zero, or
//! reuse did not revoke every time.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection as _, Executor as _};
use tessera_core::password::{HashingLimits, HashingParams};
use tessera_core::{
    Clock as _, Engine, EngineConfig, LoginAttempt, ManualClock, PasswordHasher, RevocationLog,
    Stores, SystemClock, Transport,
};
use tessera_store::memory::{MemoryStore, MemoryThrottle};
use tessera_store::postgres::{PgOptions, PgStore};
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sqlite::SqliteStore;

type BoxError = Box<dyn Error + Send + Sync>;

const PASSWORD: &str = "correct horse battery staple";
const CONCURRENT_REFRESHES: usize = 10;
const GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Outcome {
    chains: usize,
    logouts: usize,
    forks: usize,
    reuse_trials: usize,
    reuse_revoked: usize,
    logout_trials: usize,
    live_after_logout: usize,
}

impl Outcome {
    fn clean(&self) -> bool {
        self.logouts == 0
            && self.forks == 0
            && self.live_after_logout == 0
            && self.reuse_revoked == self.reuse_trials
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let chains: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let trials: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let pg_url = std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let redis_url = std::env::var("TESSERA_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let tag = format!("races{}", std::process::id());

    println!(
        "| store | chains × {CONCURRENT_REFRESHES} refreshes | logouts | forks | reuse → revoked | logout races | live after logout |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut all_clean = true;

    let memory = Arc::new(MemoryStore::new());
    let throttle = Arc::new(MemoryThrottle::new());
    let outcome = run(
        || Stores {
            users: memory.clone(),
            sessions: memory.clone(),
            refresh: memory.clone(),
            keys: memory.clone(),
            services: memory.clone(),
            clients: memory.clone(),
            throttle: throttle.clone(),
        },
        chains,
        trials,
    )
    .await?;
    all_clean &= report("memory", &outcome);

    let dir = tempfile::tempdir()?;
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("tessera.db")).await?);
    let outcome = run(|| sql_stores(&sqlite), chains, trials).await?;
    all_clean &= report("SQLite", &outcome);

    let options = PgOptions {
        schema: Some(tag.clone()),
        ..PgOptions::default()
    };
    let postgres = Arc::new(PgStore::connect(&pg_url, options).await?);
    let result = async {
        let outcome = run(|| sql_stores(&postgres), chains, trials).await?;
        let clean = report("PostgreSQL", &outcome);
        let redis_options = RedisOptions {
            prefix: format!("{tag}:"),
            ..RedisOptions::default()
        };
        let log: Arc<dyn RevocationLog> = postgres.clone();
        let redis = Arc::new(RedisStore::connect(&redis_url, redis_options, log).await?);
        let outcome = run(
            || {
                let mut stores = sql_stores(&postgres);
                stores.sessions = redis.clone();
                stores.refresh = redis.clone();
                stores.throttle = redis.clone();
                stores
            },
            chains,
            trials,
        )
        .await?;
        Ok::<bool, BoxError>(clean & report("PostgreSQL + Redis", &outcome))
    }
    .await;
    let cleaned = clean_up(&pg_url, &tag, &redis_url).await;
    all_clean &= result?;
    cleaned?;
    if !all_clean {
        return Err("a race lost: see the table".into());
    }
    Ok(())
}

fn sql_stores<S>(store: &Arc<S>) -> Stores
where
    S: tessera_core::UserStore
        + tessera_core::SessionStore
        + tessera_core::RefreshStore
        + tessera_core::KeyStore
        + tessera_core::ClientStore
        + tessera_core::ServiceStore
        + tessera_core::LoginThrottle
        + 'static,
{
    Stores {
        users: store.clone(),
        sessions: store.clone(),
        refresh: store.clone(),
        keys: store.clone(),
        services: store.clone(),
        clients: store.clone(),
        throttle: store.clone(),
    }
}

fn report(name: &str, outcome: &Outcome) -> bool {
    println!(
        "| {name} | {} | {} | {} | {}/{} | {} | {} |",
        outcome.chains,
        outcome.logouts,
        outcome.forks,
        outcome.reuse_revoked,
        outcome.reuse_trials,
        outcome.logout_trials,
        outcome.live_after_logout,
    );
    outcome.clean()
}

async fn run(
    stores: impl Fn() -> Stores,
    chains: usize,
    trials: usize,
) -> Result<Outcome, BoxError> {
    let clock = ManualClock::new(SystemClock.now());
    let mut config = EngineConfig::default();
    config.tokens.refresh_grace = GRACE;
    let hasher = || PasswordHasher::new(HashingParams::default(), HashingLimits::default());
    let engine = Engine::new(stores(), hasher()?, Arc::new(clock.clone()), config.clone()).await?;
    // A second instance over the same stores, as behind a load balancer.
    let other = Engine::new(stores(), hasher()?, Arc::new(clock.clone()), config).await?;
    let username = format!("racer{}", std::process::id());
    // PostgreSQL + Redis reuses the PostgreSQL run's users.
    match engine.create_user(&username, PASSWORD).await {
        Ok(_) | Err(tessera_core::Error::UsernameTaken) => {}
        Err(error) => return Err(error.into()),
    }
    let mut outcome = Outcome::default();

    // Concurrent refreshes of one unspent token: all must get the same successor.
    let session = login(&engine, &username, Transport::Token).await?;
    for _ in 0..chains {
        let grant = engine.issue_tokens(&session).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENT_REFRESHES {
            let engine = engine.clone();
            let token = grant.refresh_token.clone();
            tasks.spawn(async move { engine.refresh(&token).await });
        }
        let mut successors = Vec::new();
        while let Some(result) = tasks.join_next().await {
            match result? {
                Ok(refreshed) => successors.push(refreshed.tokens.refresh_token.encode()),
                Err(_) => outcome.logouts += 1,
            }
        }
        successors.sort();
        successors.dedup();
        outcome.forks += successors.len().saturating_sub(1);
        outcome.chains += 1;
    }

    for _ in 0..trials {
        // Reuse after the grace window: the whole family ends, on every instance.
        let session = login(&engine, &username, Transport::Token).await?;
        let grant = engine.issue_tokens(&session).await?;
        let successor = engine.refresh(&grant.refresh_token).await?;
        clock.advance(GRACE + Duration::from_millis(1));
        let reuse_refused = engine.refresh(&grant.refresh_token).await.is_err();
        let successor_refused = engine
            .refresh(&successor.tokens.refresh_token)
            .await
            .is_err();
        let id = &session.record().id;
        other.sync_revocations().await?;
        let everywhere = engine.session_for_access(id).await.is_err()
            && other.session_for_access(id).await.is_err();
        outcome.reuse_trials += 1;
        if reuse_refused && successor_refused && everywhere {
            outcome.reuse_revoked += 1;
        }

        // Logout racing session checks: nothing that starts after the acknowledgement passes.
        let login = engine
            .login(LoginAttempt {
                username: &username,
                password: PASSWORD,
                transport: Transport::Cookie,
                ip: None,
                user_agent: None,
            })
            .await?;
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..CONCURRENT_REFRESHES {
            let engine = engine.clone();
            let token = login.token.clone();
            checks.spawn(async move {
                for _ in 0..5 {
                    let _ = engine.validate(&token).await;
                    tokio::task::yield_now().await;
                }
            });
        }
        engine.logout(&login.session).await?;
        if engine.validate(&login.token).await.is_ok() {
            outcome.live_after_logout += 1;
        }
        while checks.join_next().await.is_some() {}
        other.sync_revocations().await?;
        if engine.validate(&login.token).await.is_ok() || other.validate(&login.token).await.is_ok()
        {
            outcome.live_after_logout += 1;
        }
        outcome.logout_trials += 1;
    }
    Ok(outcome)
}

async fn login(
    engine: &Engine,
    username: &str,
    transport: Transport,
) -> Result<tessera_core::ValidSession, BoxError> {
    Ok(engine
        .login(LoginAttempt {
            username,
            password: PASSWORD,
            transport,
            ip: None,
            user_agent: None,
        })
        .await?
        .session)
}

/// Drops the schema and deletes the keys this run made.
async fn clean_up(pg_url: &str, schema: &str, redis_url: &str) -> Result<(), BoxError> {
    let mut connection = sqlx::postgres::PgConnection::connect(pg_url).await?;
    connection
        .execute(&*format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await?;
    connection.close().await?;
    let client = redis::Client::open(redis_url)?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    let pattern = format!("{schema}:*");
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut redis)
            .await?;
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut redis)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
