//! The issuer's verification keys: fetched at start, refreshed on a schedule and when a token
//! names an unknown `kid` — one fetch at a time, and at most one per `min_interval`, so a
//! flood of made-up `kid`s costs Tessera a few fetches, not one per request.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tessera_jose::{Jwks, Verifier, VerifierSettings};

use crate::error::FetchError;
use crate::fetch::Tessera;

#[derive(Debug)]
pub(crate) struct Keys {
    verifier: ArcSwap<Verifier>,
    settings: VerifierSettings,
    jwks_uri: String,
    min_interval: Duration,
    origin: Instant,
    /// When the last fetch started, in milliseconds since `origin`; `u64::MAX` = never.
    last_attempt_ms: AtomicU64,
    in_flight: AtomicBool,
    /// The kids of the current verifier; held across a fetch so only one runs at a time.
    kids: tokio::sync::Mutex<BTreeSet<String>>,
    /// Fetches made, for [`Health`](crate::Health).
    fetches: AtomicU64,
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refreshed {
    /// A fetch ran within `min_interval`; this one was skipped.
    Skipped,
    /// The key set was fetched; `removed` says whether a key disappeared.
    Fetched { removed: bool },
}

impl Keys {
    /// Fetches the key set once; fails when it cannot be fetched or holds an unusable key.
    pub(crate) async fn fetch_initial(
        tessera: &Tessera,
        jwks_uri: String,
        settings: VerifierSettings,
        min_interval: Duration,
    ) -> Result<Keys, FetchError> {
        let (verifier, kids) = load(tessera, &jwks_uri, &settings).await?;
        Ok(Keys {
            verifier: ArcSwap::from_pointee(verifier),
            settings,
            jwks_uri,
            min_interval,
            origin: Instant::now(),
            last_attempt_ms: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            kids: tokio::sync::Mutex::new(kids),
            fetches: AtomicU64::new(1),
        })
    }

    /// The verifier for the keys fetched last.
    pub(crate) fn verifier(&self) -> arc_swap::Guard<Arc<Verifier>> {
        self.verifier.load()
    }

    /// Whether a token naming an unknown `kid` should wait for a fetch: one is running now,
    /// or none ran within `min_interval`. Otherwise the kid is simply unknown.
    pub(crate) fn worth_waiting_for(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) || self.since_last_attempt() >= self.min_interval
    }

    /// Key-set fetches made since start, the first included.
    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Fetches the key set unless a fetch started within `min_interval` (callers that waited
    /// for a running fetch then see its result). Keeps the old keys when the new set fails.
    pub(crate) async fn refresh(&self, tessera: &Tessera) -> Result<Refreshed, FetchError> {
        let mut kids = self.kids.lock().await;
        if self.since_last_attempt() < self.min_interval {
            return Ok(Refreshed::Skipped);
        }
        self.in_flight.store(true, Ordering::Release);
        self.last_attempt_ms
            .store(self.millis_since_origin(), Ordering::Release);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let loaded = load(tessera, &self.jwks_uri, &self.settings).await;
        self.in_flight.store(false, Ordering::Release);
        let (verifier, fetched) = loaded?;
        let removed = !kids.is_subset(&fetched);
        self.verifier.store(Arc::new(verifier));
        *kids = fetched;
        Ok(Refreshed::Fetched { removed })
    }

    fn since_last_attempt(&self) -> Duration {
        let last = self.last_attempt_ms.load(Ordering::Acquire);
        Duration::from_millis(self.millis_since_origin().saturating_sub(last))
    }

    fn millis_since_origin(&self) -> u64 {
        // Milliseconds since start fit u64 for 584 million years; a wrap would be a skipped refresh.
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

async fn load(
    tessera: &Tessera,
    jwks_uri: &str,
    settings: &VerifierSettings,
) -> Result<(Verifier, BTreeSet<String>), FetchError> {
    let body = tessera.bytes(jwks_uri, false).await?;
    let jwks = Jwks::from_json(&body)?;
    let kids = jwks.keys.iter().filter_map(|key| key.kid.clone()).collect();
    Ok((Verifier::from_jwks(&jwks, settings.clone())?, kids))
}
