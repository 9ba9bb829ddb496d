//! Configuration: an optional `tessera.toml`, then `TESSERA__SECTION__KEY` environment
//! variables, then command-line flags, each overriding the one before. With none of them,
//! `tessera serve` listens on 127.0.0.1:8080 with SQLite under `./tessera-data`.
//!
//! [`Config::load`] parses every key into its type ([`Database`], [`SessionBackend`],
//! [`Algorithm`], [`PublicUrl`], [`Origin`], [`LogFormat`], durations) and checks the ranges
//! and combinations types cannot express, once: a loaded `Config` is valid, and nothing
//! downstream parses or checks it again.
//!
//! Defaults that the engine or a store also has are read from there
//! ([`SessionPolicy`], [`TokenPolicy`], [`EngineConfig`], [`RedisOptions`], …), so each
//! default value is written once.
//!
//! # Sections
//!
//! Three sections sound alike and are about different things:
//!
//! - `[session]` (singular): **one session** — how long it lives, how its idle extension is
//!   written, the cookie that carries it, and how many are cached in process.
//! - `[sessions]` (plural): **where all sessions are stored** — the session store (database,
//!   Redis or memory), its Redis settings, and its upkeep (reading the revocation log,
//!   purging ended sessions).
//! - `[revocation]`: **how stale this instance's view of revocations made elsewhere may
//!   get** before it stops answering from its cache. The cadence that keeps it fresh is
//!   `sessions.revocation_poll`, a setting of the store it reads.
//!
//! `session.*` and `sessions.store` are public names (`PRODUCT.md`), so the sections keep
//! them; these docs and the ones on each section say which is which instead.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tessera_core::password::{HashingLimits, HashingParams};
use tessera_core::{EngineConfig, PasswordPolicy, SessionPolicy, TokenPolicy};
use tessera_jose::{Algorithm, MINIMUM_HMAC_SECRET_BYTES, VerifierSettings};
use tessera_store::postgres::PgOptions;
use tessera_store::redis::RedisOptions;

use crate::csrf::Origin;

mod load;
mod values;

pub use values::{
    Database, LogFormat, NotAProxyRange, NotAnOrigin, ProxyRange, PublicUrl, Secret,
    SessionBackend, UnknownDatabase, UnknownSessionBackend,
};

/// The whole configuration. Every key has a default; unknown keys are errors, so a typo is
/// reported instead of silently ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where and how to listen.
    pub server: ServerConfig,
    /// `[database]`: the durable store (users, keys, clients, the revocation log).
    pub database: DatabaseConfig,
    /// `[sessions]`: where all sessions are stored, and that store's upkeep.
    pub sessions: SessionsConfig,
    /// `[revocation]`: how stale this instance's view of revocations may get.
    pub revocation: RevocationConfig,
    /// `[session]`: one session's lifetimes, its cookie, and the in-process cache.
    pub session: SessionConfig,
    /// `[auth]`: registration and passwords.
    pub auth: AuthConfig,
    /// `[ratelimit]`: login throttling.
    pub ratelimit: RateLimitConfig,
    /// `[token]`: the token transport (JWT access tokens, refresh tokens, signing keys).
    pub token: TokenConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[metrics]`: `GET /metrics` and who may read it.
    pub metrics: MetricsConfig,
    /// `[audit]`: how long the audit trail keeps events.
    pub audit: AuditConfig,
    /// `[danger]`: settings that weaken security, for local development only.
    pub danger: DangerConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    /// Defaults to `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// The origin browsers reach Tessera at, e.g. `https://auth.example.com`: Tessera's own
    /// origin for the `Origin` check, and the default token issuer. When unset, the own
    /// origin is the one whose host is the request's `Host`.
    /// Defaults to unset.
    pub public_url: Option<PublicUrl>,
    /// Origins whose pages may call the API with the session cookie, besides Tessera's own.
    /// Defaults to none.
    pub allowed_origins: Vec<Origin>,
    /// Origins whose pages may call the API cross-origin without cookies (the token
    /// transport: bearer tokens, `/v1/token`, the `.well-known` documents): they get CORS
    /// answers, never credentials mode, so cookies stay same-site. Empty sends no CORS
    /// headers at all.
    /// Defaults to none.
    pub cors_origins: Vec<Origin>,
    /// Largest request body accepted, in bytes; at least `1024`.
    /// Defaults to `16384`.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers) accepted, in bytes; at least `8192`.
    /// Defaults to `16384`.
    pub max_header_bytes: usize,
    /// Reverse proxies whose `Forwarded` (RFC 7239) or, without it, `X-Forwarded-For` header
    /// is believed for the client address: single addresses or CIDR ranges.
    /// Defaults to none: the socket's peer address is the client.
    pub trusted_proxies: Vec<ProxyRange>,
    /// How long shutdown waits for requests in flight.
    /// Defaults to `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request head, and how long a keep-alive
    /// connection may sit idle before its next one; then the connection is closed.
    /// Defaults to `10s`.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// How long a request body may take to arrive in full, counted from the end of its head;
    /// a late one is answered `408 request_timeout` and its connection closed.
    /// Defaults to `10s`.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Most client connections open at once. At the cap a new connection replaces the oldest
    /// one that is idle or still sending its request, or is closed if every one is busy.
    /// Defaults to unset: derived at start from the open-file limit (raised to the hard
    /// limit), leaving a quarter of it, and at least 64 plus `database.max_connections`
    /// descriptors (at most half), for the stores and logs.
    pub max_connections: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            allowed_origins: Vec::new(),
            cors_origins: Vec::new(),
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            trusted_proxies: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: None,
        }
    }
}

