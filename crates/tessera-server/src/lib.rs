//! Tessera's HTTP server: the JSON API over the session engine, its configuration, and the
//! `tessera` command-line binary.
//!
//! # Layout
//!
//! - [`config`]: `tessera.toml` + `TESSERA__SECTION__KEY` + flags.
//! - [`routes`]: the handlers and the OpenAPI document they generate.
//! - [`auth`]: session cookie / bearer token extraction and the cookie itself.
//! - [`csrf`]: `Origin` / `Sec-Fetch-Site` checks (the CSRF token lives in the core).
//! - [`problem`]: every error as `application/problem+json` — the one place statuses are
//!   decided.
//! - [`server`]: the accept loop (takes its listener and shutdown signal as arguments).
//!
//! # Quick start
//!
//! ```no_run
//! use tessera_server::{Config, open, server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(None)?;
//! let services = open(&config).await?;
//! let listener = tokio::net::TcpListener::bind(config.server.bind).await?;
//! server::serve(listener, &config, services, async {
//!     tokio::signal::ctrl_c().await.ok();
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use tessera_core::password::{HashError, HashingLimits, HashingParams, PasswordHasher};
use tessera_core::{
    Clock, Engine, EngineConfig, PasswordPolicy, RevocationLog, RevocationNotifier, SessionPolicy,
    StoreError, Stores, SystemClock, ThrottleRule, TokenPolicy,
};
use tessera_store::memory::{MemoryStore, MemoryThrottle};
use tessera_store::postgres::{PgOptions, PgStore};
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sqlite::SqliteStore;

pub mod auth;
pub mod body;
pub mod config;
pub mod csrf;
pub mod danger;
pub mod extract;
mod pages;
pub mod problem;
mod refresh_cookie;
pub mod routes;
pub mod server;
pub mod tokens;

pub use config::{Config, ConfigError};

