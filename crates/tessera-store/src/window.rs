//! The fixed-window rule every [`LoginThrottle`](tessera_core::LoginThrottle) backend applies,
//! written once so they cannot drift apart.

use std::time::Duration;

use tessera_core::{ThrottleRule, Timestamp};

/// How long a key with `failures` counted in a window opened at `opened_at` must wait, or
/// `None` if it may try now.
pub(crate) fn blocked_for(
    failures: u32,
    opened_at: Timestamp,
    rule: ThrottleRule,
    now: Timestamp,
) -> Option<Duration> {
    let closes_at = opened_at.saturating_add(rule.window);
    (failures >= rule.max_failures && now < closes_at).then(|| closes_at.duration_since(now))
}

/// Whether a failure at `now` still counts towards the window opened at `opened_at`, rather
/// than opening a new one.
pub(crate) fn is_open(opened_at: Timestamp, rule: ThrottleRule, now: Timestamp) -> bool {
    now < opened_at.saturating_add(rule.window)
}