/// `[database]`: the durable store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (relative paths are relative to the working directory) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (several instances share it).
    /// Defaults to `sqlite://tessera-data/tessera.db`.
    pub url: Database,
    /// PostgreSQL only: the schema holding Tessera's tables, created if missing; unset uses
    /// the connection's `search_path` (usually `public`).
    /// Defaults to unset.
    pub schema: Option<String>,
    /// PostgreSQL only: connections per instance; at least `1`.
    /// Defaults to `16`.
    pub max_connections: u32,
    /// PostgreSQL only: how long connecting, waiting for a pooled connection, and one
    /// statement may each take before the request fails with `503 store_unavailable`; at
    /// least `100ms`.
    /// Defaults to `1s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let postgres = PgOptions::default();
        DatabaseConfig {
            url: Database::Sqlite("tessera-data/tessera.db".into()),
            schema: postgres.schema,
            max_connections: postgres.max_connections,
            timeout: postgres.statement_timeout,
        }
    }
}

/// `[sessions]` (plural): where all sessions are stored, and that store's upkeep. One
/// session's lifetimes and cookie are `[session]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// `"database"` keeps sessions in the database; `"redis://HOST:PORT[/DB]"` (or
    /// `rediss://`) keeps sessions, refresh tokens and login-throttle counters in Redis, with
    /// revocations logged in the database; `"memory"` keeps everything (users included) in
    /// this process only, lost on restart: for tests and trials.
    /// Defaults to `"database"`.
    pub store: SessionBackend,
    /// Redis only: the prefix of every key and channel.
    /// Defaults to `"tessera:"`.
    pub redis_prefix: String,
    /// Redis only: how long one command may take before the request fails with `503
    /// store_unavailable`; at least `50ms`.
    /// Defaults to `1s`.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// How often the revocation log is read for revocations made by other processes (the
    /// CLI, other instances), even without a push notification; at least `50ms`.
    /// Defaults to `1s`.
    #[serde(with = "humantime_serde")]
    pub revocation_poll: Duration,
    /// How often ended sessions are purged; at least `1s`.
    /// Defaults to `5m`.
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        let redis = RedisOptions::default();
        SessionsConfig {
            store: SessionBackend::Database,
            redis_prefix: redis.prefix,
            redis_timeout: redis.command_timeout,
            revocation_poll: Duration::from_secs(1),
            purge_interval: Duration::from_secs(5 * 60),
        }
    }
}

/// `[revocation]`: how stale this instance's view of revocations made elsewhere may get. It
/// is refreshed every `sessions.revocation_poll`, and at once on a push notification.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RevocationConfig {
    /// Once the last successful read of the revocation log is older than this, this instance
    /// answers nothing from its in-process cache (sessions and access tokens alike): every
    /// check goes to the session store, and fails with `503` if that is down too, and
    /// `/readyz` reports `503`. At least twice `sessions.revocation_poll`.
    /// Defaults to `10s`.
    #[serde(with = "humantime_serde")]
    pub max_staleness: Duration,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            max_staleness: Duration::from_secs(10),
        }
    }
}

