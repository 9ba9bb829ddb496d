//! [`MemoryThrottle`]: failed-login counters in a hash map.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::{LoginThrottle, StoreError, ThrottleKey, ThrottleRule, Timestamp};

use super::{read, write};
use crate::window;

/// Failed-login counters in memory, each with a fixed window that opens at its first failure.
///
/// Counters are per process: behind a load balancer each instance counts on its own, so use a
/// shared store there. Keys whose window has closed are pruned as new ones arrive, so memory
/// stays proportional to the keys with failures in the current window.
#[derive(Debug, Default)]
pub struct MemoryThrottle {
    state: RwLock<Counters>,
}

impl MemoryThrottle {
    /// No failures counted.
    pub fn new() -> Self {
        MemoryThrottle::default()
    }
}

/// Fewest keys at which pruning starts; below this a sweep is not worth its time.
const PRUNE_FLOOR: usize = 1024;

#[derive(Debug, Default)]
struct Counters {
    windows: HashMap<ThrottleKey, Window>,
    /// Prune once the map grows past this; set to twice the size left after each prune, so
    /// sweeps cost amortized O(1) per failure and memory stays within twice the live keys.
    prune_at: usize,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    opened_at: Timestamp,
    /// When the window closes under the rule it was opened with; decides pruning.
    closes_at: Timestamp,
}

#[async_trait]
impl LoginThrottle for MemoryThrottle {
    async fn blocked_for(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        Ok(read(&self.state)?
            .windows
            .get(key)
            .and_then(|window| window::blocked_for(window.failures, window.opened_at, rule, now)))
    }

    async fn record_failure(
        &self,
        key: &ThrottleKey,
        rule: ThrottleRule,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut counters = write(&self.state)?;
        let fresh = Window {
            failures: 1,
            opened_at: now,
            closes_at: now.saturating_add(rule.window),
        };
        match counters.windows.get_mut(key) {
            Some(window) if window::is_open(window.opened_at, rule, now) => {
                window.failures = window.failures.saturating_add(1);
            }
            Some(window) => *window = fresh,
            None => {
                counters.windows.insert(key.clone(), fresh);
                if counters.windows.len() > counters.prune_at.max(PRUNE_FLOOR) {
                    counters.windows.retain(|_, window| now < window.closes_at);
                    counters.prune_at = counters.windows.len() * 2;
                }
            }
        }
        Ok(())
    }

    async fn reset(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        write(&self.state)?.windows.remove(key);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_windows_are_pruned_as_new_keys_arrive() {
        let throttle = MemoryThrottle::new();
        let rule = ThrottleRule {
            max_failures: 3,
            window: Duration::from_secs(60),
        };
        let start = Timestamp::from_unix_millis(1_700_000_000_000);
        for n in 0..PRUNE_FLOOR {
            let key = ThrottleKey::Account(format!("old{n}"));
            throttle.record_failure(&key, rule, start).await.unwrap();
        }
        let later = start.saturating_add(Duration::from_secs(61));
        for n in 0..10 {
            let key = ThrottleKey::Account(format!("new{n}"));
            throttle.record_failure(&key, rule, later).await.unwrap();
        }
        let counters = throttle.state.read().unwrap();
        assert_eq!(counters.windows.len(), 10, "closed windows were kept");
    }
}
