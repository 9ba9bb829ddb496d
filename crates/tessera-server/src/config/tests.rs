use std::path::{Path, PathBuf};

use super::*;

/// What `tessera.toml` holding `text` loads to, through the same parse and checks as a file.
fn load_toml(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text)
}

/// The error a configuration of `text` is refused with, and its causes, as a report shows it.
fn refused(text: &str) -> String {
    let error = match load_toml(text) {
        Ok(config) => panic!("accepted {text}: {config:?}"),
        Err(error) => error,
    };
    let mut report = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        report.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    report
}

#[test]
fn defaults_need_no_file_and_no_variables() {
    let config = load_toml("").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(
        config.database.url,
        Database::Sqlite(PathBuf::from("tessera-data/tessera.db"))
    );
    assert_eq!(config.sessions.store, SessionBackend::Database);
    assert_eq!(config.token.algorithm, Algorithm::EdDSA);
    assert_eq!(config.log.format, LogFormat::Text);
    assert!(config.auth.registration);
}

/// The defaults read from the engine and the stores still say what the docs say.
#[test]
fn defaults_are_the_documented_values() {
    let config = Config::default();
    let minutes = |n: u64| Duration::from_secs(n * 60);
    assert_eq!(config.session.idle_timeout, minutes(30));
    assert_eq!(config.session.absolute_timeout, minutes(12 * 60));
    assert_eq!(config.session.cache_capacity, 100_000);
    assert_eq!(config.session.reauthentication_window, minutes(10));
    assert_eq!(config.token.access_ttl, minutes(5));
    assert_eq!(config.token.refresh_ttl, minutes(30 * 24 * 60));
    assert_eq!(config.token.refresh_grace, Duration::from_secs(10));
    assert_eq!(config.token.leeway, Duration::from_secs(30));
    assert_eq!(config.ratelimit.account_failures, 10);
    assert_eq!(config.ratelimit.address_failures, 100);
    assert_eq!(config.ratelimit.window, minutes(15));
    assert_eq!(config.sessions.redis_prefix, "tessera:");
    assert_eq!(config.sessions.redis_timeout, Duration::from_secs(1));
    assert_eq!(config.database.max_connections, 16);
    assert_eq!(config.database.timeout, Duration::from_secs(1));
    assert_eq!(config.database.schema, None);
    assert_eq!(config.auth.password_min_length, 8);
    assert_eq!(config.auth.password_max_bytes, 1024);
    assert_eq!(config.auth.argon2_memory_kib, 19_456);
    assert_eq!(config.auth.argon2_iterations, 2);
    assert_eq!(config.auth.argon2_parallelism, 1);
    assert_eq!(config.auth.hash_queue, 64);
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
            [sessions]
            store = "memory"
            "#,
        )?;
        jail.set_env("TESSERA__SESSION__IDLE_TIMEOUT", "90s");
        jail.set_env("TESSERA__SESSION__REAUTHENTICATION_WINDOW", "2m");
        jail.set_env("TESSERA__SERVER__BIND", "127.0.0.1:9999");
        jail.set_env("TESSERA__AUTH__REGISTRATION", "false");
        jail.set_env("TESSERA__TOKEN__ALGORITHM", "ES256");
        jail.set_env("TESSERA__DATABASE__URL", "postgres://tessera@db/tessera");
        let config = Config::load(None).map_err(|error| error.to_string())?;
        assert_eq!(config.session.idle_timeout, Duration::from_secs(90));
        assert_eq!(config.session.absolute_timeout, Duration::from_secs(7200));
        assert_eq!(
            config.session.reauthentication_window,
            Duration::from_secs(120)
        );
        assert_eq!(config.ratelimit.account_failures, 3);
        assert_eq!(config.server.bind.port(), 9999);
        assert!(!config.auth.registration);
        assert_eq!(config.token.algorithm, Algorithm::ES256);
        assert_eq!(config.sessions.store, SessionBackend::Memory);
        assert_eq!(
            config.database.url,
            Database::Postgres("postgres://tessera@db/tessera".into())
        );
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
    assert!(Config::load(Some(Path::new("/nonexistent/tessera.toml"))).is_err());
    refused("session.cookie_name = \"tessera\"");
    refused("session.reauthentication_window = \"0s\"");
    refused("[server]\nbody_timeout = \"0s\"");
    refused("[server]\nheader_timeout = \"0s\"");
    refused("[server]\nmax_connections = 0");
    refused("database.url = \"mysql://x\"");
    refused("server.public_url = \"https://auth.example.com/path\"");
    refused("token.leeway = \"301s\"");
    refused("token.algorithm = \"none\"");
    refused("token.algorithm = \"hs256\"");
}