/// `[audit]`: the durable audit trail of authentication and administration events, kept in
/// the database that holds the users (SQLite or PostgreSQL, whatever holds the sessions).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How long an event is kept. Older events are deleted in the background, in batches,
    /// every `sessions.purge_interval`. At least `1h`.
    /// Defaults to `90d`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(90 * 24 * 60 * 60),
        }
    }
}

/// `[session]` (singular): how one session lives and is carried. Where sessions are stored
/// is `[sessions]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// A session with no request for this long ends; at least `1s`.
    /// Defaults to `30m`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after login whatever its activity; at least `1s`.
    /// Defaults to `12h`.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Idle extensions are written to the store at most this often per session; at most
    /// `idle_timeout`.
    /// Defaults to a tenth of `idle_timeout`, at most `60s`.
    #[serde(with = "humantime_serde")]
    pub touch_interval: Option<Duration>,
    /// Sessions kept in the in-process cache; `0` turns it off.
    /// Defaults to `100000`.
    pub cache_capacity: usize,
    /// How recently the password must have been proven (at login or by
    /// `POST /v1/reauthenticate`) for a password change, an account deletion or
    /// `DELETE /v1/sessions`; at least `1s`.
    /// Defaults to `10m`.
    #[serde(with = "humantime_serde")]
    pub reauthentication_window: Duration,
    /// Name of the session cookie; must start with `__Host-`.
    /// Defaults to `__Host-tessera_session`.
    pub cookie_name: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let policy = SessionPolicy::default();
        SessionConfig {
            idle_timeout: policy.idle_timeout,
            absolute_timeout: policy.absolute_timeout,
            touch_interval: None,
            cache_capacity: EngineConfig::default().cache_capacity,
            reauthentication_window: EngineConfig::default().reauthentication_window,
            cookie_name: "__Host-tessera_session".to_owned(),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether `POST /v1/users` is open to anyone. The CLI can always add users.
    /// Defaults to `true`.
    pub registration: bool,
    /// Fewest characters in a new password; at least `1`, at most `password_max_bytes`.
    /// Defaults to `8`.
    pub password_min_length: usize,
    /// Most bytes in a password.
    /// Defaults to `1024`.
    pub password_max_bytes: usize,
    /// Argon2id memory per hash, KiB; refused below the OWASP floor.
    /// Defaults to `19456`.
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    /// Defaults to `2`.
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    /// Defaults to `1`.
    pub argon2_parallelism: u32,
    /// Password hashes computed at once.
    /// Defaults to the number of CPUs less one (at least one): a login flood leaves a CPU
    /// for session checks.
    pub hash_concurrency: Option<usize>,
    /// Logins allowed to wait for a hashing slot before `503`.
    /// Defaults to `64`.
    pub hash_queue: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let password = PasswordPolicy::default();
        let hashing = HashingParams::default();
        AuthConfig {
            registration: true,
            password_min_length: password.min_length,
            password_max_bytes: password.max_bytes,
            argon2_memory_kib: hashing.memory_kib,
            argon2_iterations: hashing.iterations,
            argon2_parallelism: hashing.parallelism,
            hash_concurrency: None,
            hash_queue: HashingLimits::default().queue,
        }
    }
}

/// `[ratelimit]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Failed logins allowed per account within `window`; at least `1`.
    /// Defaults to `10`.
    pub account_failures: u32,
    /// Failed logins allowed per client address (IPv6: per /64) within `window`; at least `1`.
    /// Defaults to `100`.
    pub address_failures: u32,
    /// How long failures are counted; at least `1s`.
    /// Defaults to `15m`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        RateLimitConfig {
            account_failures: engine.account_throttle.max_failures,
            address_failures: engine.address_throttle.max_failures,
            window: engine.account_throttle.window,
        }
    }
}

