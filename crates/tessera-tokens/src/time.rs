//! The one conversion between the engine's time and JOSE's.
//!
//! The engine counts [`Timestamp`]s in milliseconds; JWTs (`exp`, `iat`, `nbf`) and so
//! `tessera-jose` and the key records count whole Unix seconds (RFC 7519 `NumericDate`).
//! `tessera-jose` stays free of Tessera's types so other services can verify with it alone,
//! so the conversion happens here, once.

use std::time::Duration;

use tessera_core::Timestamp;

/// Whole seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct UnixSeconds(i64);

impl UnixSeconds {
    /// The second `timestamp` falls in.
    pub(crate) fn of(timestamp: Timestamp) -> Self {
        UnixSeconds(timestamp.unix_seconds())
    }

    pub(crate) fn get(self) -> i64 {
        self.0
    }

    /// The instant a key record's Unix-seconds field names, saturating.
    pub(crate) fn timestamp(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(seconds.saturating_mul(1000))
    }

    /// A duration in whole seconds, saturating.
    pub(crate) fn of_duration(duration: Duration) -> i64 {
        i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
    }
}
