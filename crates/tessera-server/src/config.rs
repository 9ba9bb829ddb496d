//! Configuration: an optional `tessera.toml`, then `TESSERA__SECTION__KEY` environment
//! variables, then command-line flags, each overriding the one before. With none of them,
//! `tessera serve` listens on 127.0.0.1:8080 with SQLite under `./tessera-data`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The whole configuration. Every key has a default; unknown keys are errors, so a typo is
/// reported instead of silently ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where and how to listen.
    pub server: ServerConfig,
    /// `[database]`: the durable store.
    pub database: DatabaseConfig,
    /// `[sessions]`: where sessions live.
    pub sessions: SessionsConfig,
    /// `[revocation]`: how fresh the revocation feed must be.
    pub revocation: RevocationConfig,
    /// `[session]`: session lifetimes and the cookie.
    pub session: SessionConfig,
    /// `[auth]`: registration and passwords.
    pub auth: AuthConfig,
    /// `[ratelimit]`: login throttling.
    pub ratelimit: RateLimitConfig,
    /// `[token]`: the token transport (JWT access tokens, refresh tokens, signing keys).
    pub token: TokenConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[danger]`: settings that weaken security, for local development only.
    pub danger: DangerConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Defaults to `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// The origin browsers reach Tessera at, e.g. `https://auth.example.com`. When set,
    /// `Origin` headers must match it (or `allowed_origins`) exactly; when unset, they must
    /// match the request's `Host`. Defaults to unset.
    pub public_url: Option<String>,
    /// More origins whose pages may call the API with the session cookie. Defaults to none.
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes. Defaults to `16384`.
    pub max_body_bytes: usize,
    /// Largest request head (request line and headers) accepted, in bytes. Defaults to `16384`.
    pub max_header_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client address. Defaults
    /// to none: the socket's peer address is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// How long shutdown waits for requests in flight. Defaults to `10s`.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            allowed_origins: Vec::new(),
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            trusted_proxies: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (relative paths are relative to the working directory) or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (several instances share it).
    /// Defaults to `sqlite://tessera-data/tessera.db`.
    pub url: String,
    /// PostgreSQL only: the schema holding Tessera's tables, created if missing; unset uses
    /// the connection's `search_path` (usually `public`). Defaults to unset.
    pub schema: Option<String>,
    /// PostgreSQL only: connections per instance. Defaults to `16`.
    pub max_connections: u32,
    /// PostgreSQL only: how long connecting, waiting for a pooled connection, and one
    /// statement may each take before the request fails with `503 store_unavailable`.
    /// Defaults to `1s`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://tessera-data/tessera.db".to_owned(),
            schema: None,
            max_connections: 16,
            timeout: Duration::from_secs(1),
        }
    }
}

/// `[sessions]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// `"database"` keeps sessions in the database; `"redis://HOST:PORT[/DB]"` (or
    /// `rediss://`) keeps sessions, refresh tokens and login-throttle counters in Redis, with
    /// revocations logged in the database; `"memory"` keeps everything (users included) in
    /// this process only, lost on restart: for tests and trials. Defaults to `"database"`.
    pub store: String,
    /// Redis only: the prefix of every key and channel. Defaults to `"tessera:"`.
    pub redis_prefix: String,
    /// Redis only: how long one command may take before the request fails with `503
    /// store_unavailable`. Defaults to `1s`.
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// How often revocations made by other processes (the CLI) are picked up. Defaults to `1s`.
    #[serde(with = "humantime_serde")]
    pub revocation_poll: Duration,
    /// How often ended sessions are purged. Defaults to `5m`.
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            store: "database".to_owned(),
            redis_prefix: "tessera:".to_owned(),
            redis_timeout: Duration::from_secs(1),
            revocation_poll: Duration::from_secs(1),
            purge_interval: Duration::from_secs(300),
        }
    }
}

/// `[revocation]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RevocationConfig {
    /// Once the last successful read of the revocation log is older than this, this instance
    /// answers nothing from its in-process cache (sessions and access tokens alike): every
    /// check goes to the session store, and fails with `503` if that is down too, and
    /// `/readyz` reports `503`. At least twice `sessions.revocation_poll`. Defaults to `10s`.
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

/// `[session]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// A session with no request for this long ends. Defaults to `30m`.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A session ends this long after login whatever its activity. Defaults to `12h`.
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
    /// Idle extensions are written to the store at most this often per session. Defaults to
    /// a tenth of `idle_timeout`, at most `60s`.
    #[serde(with = "humantime_serde")]
    pub touch_interval: Option<Duration>,
    /// Sessions kept in the in-process cache; `0` turns it off. Defaults to `100000`.
    pub cache_capacity: usize,
    /// Name of the session cookie; must start with `__Host-`. Defaults to
    /// `__Host-tessera_session`.
    pub cookie_name: String,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 60 * 60),
            touch_interval: None,
            cache_capacity: 100_000,
            cookie_name: "__Host-tessera_session".to_owned(),
        }
    }
}

