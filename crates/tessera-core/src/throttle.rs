//! Login throttling: how many failed logins an account or a client address may have.
//!
//! The [`LoginThrottle`] trait lets the counters live in whatever store the deployment
//! shares, so limits hold across instances.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::store::StoreError;
use crate::time::Timestamp;

/// What a failure counter is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// An account, by username key (whether or not the account exists, so probing unknown
    /// names is throttled the same way).
    Account(String),
    /// A client address: an IPv4 address, or the /64 network of an IPv6 address (one host
    /// usually holds a whole /64).
    Address(String),
}

impl ThrottleKey {
    /// The key for a client address, IPv6 folded to its /64.
    pub fn for_address(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ThrottleKey::Address(v4.to_string()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ThrottleKey::Address(v4.to_string()),
                None => {
                    let s = v6.segments();
                    ThrottleKey::Address(format!(
                        "{:x}:{:x}:{:x}:{:x}::/64",
                        s[0], s[1], s[2], s[3]
                    ))
                }
            },
        }
    }

    /// A flat string form, for stores that key by string.
    pub fn storage_key(&self) -> String {
        match self {
            ThrottleKey::Account(name) => format!("account:{name}"),
            ThrottleKey::Address(address) => format!("address:{address}"),
        }
    }
}

/// A limit: at most `max_failures` within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures allowed before further attempts are refused.
    pub max_failures: u32,
    /// How long failures are counted for, from the first one.
    pub window: Duration,
}

/// Failure counters with a fixed window that opens at the first failure.
///
/// Once `max_failures` failures are counted, attempts are refused (even with the right
/// password) until the window that began at the first of them closes.
#[async_trait]
pub trait LoginThrottle: Send + Sync + fmt::Debug + 'static {
    /// How long `key` must wait before another attempt, or `None` if it may try now.
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError>;

    /// Counts one failure for `key`, atomically.
    async fn record_failure(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Forgets `key`'s failures (after a successful login).
    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_fold_to_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ThrottleKey::for_address(a), ThrottleKey::for_address(b));
        assert_ne!(ThrottleKey::for_address(a), ThrottleKey::for_address(c));
        assert_eq!(
            ThrottleKey::for_address(a),
            ThrottleKey::Address("2001:db8:1:2::/64".into())
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            ThrottleKey::for_address(v4),
            ThrottleKey::Address("192.0.2.7".into())
        );
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            ThrottleKey::for_address(mapped),
            ThrottleKey::Address("192.0.2.7".into())
        );
    }

    #[test]
    fn storage_keys_keep_accounts_and_addresses_apart() {
        // A stored counter is found again under exactly this key, by every backend and
        // every version: an account named like an address must not share its counter.
        assert_eq!(
            ThrottleKey::Account("192.0.2.7".into()).storage_key(),
            "account:192.0.2.7"
        );
        assert_eq!(
            ThrottleKey::Address("192.0.2.7".into()).storage_key(),
            "address:192.0.2.7"
        );
    }
}
