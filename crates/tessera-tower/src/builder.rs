//! Configuring the middleware: the issuer's URL and this service's audience, client
//! credentials for the revocation feed, and defaults for everything else.

use std::time::Duration;

use serde::Deserialize;
use tessera_jose::VerifierSettings;

use crate::auth::{Endpoints, Options, Shared, TesseraAuth};
use crate::error::StartError;
use crate::feed::{self, Freshness, Revocations};
use crate::fetch::{ClientCredentials, Tessera};
use crate::keys::Keys;
use crate::verified::VerifiedCredentials;

/// Configures and starts [`TesseraAuth`]. Made by [`TesseraAuth::builder`].
#[derive(Debug, Clone)]
#[must_use = "call .build().await to start the middleware"]
pub struct TesseraAuthBuilder {
    issuer_url: String,
    audience: String,
    credentials: Option<ClientCredentials>,
    leeway: Duration,
    max_staleness: Duration,
    poll_interval: Duration,
    stream_idle_timeout: Duration,
    jwks_refresh_interval: Duration,
    jwks_min_refresh_interval: Duration,
    request_timeout: Duration,
    verified_cache_capacity: usize,
}

/// RFC 8414 metadata, the members used here.
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

impl TesseraAuthBuilder {
    pub(crate) fn new(issuer_url: String, audience: String) -> TesseraAuthBuilder {
        TesseraAuthBuilder {
            issuer_url,
            audience,
            credentials: None,
            leeway: VerifierSettings::DEFAULT_LEEWAY,
            max_staleness: Duration::from_secs(10),
            poll_interval: Duration::from_secs(2),
            stream_idle_timeout: Duration::from_secs(40),
            jwks_refresh_interval: Duration::from_secs(60),
            jwks_min_refresh_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            verified_cache_capacity: 100_000,
        }
    }

    /// This service's client id and secret at Tessera (`tessera client add NAME`), sent with
    /// HTTP Basic to read the revocation feed.
    /// Required: there is no default, and [`build`](Self::build) fails without them.
    pub fn client_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some(ClientCredentials {
            id: id.into(),
            secret: secret.into(),
        });
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`; capped at `5m`.
    /// Defaults to `30s`, as on Tessera.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How stale the revocation set may get before requests with a credential are answered
    /// `503` with `Retry-After` (fail closed); the layer recovers by itself once the feed
    /// answers again.
    /// Defaults to `10s`.
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound;
        self
    }

    /// How often a revocation snapshot is read besides the stream: it confirms the set is
    /// current between stream events (Tessera's keep-alive comes every 15 s) and catches
    /// anything a broken stream missed. Keep it well below `max_staleness`.
    /// Defaults to `2s`.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// A stream that delivers no bytes (not even a keep-alive) for this long is dropped and
    /// reconnected.
    /// Defaults to `40s`.
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    /// How often the key set is fetched on schedule (Tessera publishes a new key well before
    /// it signs with it).
    /// Defaults to `60s`, Tessera's `Cache-Control: max-age` for the key set.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh_interval = interval;
        self
    }

    /// A token naming an unknown `kid` triggers a fetch of the key set at most this often;
    /// other such tokens in between are refused without one.
    /// Defaults to `5s`.
    pub fn jwks_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_min_refresh_interval = interval;
        self
    }

    /// Timeout of each request to Tessera (discovery, key set, snapshot; the stream's
    /// connection).
    /// Defaults to `5s`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Verified tokens remembered at most (by SHA-256, until they expire); beyond it new ones
    /// are verified on every request.
    /// Defaults to `100000`.
    pub fn verified_cache_capacity(mut self, capacity: usize) -> Self {
        self.verified_cache_capacity = capacity;
        self
    }

    /// Discovers Tessera's endpoints from `/.well-known/oauth-authorization-server`, fetches
    /// the key set and a first revocation snapshot, and starts the tasks that keep both
    /// fresh. Needs a Tokio runtime. Fails rather than start without any of them.
    pub async fn build(self) -> Result<TesseraAuth, StartError> {
        let credentials = self
            .credentials
            .ok_or(StartError::MissingClientCredentials)?;
        if self.audience.is_empty() {
            return Err(StartError::EmptyAudience);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.request_timeout)
            .build()
            .map_err(StartError::HttpClient)?;
        let tessera = Tessera {
            http,
            timeout: self.request_timeout,
            credentials,
        };
        let base = self.issuer_url.trim_end_matches('/');
        let metadata: Metadata = tessera
            .json(
                &format!("{base}/.well-known/oauth-authorization-server"),
                false,
            )
            .await?;
        if metadata.issuer.trim_end_matches('/') != base {
            return Err(StartError::IssuerMismatch {
                found: metadata.issuer,
            });
        }
        let mut settings = VerifierSettings::new(metadata.issuer, vec![self.audience]);
        settings.leeway = self.leeway.min(VerifierSettings::MAX_LEEWAY);
        let leeway_seconds = i64::try_from(settings.leeway.as_secs()).unwrap_or(0);
        let keys = Keys::fetch_initial(
            &tessera,
            metadata.jwks_uri,
            settings,
            self.jwks_min_refresh_interval,
        )
        .await?;
        let shared = Shared {
            tessera,
            keys,
            revocations: Revocations::default(),
            freshness: Freshness::new(),
            verified: VerifiedCredentials::new(self.verified_cache_capacity),
            endpoints: Endpoints {
                revocations: format!("{base}/v1/revocations"),
                revocation_stream: format!("{base}/v1/revocations/stream"),
            },
            options: Options {
                max_staleness: self.max_staleness,
                poll_interval: self.poll_interval,
                stream_idle_timeout: self.stream_idle_timeout,
                jwks_refresh_interval: self.jwks_refresh_interval,
                leeway_seconds,
            },
        };
        feed::snapshot(&shared).await?;
        Ok(TesseraAuth::start(shared))
    }
}
