//! How fresh the middleware's view of Tessera is, for readiness probes and metrics.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Shared;

/// A cheap, cloneable view of the middleware's state. Put the service's readiness on
/// [`Health::is_ready`]: while it is false, requests with a credential are answered `503`.
#[derive(Debug, Clone)]
pub struct Health {
    shared: Arc<Shared>,
}

impl Health {
    pub(crate) fn new(shared: Arc<Shared>) -> Health {
        Health { shared }
    }

    /// How long ago the revocation set was last confirmed current (a snapshot answered, or
    /// the stream delivered bytes).
    pub fn staleness(&self) -> Duration {
        self.shared.freshness.staleness()
    }

    /// The bound past which the layer fails closed.
    pub fn max_staleness(&self) -> Duration {
        self.shared.options.max_staleness
    }

    /// True while the staleness is within the bound, i.e. credentials are being checked.
    pub fn is_ready(&self) -> bool {
        self.staleness() <= self.max_staleness()
    }

    /// Revoked sessions remembered now.
    pub fn revoked_sessions(&self) -> usize {
        self.shared.revocations.len()
    }

    /// The last revocation-feed sequence applied.
    pub fn feed_cursor(&self) -> u64 {
        self.shared.revocations.cursor()
    }

    /// Key-set fetches made since start, the first included.
    pub fn key_fetches(&self) -> u64 {
        self.shared.keys.fetches()
    }

    /// Verified tokens held in the cache (approximate between sweeps).
    pub fn cached_tokens(&self) -> usize {
        self.shared.verified.len()
    }

    /// Tessera's answers about session tokens held in the cache (approximate between
    /// sweeps); always 0 unless session credentials are accepted.
    pub fn cached_sessions(&self) -> usize {
        self.shared.sessions.len()
    }
}