/// `[auth]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether `POST /v1/users` is open to anyone. The CLI can always add users.
    /// Defaults to `true`.
    pub registration: bool,
    /// Fewest characters in a new password. Defaults to `8`.
    pub password_min_length: usize,
    /// Most bytes in a password. Defaults to `1024`.
    pub password_max_bytes: usize,
    /// Argon2id memory per hash, KiB; refused below the OWASP floor. Defaults to `19456`.
    pub argon2_memory_kib: u32,
    /// Argon2id passes. Defaults to `2`.
    pub argon2_iterations: u32,
    /// Argon2id lanes. Defaults to `1`.
    pub argon2_parallelism: u32,
    /// Password hashes computed at once. Defaults to the number of CPUs.
    pub hash_concurrency: Option<usize>,
    /// Logins allowed to wait for a hashing slot before `503`. Defaults to `64`.
    pub hash_queue: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            registration: true,
            password_min_length: 8,
            password_max_bytes: 1024,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_concurrency: None,
            hash_queue: 64,
        }
    }
}

/// `[ratelimit]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Failed logins allowed per account within `window`. Defaults to `10`.
    pub account_failures: u32,
    /// Failed logins allowed per client address (IPv6: per /64) within `window`.
    /// Defaults to `100`.
    pub address_failures: u32,
    /// How long failures are counted. Defaults to `15m`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            account_failures: 10,
            address_failures: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

/// `[token]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Access-token (JWT) lifetime. Defaults to `5m`.
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// Refresh-token lifetime, never beyond the session's absolute expiry. Defaults to `30d`.
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// How long a spent refresh token still returns its successor pair. Defaults to `10s`.
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
    /// Clock-skew allowance when checking `exp`, `nbf` and `iat`; at most `5m`. Defaults to `30s`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// `EdDSA`, `ES256`, `RS256`, or `HS256` (single-service setups only: verifiers need the
    /// secret). Defaults to `EdDSA`.
    pub algorithm: String,
    /// The HS256 secret, at least 32 bytes; required with `algorithm = "HS256"` and refused
    /// otherwise. Defaults to unset.
    pub hs256_secret: Option<Secret>,
    /// `iss` of every token. Defaults to `server.public_url`, else `http://` + `server.bind`.
    pub issuer: Option<String>,
    /// `aud` of every token, and what this server accepts. Defaults to `["tessera"]`.
    pub audience: Vec<String>,
    /// A rotated-in key is published this long before it signs, so verifiers that cache the
    /// JWKS learn it first. Defaults to `5m`.
    #[serde(with = "humantime_serde")]
    pub key_publish_lead: Duration,
    /// How often the keys are re-read from the store (rotations by the CLI or other
    /// instances). Defaults to `5s`.
    #[serde(with = "humantime_serde")]
    pub key_reload: Duration,
    /// A signing key older than this is rotated out automatically (one instance does it; the
    /// others pick the new key up). `0s` turns the schedule off, leaving `tessera keys rotate`.
    /// Ignored for HS256. Defaults to `30d`.
    #[serde(with = "humantime_serde")]
    pub key_rotation: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            access_ttl: Duration::from_secs(5 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 60 * 60),
            refresh_grace: Duration::from_secs(10),
            leeway: Duration::from_secs(30),
            algorithm: "EdDSA".to_owned(),
            hs256_secret: None,
            issuer: None,
            audience: vec!["tessera".to_owned()],
            key_publish_lead: Duration::from_secs(5 * 60),
            key_reload: Duration::from_secs(5),
            key_rotation: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

impl TokenConfig {
    /// The signing algorithm (validated by [`Config::validate`]; EdDSA if unparsable).
    pub fn algorithm(&self) -> tessera_jose::Algorithm {
        self.algorithm
            .parse()
            .unwrap_or(tessera_jose::Algorithm::EdDSA)
    }
}

/// A configured secret: read from the file or environment, never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` or `"json"`. Defaults to `"text"`.
    pub format: String,
    /// A `tracing` filter such as `info` or `tessera=debug`; `RUST_LOG` overrides it.
    /// Defaults to `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".to_owned(),
            level: "info".to_owned(),
        }
    }
}

/// `[danger]`: never in production.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DangerConfig {
    /// Send the session cookie without `Secure` (and so without the `__Host-` prefix), for
    /// browsers reaching a development server over plain HTTP on a name other than
    /// `localhost`. Defaults to `false`.
    pub insecure_cookies: bool,
}

