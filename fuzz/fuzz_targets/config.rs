//! The configuration loader: TOML text into `Config::from_toml_str`, the same parse and
//! checks as `Config::load` on a file, then what `tessera serve` derives from a loaded
//! configuration. A loaded configuration's `Debug` (what a log might print) must not show
//! its secrets.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_fuzz::seeds;
use tessera_server::Config;

fuzz_target!(
    init: { seeds::write_if_asked(make_seeds); },
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let Ok(config) = Config::from_toml_str(text) else { return };
        let _ = config.check_serving();
        let _ = config.issuer();
        let _ = config.has_shared_store();
        let _ = tessera_server::engine_config(&config);
        let debug = format!("{config:?}");
        for secret in [&config.token.hs256_secret, &config.metrics.bearer_token]
            .into_iter()
            .flatten()
        {
            let secret = secret.expose();
            // A secret of a few bytes can occur in the rest of the text by chance; the
            // loader refuses secrets under 32 bytes anyway.
            if secret.len() >= 16 {
                assert!(!debug.contains(secret), "a configured secret in Debug");
            }
        }
    }
);

/// The configurations of the loader's tests (`crates/tessera-server/src/config/tests.rs`);
/// `bench/fuzz.sh` adds every `toml` block of the documentation.
fn make_seeds() -> Vec<Vec<u8>> {
    let secret = "x".repeat(32);
    seeds::texts([
        "",
        "[session]\nidle_timeout = \"5m\"\nabsolute_timeout = \"2h\"\n[ratelimit]\naccount_failures = 3\n[sessions]\nstore = \"memory\"\n",
        "session.cookie_name = \"tessera\"",
        "[server]\nbody_timeout = \"0s\"",
        "[server]\nheader_timeout = \"0s\"",
        "[server]\nmax_connections = 0",
        "database.url = \"mysql://x\"",
        "database.url = \"postgres://tessera:pw@db/tessera\"",
        "server.public_url = \"https://auth.example.com/path\"",
        "token.leeway = \"301s\"",
        "token.algorithm = \"none\"",
        "token.algorithm = \"hs256\"",
        "token.algorithm = \"HS256\"",
        "token.algorithm = \"HS256\"\ntoken.hs256_secret = \"too short\"",
        &format!("token.hs256_secret = \"{secret}\""),
        &format!("token.algorithm = \"HS256\"\ntoken.hs256_secret = \"{secret}\""),
        &format!("[metrics]\nbind = \"127.0.0.1:9100\"\nbearer_token = \"{secret}\""),
        "sessions.store = \"sql\"",
        "log.format = \"xml\"",
        "server.public_url = \"https://a.example/login\"",
        "server.allowed_origins = [\"https://a.example\", \"app.example\"]",
        "[server]\npublic_url = \"https://Auth.Example.com\"\nallowed_origins = [\"https://app.example.com:8443\"]\n[sessions]\nstore = \"redis://127.0.0.1:6379/1\"\n[log]\nformat = \"json\"\n",
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.1\"]\ncors_origins = [\"https://app.example\"]\n",
        "[server]\nmax_body_bytes = 1024\nmax_header_bytes = 8192\n[auth]\npassword_min_length = 8\npassword_max_bytes = 8\nargon2_memory_kib = 19456\n",
        "[session]\nidle_timeout = \"30m\"\nabsolute_timeout = \"12h\"\ntouch_interval = \"31m\"\n",
        "[token]\naccess_ttl = \"5m\"\nrefresh_ttl = \"30d\"\naudiences = [\"\"]\n",
        "[ratelimit]\nwindow = \"0s\"\naccount_failures = 0\n",
        "[danger]\ninsecure_cookies = true\n[session]\ncookie_name = \"x y\"\n",
    ])
}
