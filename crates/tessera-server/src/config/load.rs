//! Loading a configuration — file, environment, flags — and the checks its types cannot
//! express (ranges, keys that must agree), run once at load.

use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};

use super::*;

impl Config {
    /// Loads `file` (if given, it must exist; if not given, `./tessera.toml` is read when it
    /// exists), then `TESSERA__…` environment variables, into a configuration whose every
    /// value is parsed and checked.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let file = match file {
            Some(path) if !path.is_file() => {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    reason: "the configuration file does not exist",
                });
            }
            Some(path) => Toml::file(path),
            None => Toml::file("tessera.toml"),
        };
        Config::extract(Figment::from(file).merge(Env::prefixed("TESSERA__").split("__")))
    }

    /// Parses TOML text alone — no file, no environment — and checks it as
    /// [`Config::load`] does. For the fuzz target `fuzz/fuzz_targets/config.rs`, which reaches
    /// the loader through it; not a supported API.
    #[doc(hidden)]
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Config::extract(Figment::from(Toml::string(text)))
    }

    /// Parses what `figment` holds (keys it lacks keep their defaults) and checks it.
    pub(super) fn extract(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|error| ConfigError::Load(Box::new(error)))?;
        config.check()?;
        Ok(config)
    }

    /// The ranges and combinations that the values' types cannot express.
    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason| Err(ConfigError::Invalid { key, reason });
        let server = &self.server;
        if server.header_timeout < Duration::from_millis(100) {
            return invalid("server.header_timeout", "must be at least 100ms");
        }
        if server.body_timeout < Duration::from_millis(100) {
            return invalid("server.body_timeout", "must be at least 100ms");
        }
        if server.max_connections == Some(0) {
            return invalid("server.max_connections", "must be at least 1");
        }
        let session = &self.session;
        if session.idle_timeout < Duration::from_secs(1) {
            return invalid("session.idle_timeout", "must be at least 1s");
        }
        if session.absolute_timeout < Duration::from_secs(1) {
            return invalid("session.absolute_timeout", "must be at least 1s");
        }
        if session.reauthentication_window < Duration::from_secs(1) {
            return invalid("session.reauthentication_window", "must be at least 1s");
        }
        if session
            .touch_interval
            .is_some_and(|touch| touch > session.idle_timeout)
        {
            return invalid(
                "session.touch_interval",
                "must not exceed session.idle_timeout",
            );
        }
        if !self.danger.insecure_cookies && !session.cookie_name.starts_with("__Host-") {
            return invalid("session.cookie_name", "must start with __Host-");
        }
        if cookie::Cookie::parse(format!("{}=x", session.cookie_name)).is_err()
            || session.cookie_name.len() > 64
            || !session
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
        match (token.algorithm, &token.hs256_secret) {
            (Algorithm::HS256, Some(secret))
                if secret.expose().len() >= MINIMUM_HMAC_SECRET_BYTES => {}
            (Algorithm::HS256, _) => {
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
        if token.leeway > VerifierSettings::MAX_LEEWAY {
            return invalid("token.leeway", "must be at most 5m");
        }
        if token.access_ttl < Duration::from_secs(10)
            || token.access_ttl > Duration::from_secs(24 * 60 * 60)
        {
            return invalid("token.access_ttl", "must be between 10s and 24h");
        }
        if token.one_time_ttl < Duration::from_secs(1)
            || token.one_time_ttl > Duration::from_secs(5 * 60)
        {
            return invalid("token.one_time_ttl", "must be between 1s and 5m");
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
        if self.sessions.revocation_poll < Duration::from_millis(50) {
            return invalid("sessions.revocation_poll", "must be at least 50ms");
        }
        if self.sessions.purge_interval < Duration::from_secs(1) {
            return invalid("sessions.purge_interval", "must be at least 1s");
        }
        if self.audit.retention < Duration::from_secs(60 * 60) {
            return invalid("audit.retention", "must be at least 1h");
        }
        if self.metrics.bind == Some(self.server.bind) {
            return invalid("metrics.bind", "must differ from server.bind");
        }
        if self
            .metrics
            .bearer_token
            .as_ref()
            .is_some_and(|token| token.expose().len() < 32)
        {
            return invalid("metrics.bearer_token", "must be at least 32 bytes");
        }
        Ok(())
    }

    /// The issuer (`iss`) of this server's tokens.
    pub fn issuer(&self) -> String {
        match (&self.token.issuer, &self.server.public_url) {
            (Some(issuer), _) => issuer.clone(),
            (None, Some(url)) => url.as_str().to_owned(),
            (None, None) => format!("http://{}", self.server.bind),
        }
    }

    /// Whether instances may share this configuration's stores: PostgreSQL as the database,
    /// or Redis for sessions.
    pub fn has_shared_store(&self) -> bool {
        matches!(self.database.url, Database::Postgres(_))
            || matches!(self.sessions.store, SessionBackend::Redis(_))
    }

    /// Refuses to serve a shared store without an explicit issuer. Each instance would
    /// otherwise sign as `http://` + its own bind address and refuse the others' tokens — a
    /// deployment that silently fails half its requests behind a load balancer.
    pub fn check_serving(&self) -> Result<(), ConfigError> {
        if self.has_shared_store()
            && self.server.public_url.is_none()
            && self.token.issuer.is_none()
        {
            return Err(ConfigError::Invalid {
                key: "server.public_url",
                reason: "must be set when the store is shared (PostgreSQL or Redis): it is the \
                         token issuer, and every instance must sign with the same one \
                         (or set token.issuer)",
            });
        }
        Ok(())
    }
}