/// The configuration could not be loaded or makes no sense.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file or an environment variable could not be read or parsed.
    #[error("invalid configuration: {0}")]
    Load(#[source] Box<figment::Error>),
    /// A value is out of range.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// The offending key.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Where the durable state lives, parsed from `database.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

/// Where sessions live, parsed from `sessions.store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionBackend {
    /// With the durable state, in the database.
    Database,
    /// In Redis, by URL.
    Redis(String),
    /// In this process only (users and keys too).
    Memory,
}

impl Config {
    /// Loads `file` (if given, it must exist; if not given, `./tessera.toml` is read when it
    /// exists), then `TESSERA__…` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::Invalid {
                        key: "--config",
                        reason: "the configuration file does not exist",
                    });
                }
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("tessera.toml")),
        }
        figment = figment.merge(Env::prefixed("TESSERA__").split("__"));
        let config: Config = figment
            .extract()
            .map_err(|error| ConfigError::Load(Box::new(error)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and combinations that types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason| Err(ConfigError::Invalid { key, reason });
        if self.session.idle_timeout < Duration::from_secs(1) {
            return invalid("session.idle_timeout", "must be at least 1s");
        }
        if self.session.absolute_timeout < Duration::from_secs(1) {
            return invalid("session.absolute_timeout", "must be at least 1s");
        }
        if self
            .session
            .touch_interval
            .is_some_and(|touch| touch > self.session.idle_timeout)
        {
            return invalid(
                "session.touch_interval",
                "must not exceed session.idle_timeout",
            );
        }
        if !self.danger.insecure_cookies && !self.session.cookie_name.starts_with("__Host-") {
            return invalid("session.cookie_name", "must start with __Host-");
        }
        if cookie::Cookie::parse(format!("{}=x", self.session.cookie_name)).is_err()
            || self.session.cookie_name.len() > 64
            || !self
                .session
                .cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return invalid(
                "session.cookie_name",
                "must be a plain cookie name of at most 64 characters",
            );
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        if self.server.max_header_bytes < 8192 {
            return invalid("server.max_header_bytes", "must be at least 8192");
        }
        if self.auth.password_min_length == 0
            || self.auth.password_min_length > self.auth.password_max_bytes
        {
            return invalid(
                "auth.password_min_length",
                "must be between 1 and auth.password_max_bytes",
            );
        }
        if self.ratelimit.account_failures == 0 || self.ratelimit.address_failures == 0 {
            return invalid("ratelimit", "failure limits must be at least 1");
        }
        if self.ratelimit.window < Duration::from_secs(1) {
            return invalid("ratelimit.window", "must be at least 1s");
        }
        let token = &self.token;
        if token.algorithm.parse::<tessera_jose::Algorithm>().is_err() {
            return invalid("token.algorithm", "must be EdDSA, ES256, RS256 or HS256");
        }
        match (token.algorithm(), &token.hs256_secret) {
            (tessera_jose::Algorithm::HS256, Some(secret)) if secret.expose().len() >= 32 => {}
            (tessera_jose::Algorithm::HS256, _) => {
                return invalid(
                    "token.hs256_secret",
                    "HS256 needs a secret of at least 32 bytes (256 bits)",
                );
            }
            (_, Some(_)) => {
                return invalid(
                    "token.hs256_secret",
                    "only used with token.algorithm = \"HS256\"",
                );
            }
            (_, None) => {}
        }
        if token.leeway > Duration::from_secs(300) {
            return invalid("token.leeway", "must be at most 5m");
        }
        if token.access_ttl < Duration::from_secs(10)
            || token.access_ttl > Duration::from_secs(24 * 60 * 60)
        {
            return invalid("token.access_ttl", "must be between 10s and 24h");
        }
        if token.refresh_ttl < token.access_ttl {
            return invalid("token.refresh_ttl", "must be at least token.access_ttl");
        }
        if token.refresh_grace > Duration::from_secs(60) {
            return invalid("token.refresh_grace", "must be at most 60s");
        }
        if token.audience.is_empty() || token.audience.iter().any(String::is_empty) {
            return invalid(
                "token.audience",
                "must name at least one non-empty audience",
            );
        }
        if !token.key_rotation.is_zero() && token.key_rotation <= token.key_publish_lead {
            return invalid(
                "token.key_rotation",
                "must be longer than token.key_publish_lead (or 0s to turn it off)",
            );
        }
        if token.key_reload < Duration::from_millis(100) {
            return invalid("token.key_reload", "must be at least 100ms");
        }
        self.session_backend()?;
        self.database()?;
        if self.revocation.max_staleness < self.sessions.revocation_poll * 2 {
            return invalid(
                "revocation.max_staleness",
                "must be at least twice sessions.revocation_poll",
            );
        }
        if self.database.timeout < Duration::from_millis(100) {
            return invalid("database.timeout", "must be at least 100ms");
        }
        if self.sessions.redis_timeout < Duration::from_millis(50) {
            return invalid("sessions.redis_timeout", "must be at least 50ms");
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return invalid("log.format", "must be \"text\" or \"json\"");
        }
        if self.sessions.revocation_poll < Duration::from_millis(50) {
            return invalid("sessions.revocation_poll", "must be at least 50ms");
        }
        if self.sessions.purge_interval < Duration::from_secs(1) {
            return invalid("sessions.purge_interval", "must be at least 1s");
        }
        for origin in self
            .server
            .public_url
            .iter()
            .chain(&self.server.allowed_origins)
        {
            if crate::csrf::Origin::parse(origin).is_none() {
                return invalid(
                    "server.public_url / server.allowed_origins",
                    "must be origins like https://host[:port]",
                );
            }
        }
        self.database()?;
        Ok(())
    }

    /// The issuer (`iss`) of this server's tokens.
    pub fn issuer(&self) -> String {
        match (&self.token.issuer, &self.server.public_url) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(url)) => url.clone(),
            (None, None) => format!("http://{}", self.server.bind),
        }
    }

    /// The durable store named by `database.url`.
    pub fn database(&self) -> Result<Database, ConfigError> {
        let url = self.database.url.as_str();
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        match path {
            Some(path) if !path.is_empty() => Ok(Database::Sqlite(PathBuf::from(path))),
            _ if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Database::Postgres(url.to_owned()))
            }
            _ => Err(ConfigError::Invalid {
                key: "database.url",
                reason: "must be sqlite://PATH or postgres://USER@HOST/DATABASE",
            }),
        }
    }

    /// Where sessions live, from `sessions.store`.
    pub fn session_backend(&self) -> Result<SessionBackend, ConfigError> {
        match self.sessions.store.as_str() {
            "database" => Ok(SessionBackend::Database),
            "memory" => Ok(SessionBackend::Memory),
            url if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Ok(SessionBackend::Redis(url.to_owned()))
            }
            _ => Err(ConfigError::Invalid {
                key: "sessions.store",
                reason: "must be \"database\", \"memory\" or redis://HOST:PORT",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file_and_no_variables() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database().unwrap(),
            Database::Sqlite(PathBuf::from("tessera-data/tessera.db"))
        );
        assert_eq!(config.session.idle_timeout, Duration::from_secs(1800));
        assert!(config.auth.registration);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours.
    fn file_then_environment_override_with_human_durations() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "tessera.toml",
                r#"
                [session]
                idle_timeout = "5m"
                absolute_timeout = "2h"
                [ratelimit]
                account_failures = 3
                "#,
            )?;
            jail.set_env("TESSERA__SESSION__IDLE_TIMEOUT", "90s");
            jail.set_env("TESSERA__SERVER__BIND", "127.0.0.1:9999");
            jail.set_env("TESSERA__AUTH__REGISTRATION", "false");
            let config = Config::load(None).map_err(|error| error.to_string())?;
            assert_eq!(config.session.idle_timeout, Duration::from_secs(90));
            assert_eq!(config.session.absolute_timeout, Duration::from_secs(7200));
            assert_eq!(config.ratelimit.account_failures, 3);
            assert_eq!(config.server.bind.port(), 9999);
            assert!(!config.auth.registration);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours.
    fn typos_and_nonsense_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA__SESSION__IDLE_TIMOUT", "5m");
            assert!(Config::load(None).is_err());
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA__SESSION__IDLE_TIMEOUT", "soon");
            assert!(Config::load(None).is_err());
            Ok(())
        });
        let mut config = Config::default();
        config.session.cookie_name = "tessera".into();
        assert!(config.validate().is_err());
        let mut config = Config::default();
        config.database.url = "mysql://x".into();
        assert!(config.validate().is_err());
        let mut config = Config::default();
        config.server.public_url = Some("https://auth.example.com/path".into());
        assert!(config.validate().is_err());
        assert!(Config::load(Some(Path::new("/nonexistent/tessera.toml"))).is_err());
        let mut config = Config::default();
        config.token.algorithm = "HS256".into();
        assert!(config.validate().is_err(), "HS256 without a secret");
        config.token.hs256_secret = Some(Secret("too short".into()));
        assert!(config.validate().is_err(), "HS256 with a short secret");
        config.token.hs256_secret = Some(Secret("x".repeat(32)));
        assert!(config.validate().is_ok());
        assert!(
            !format!("{config:?}").contains(&"x".repeat(32)),
            "secrets stay out of Debug"
        );
        config.token.algorithm = "none".into();
        assert!(config.validate().is_err());
        let mut config = Config::default();
        config.token.leeway = Duration::from_secs(301);
        assert!(config.validate().is_err());
    }
}