/// What every handler can reach, behind one shared allocation: axum clones the state for
/// every request, once per layer of routing it passes, so a clone must be a reference-count
/// increment and not a copy of the settings' strings.
#[derive(Debug, Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    /// Shares `state` between the handlers.
    pub fn new(state: SharedState) -> Self {
        AppState(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct SharedState {
    /// The session engine.
    pub engine: Engine,
    /// HTTP-level settings.
    pub http: HttpSettings,
    /// Access-token signing and verification.
    pub tokens: tokens::Tokens,
    /// How often the revocation stream polls the log.
    pub revocation_poll: std::time::Duration,
    /// The OpenAPI document, serialized once.
    pub openapi: Bytes,
}

/// The engine and the token machinery, opened together from one configuration.
#[derive(Debug, Clone)]
pub struct Services {
    /// The session engine.
    pub engine: Engine,
    /// Signing keys, signer and verifier.
    pub tokens: tokens::Tokens,
    /// Pushes "the revocation log grew" from other instances, when the stores can.
    pub notifier: Option<Arc<dyn RevocationNotifier>>,
}

/// Settings that only matter to the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The session cookie.
    pub cookies: auth::CookieSettings,
    /// Origins allowed to make credentialed unsafe requests.
    pub origins: csrf::OriginPolicy,
    /// Whether `POST /v1/users` is open.
    pub registration: bool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error("could not open the store")]
    Store(#[from] StoreError),
    /// The password hasher refused its parameters.
    #[error("invalid password hashing configuration")]
    Hashing(#[from] HashError),
    /// The signing keys could not be loaded or created.
    #[error("could not set up the signing keys")]
    Tokens(#[from] tokens::TokenError),
}

/// Opens the stores the configuration names and builds the engine and the token machinery
/// over them.
pub async fn open(config: &Config) -> Result<Services, StartError> {
    open_with_clock(config, Arc::new(SystemClock)).await
}

/// [`open`] with another clock (tests use a `ManualClock` to expire sessions without
/// sleeping).
pub async fn open_with_clock(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Services, StartError> {
    if matches!(config.database.url, config::Database::Postgres(_))
        && config.server.public_url.is_none()
        && config.token.issuer.is_none()
    {
        tracing::warn!(
            issuer = %config.issuer(),
            "with several instances, set server.public_url (the token issuer) to the same value \
             on each, or tokens from one are refused by another"
        );
    }
    let (stores, notifier) = connect_stores(config).await?;
    let auth = &config.auth;
    let hasher = PasswordHasher::new(
        HashingParams {
            memory_kib: auth.argon2_memory_kib,
            iterations: auth.argon2_iterations,
            parallelism: auth.argon2_parallelism,
        },
        HashingLimits {
            concurrency: auth
                .hash_concurrency
                .unwrap_or(HashingLimits::default().concurrency),
            queue: auth.hash_queue,
        },
    )?;
    let keys = Arc::clone(&stores.keys);
    let now = tokens::unix_seconds(clock.now());
    let engine = Engine::new(stores, hasher, clock, engine_config(config)).await?;
    let tokens = tokens::Tokens::start(keys, &config.token, config.issuer(), now).await?;
    Ok(Services {
        engine,
        tokens,
        notifier,
    })
}

/// The stores the configuration names, and the push channel for revocations if they have
/// one: PostgreSQL's `LISTEN`/`NOTIFY` when the log is there, else Redis pub/sub.
async fn connect_stores(
    config: &Config,
) -> Result<(Stores, Option<Arc<dyn RevocationNotifier>>), StartError> {
    if config.sessions.store == config::SessionBackend::Memory {
        let memory = Arc::new(MemoryStore::new());
        let stores = Stores {
            users: memory.clone(),
            sessions: memory.clone(),
            refresh: memory.clone(),
            keys: memory.clone(),
            clients: memory,
            throttle: Arc::new(MemoryThrottle::new()),
        };
        return Ok((stores, None));
    }
    let (mut stores, log, mut notifier): (Stores, Arc<dyn RevocationLog>, _) =
        match &config.database.url {
            config::Database::Sqlite(path) => {
                let sqlite = Arc::new(SqliteStore::open(path).await?);
                let stores = Stores {
                    users: sqlite.clone(),
                    sessions: sqlite.clone(),
                    refresh: sqlite.clone(),
                    keys: sqlite.clone(),
                    clients: sqlite.clone(),
                    throttle: sqlite.clone(),
                };
                (stores, sqlite, None)
            }
            config::Database::Postgres(url) => {
                let options = PgOptions {
                    max_connections: config.database.max_connections,
                    acquire_timeout: config.database.timeout,
                    connect_timeout: config.database.timeout,
                    statement_timeout: config.database.timeout,
                    schema: config.database.schema.clone(),
                };
                let postgres = Arc::new(PgStore::connect(url, options).await?);
                let stores = Stores {
                    users: postgres.clone(),
                    sessions: postgres.clone(),
                    refresh: postgres.clone(),
                    keys: postgres.clone(),
                    clients: postgres.clone(),
                    throttle: postgres.clone(),
                };
                let notifier: Arc<dyn RevocationNotifier> = postgres.clone();
                (stores, postgres, Some(notifier))
            }
        };
    if let config::SessionBackend::Redis(url) = &config.sessions.store {
        let options = RedisOptions {
            prefix: config.sessions.redis_prefix.clone(),
            command_timeout: config.sessions.redis_timeout,
            connect_timeout: config.sessions.redis_timeout,
            ..RedisOptions::default()
        };
        let redis = Arc::new(RedisStore::connect(url, options, log).await?);
        stores.sessions = redis.clone();
        stores.refresh = redis.clone();
        stores.throttle = redis.clone();
        if notifier.is_none() {
            notifier = Some(redis);
        }
    }
    Ok((stores, notifier))
}

/// The engine settings the configuration implies.
pub fn engine_config(config: &Config) -> EngineConfig {
    let mut session =
        SessionPolicy::new(config.session.idle_timeout, config.session.absolute_timeout);
    if let Some(touch) = config.session.touch_interval {
        session.touch_interval = touch;
    }
    EngineConfig {
        session,
        password: PasswordPolicy {
            min_length: config.auth.password_min_length,
            max_bytes: config.auth.password_max_bytes,
        },
        account_throttle: ThrottleRule {
            max_failures: config.ratelimit.account_failures,
            window: config.ratelimit.window,
        },
        address_throttle: ThrottleRule {
            max_failures: config.ratelimit.address_failures,
            window: config.ratelimit.window,
        },
        cache_capacity: config.session.cache_capacity,
        // Verifiers must be able to learn of a revocation for as long as an access token
        // naming the session can live.
        revocation_retention: (config.token.access_ttl + config.token.leeway)
            .max(EngineConfig::default().revocation_retention),
        tokens: TokenPolicy {
            access_ttl: config.token.access_ttl,
            refresh_ttl: config.token.refresh_ttl,
            refresh_grace: config.token.refresh_grace,
        },
        revocation_max_staleness: Some(config.revocation.max_staleness),
    }
}