/// `[token]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Access-token (JWT) lifetime; between `10s` and `24h`.
    /// Defaults to `5m`.
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// Refresh-token lifetime, never beyond the session's absolute expiry; at least
    /// `access_ttl`.
    /// Defaults to `30d`.
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// How long a spent refresh token still returns its successor pair; at most `60s`.
    /// Defaults to `10s`.
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
    /// Clock-skew allowance when checking `exp`, `nbf` and `iat`; at most `5m`.
    /// Defaults to `30s`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// `EdDSA`, `ES256`, `RS256`, or `HS256` (single-service setups only: verifiers need the
    /// secret), spelled exactly so.
    /// Defaults to `EdDSA`.
    pub algorithm: Algorithm,
    /// The HS256 secret, at least 32 bytes; required with `algorithm = "HS256"` and refused
    /// otherwise.
    /// Defaults to unset.
    pub hs256_secret: Option<Secret>,
    /// `iss` of every token.
    /// Defaults to `server.public_url`, else `http://` + `server.bind`.
    pub issuer: Option<String>,
    /// `aud` of every token, and what this server accepts; at least one, none empty.
    /// Defaults to `["tessera"]`.
    pub audience: Vec<String>,
    /// A rotated-in key is published this long before it signs, so verifiers that cache the
    /// JWKS learn it first.
    /// Defaults to `5m`.
    #[serde(with = "humantime_serde")]
    pub key_publish_lead: Duration,
    /// How often the keys are re-read from the store (rotations by the CLI or other
    /// instances); at least `100ms`.
    /// Defaults to `5s`.
    #[serde(with = "humantime_serde")]
    pub key_reload: Duration,
    /// A signing key older than this is rotated out automatically (one instance does it; the
    /// others pick the new key up). `0s` turns the schedule off, leaving `tessera keys rotate`;
    /// otherwise longer than `key_publish_lead`. Ignored for HS256.
    /// Defaults to `30d`.
    #[serde(with = "humantime_serde")]
    pub key_rotation: Duration,
    /// Lifetime of a one-time operation token from token exchange (a registered service's
    /// `max_ttl` may shorten it); between `1s` and `5m`.
    /// Defaults to `30s`.
    #[serde(with = "humantime_serde")]
    pub one_time_ttl: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        let policy = TokenPolicy::default();
        TokenConfig {
            access_ttl: policy.access_ttl,
            refresh_ttl: policy.refresh_ttl,
            refresh_grace: policy.refresh_grace,
            leeway: tessera_tokens::DEFAULT_LEEWAY,
            algorithm: tessera_tokens::DEFAULT_ALGORITHM,
            hs256_secret: None,
            issuer: None,
            audience: vec![tessera_tokens::DEFAULT_AUDIENCE.to_owned()],
            key_publish_lead: tessera_tokens::DEFAULT_KEY_PUBLISH_LEAD,
            key_reload: Duration::from_secs(5),
            key_rotation: tessera_tokens::DEFAULT_KEY_ROTATION,
            one_time_ttl: Duration::from_secs(30),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` or `"json"`, to standard error.
    /// Defaults to `"text"`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tessera=debug`; `RUST_LOG` overrides it.
    /// Defaults to `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// `[metrics]`: `GET /metrics`, the Prometheus scrape. It says how busy the server is and
/// how its stores answer, so it is not public: with neither key set `/metrics` answers `404`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A separate address serving `GET /metrics` and nothing else (one only the monitoring
    /// network reaches); the main listener then answers `/metrics` with `404`. Must differ
    /// from `server.bind`.
    /// Defaults to unset.
    pub bind: Option<SocketAddr>,
    /// The token scrapers send as `Authorization: Bearer …`, at least 32 bytes. Without
    /// `bind`, `/metrics` is served on the main listener to requests that carry it; with
    /// `bind`, the separate listener requires it too.
    /// Defaults to unset.
    pub bearer_token: Option<Secret>,
}

/// `[danger]`: never in production.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DangerConfig {
    /// Send the session cookie without `Secure` (and so without the `__Host-` prefix), for
    /// browsers reaching a development server over plain HTTP on a name other than
    /// `localhost`.
    /// Defaults to `false`.
    pub insecure_cookies: bool,
}

/// The configuration could not be loaded or makes no sense.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file or an environment variable could not be read, or a value could not be
    /// parsed; the source names the key and where it was set.
    // The cause is the source, not part of this message, so a report of the chain says it once.
    #[error("invalid configuration")]
    Load(#[source] Box<figment::Error>),
    /// A value is out of range, or does not fit with another.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests;
