//! Opening what a configuration names: the stores, the engine over them and the token
//! machinery beside it.

use std::sync::Arc;

use tessera_core::password::{HashError, HashingLimits, HashingParams, PasswordHasher};
use tessera_core::{
    AuditStore, Clock, Engine, EngineConfig, PasswordPolicy, RevocationLog, RevocationNotifier,
    SessionPolicy, StoreError, Stores, SystemClock, ThrottleRule, TokenPolicy,
};
use tessera_store::memory::{MemoryStore, MemoryThrottle};
use tessera_store::postgres::{PgOptions, PgStore};
use tessera_store::redis::{RedisOptions, RedisStore};
use tessera_store::sqlite::SqliteStore;
use tessera_tokens::{Hs256Secret, TokenError, TokenSettings, Tokens};

use crate::config::{self, Config, ConfigError};
use crate::metrics::{self, Metrics, MetricsError};

/// The engine and the token machinery, opened together from one configuration.
#[derive(Debug, Clone)]
pub struct Services {
    /// The session engine.
    pub engine: Engine,
    /// Signing keys, signed pairs and bearer-token checks.
    pub tokens: Tokens,
    /// Pushes "the revocation log grew" from other instances, when the stores can.
    pub notifier: Option<Arc<dyn RevocationNotifier>>,
    /// This instance's metrics, which the stores above already count into.
    pub metrics: Metrics,
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
    Tokens(#[from] TokenError),
    /// The metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The SQLite database's directory or file could not be created.
    #[error("could not create the database's directory or file")]
    DataFiles(#[source] std::io::Error),
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
    let metrics = Metrics::new(&config.metrics)?;
    let (stores, audit, notifier) = connect_stores(config).await?;
    let stores = metrics::instrument(stores, store_backends(config), &metrics);
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
    let engine =
        Engine::with_audit_trail(stores, audit, hasher, clock, engine_config(config)).await?;
    let tokens = Tokens::start(engine.clone(), keys, token_settings(config)).await?;
    Ok(Services {
        engine,
        tokens,
        notifier,
        metrics,
    })
}

/// The `backend` label of each store [`connect_stores`] opens.
fn store_backends(config: &Config) -> metrics::Backends {
    let durable = match (&config.sessions.store, &config.database.url) {
        (config::SessionBackend::Memory, _) => "memory",
        (_, config::Database::Sqlite(_)) => "sqlite",
        (_, config::Database::Postgres(_)) => "postgres",
    };
    let sessions = match config.sessions.store {
        config::SessionBackend::Redis(_) => "redis",
        _ => durable,
    };
    metrics::Backends {
        users: durable,
        sessions,
    }
}

/// The stores the configuration names, the audit trail (in the database that holds the
/// users, whatever holds the sessions), and the push channel for revocations if they have
/// one: PostgreSQL's `LISTEN`/`NOTIFY` when the log is there, else Redis pub/sub.
async fn connect_stores(config: &Config) -> Result<OpenedStores, StartError> {
    if config.sessions.store == config::SessionBackend::Memory {
        let memory = Arc::new(MemoryStore::new());
        let stores = Stores {
            users: memory.clone(),
            sessions: memory.clone(),
            refresh: memory.clone(),
            keys: memory.clone(),
            services: memory.clone(),
            clients: memory.clone(),
            throttle: Arc::new(MemoryThrottle::new()),
        };
        return Ok((stores, memory, None));
    }
    let (mut stores, log, audit, mut notifier): (
        Stores,
        Arc<dyn RevocationLog>,
        Arc<dyn AuditStore>,
        _,
    ) = match &config.database.url {
        config::Database::Sqlite(path) => {
            crate::data_files::prepare_sqlite(path).map_err(StartError::DataFiles)?;
            let sqlite = Arc::new(SqliteStore::open(path).await?);
            let stores = Stores {
                users: sqlite.clone(),
                sessions: sqlite.clone(),
                refresh: sqlite.clone(),
                keys: sqlite.clone(),
                services: sqlite.clone(),
                clients: sqlite.clone(),
                throttle: sqlite.clone(),
            };
            (stores, sqlite.clone(), sqlite, None)
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
                services: postgres.clone(),
                clients: postgres.clone(),
                throttle: postgres.clone(),
            };
            let notifier: Arc<dyn RevocationNotifier> = postgres.clone();
            (stores, postgres.clone(), postgres, Some(notifier))
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
    Ok((stores, audit, notifier))
}

/// What [`connect_stores`] opens.
type OpenedStores = (
    Stores,
    Arc<dyn AuditStore>,
    Option<Arc<dyn RevocationNotifier>>,
);

/// The token settings the configuration implies.
fn token_settings(config: &Config) -> TokenSettings {
    let token = &config.token;
    TokenSettings {
        issuer: config.issuer(),
        audience: token.audience.clone(),
        algorithm: token.algorithm,
        hs256_secret: token
            .hs256_secret
            .as_ref()
            .map(|secret| Hs256Secret::new(secret.expose().as_bytes())),
        leeway: token.leeway,
        key_publish_lead: token.key_publish_lead,
        key_rotation: token.key_rotation,
    }
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
        reauthentication_window: config.session.reauthentication_window,
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