#[test]
fn hs256_needs_its_secret_and_the_secret_stays_out_of_debug() {
    let secret = "x".repeat(32);
    refused("token.algorithm = \"HS256\"");
    refused("token.algorithm = \"HS256\"\ntoken.hs256_secret = \"too short\"");
    refused(&format!("token.hs256_secret = \"{secret}\""));
    let config = load_toml(&format!(
        "token.algorithm = \"HS256\"\ntoken.hs256_secret = \"{secret}\""
    ))
    .unwrap();
    assert_eq!(config.token.algorithm, Algorithm::HS256);
    assert!(
        !format!("{config:?}").contains(&secret),
        "secrets stay out of Debug"
    );
}

/// Database and Redis URLs may carry a password: `Debug` (of the whole configuration, as a
/// log line or a panic would print it) shows neither user nor password.
#[test]
fn store_credentials_stay_out_of_debug() {
    let config = load_toml(
        "database.url = \"postgres://pg-user:hunter2-pg@db.internal:5432/auth?sslmode=require\"\n\
         sessions.store = \"rediss://redis-user:hunter2-redis@cache:6380/2\"\n\
         server.public_url = \"https://auth.example.com\"",
    )
    .unwrap();
    let shown = format!("{config:?}");
    for secret in ["hunter2-pg", "hunter2-redis", "pg-user", "redis-user"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("postgres://***@db.internal:5432/auth?sslmode=require"),
        "{shown}"
    );
    assert!(shown.contains("rediss://***@cache:6380/2"), "{shown}");
    // The drivers still get the URLs whole.
    assert_eq!(
        config.database.url,
        Database::Postgres(
            "postgres://pg-user:hunter2-pg@db.internal:5432/auth?sslmode=require".to_owned()
        )
    );
}

/// A value that does not parse is reported with its key and the rule it breaks.
#[test]
fn unparsable_values_name_their_key_and_the_rule() {
    for (toml, key, rule) in [
        (
            "database.url = \"mysql://x\"",
            "database.url",
            "sqlite://PATH",
        ),
        ("sessions.store = \"sql\"", "sessions.store", "\"memory\""),
        ("token.algorithm = \"none\"", "token.algorithm", "EdDSA"),
        ("log.format = \"xml\"", "log.format", "json"),
        (
            "server.public_url = \"https://a.example/login\"",
            "server.public_url",
            "origin",
        ),
        (
            "server.allowed_origins = [\"https://a.example\", \"app.example\"]",
            "server.allowed_origins",
            "origin",
        ),
    ] {
        let error = refused(toml);
        assert!(error.contains(key), "{toml}: {error}");
        assert!(error.contains(rule), "{toml}: {error}");
    }
}

#[test]
fn values_arrive_parsed() {
    let config = load_toml(
        r#"
        [server]
        public_url = "https://Auth.Example.com"
        allowed_origins = ["https://app.example.com:8443"]
        [sessions]
        store = "redis://127.0.0.1:6379/1"
        [log]
        format = "json"
        "#,
    )
    .unwrap();
    let public_url = config.server.public_url.as_ref().unwrap();
    assert_eq!(
        public_url.origin(),
        &"https://auth.example.com".parse::<Origin>().unwrap()
    );
    assert_eq!(
        config.issuer(),
        "https://Auth.Example.com",
        "kept as written"
    );
    assert_eq!(
        config.server.allowed_origins,
        ["https://app.example.com:8443".parse::<Origin>().unwrap()]
    );
    assert_eq!(
        config.sessions.store,
        SessionBackend::Redis("redis://127.0.0.1:6379/1".into())
    );
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn trusted_proxies_take_addresses_and_cidr_ranges() {
    let config =
        load_toml("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\", \"fd00::/8\"]")
            .unwrap();
    let inside = |text: &str| {
        let address: std::net::IpAddr = text.parse().unwrap();
        config
            .server
            .trusted_proxies
            .iter()
            .any(|range| range.contains(&address))
    };
    assert!(inside("10.200.0.1") && inside("192.0.2.1") && inside("fd12::1"));
    assert!(!inside("192.0.2.2") && !inside("11.0.0.1"));
    let report = refused("[server]\ntrusted_proxies = [\"10.0.0.1/8\"]");
    assert!(report.contains("CIDR"), "{report}");
}
