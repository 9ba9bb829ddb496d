//! What an operator can set about the engine, and the defaults.

use std::time::Duration;

use super::TokenPolicy;
use crate::password::PasswordPolicy;
use crate::session::SessionPolicy;
use crate::throttle::ThrottleRule;

/// Everything about the engine's behaviour that an operator can set.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Session lifetimes.
    pub session: SessionPolicy,
    /// Rules for new passwords.
    pub password: PasswordPolicy,
    /// Failed logins allowed per account. Defaults to 10 in `15m`.
    pub account_throttle: ThrottleRule,
    /// Failed logins allowed per client address (IPv6: per /64). Defaults to 100 in `15m`.
    pub address_throttle: ThrottleRule,
    /// How recently the password must have been proven (a session's `auth_time`: login or
    /// re-authentication) for a sensitive action — password change, account deletion,
    /// logging out sessions in bulk. Defaults to `10m`.
    pub reauthentication_window: Duration,
    /// Sessions kept in the in-process cache; `0` turns the cache off. Defaults to `100000`.
    pub cache_capacity: usize,
    /// How long revocation-log entries are kept for verifiers to catch up. Defaults to `1h`.
    pub revocation_retention: Duration,
    /// Access- and refresh-token lifetimes for the token transport.
    pub tokens: TokenPolicy,
    /// How old the last successful read of the revocation log may be before cached sessions
    /// and access tokens stop being trusted: every check then goes to the store, and fails
    /// with `503` if the store is down. `None` trusts the cache however old the feed is (for
    /// embedders that never call [`Engine::sync_revocations`]). Defaults to `None`.
    pub revocation_max_staleness: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            session: SessionPolicy::default(),
            password: PasswordPolicy::default(),
            account_throttle: ThrottleRule {
                max_failures: 10,
                window: Duration::from_secs(15 * 60),
            },
            address_throttle: ThrottleRule {
                max_failures: 100,
                window: Duration::from_secs(15 * 60),
            },
            reauthentication_window: Duration::from_secs(10 * 60),
            cache_capacity: 100_000,
            revocation_retention: Duration::from_secs(60 * 60),
            tokens: TokenPolicy::default(),
            revocation_max_staleness: None,
        }
    }
}
