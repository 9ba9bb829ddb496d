//! Configuring the middleware: the issuer's URL and this service's audience, client
//! credentials for the revocation feed, and defaults for everything else.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tessera_jose::VerifierSettings;

use crate::auth::{Endpoints, Options, Shared, TesseraAuth};
use crate::error::StartError;
use crate::feed::{self, Freshness, Revocations};
use crate::fetch::{ClientCredentials, Tessera};
use crate::keys::Keys;
use crate::replay::{MemoryReplayGuard, ReplayGuard};
use crate::session::{Origin, SessionOptions};
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
    session_cookie: Option<String>,
    session_tokens: bool,
    session_cache_max_age: Duration,
    session_cache_capacity: usize,
    replay_guard: Option<Arc<dyn ReplayGuard>>,
    max_operation_token_lifetime: Duration,
}

/// RFC 8414 metadata, the members used here.
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    /// Tessera's extensions: where the revocation feed is. Derived from the issuer URL when
    /// a server does not name them.
    tessera_revocations_endpoint: Option<String>,
    tessera_revocation_stream_endpoint: Option<String>,
}

/// The longest a session token's introspection answer may be reused, whatever is configured:
/// well within any access-token lifetime, so the revocation feed still remembers a session
/// revoked while its answer is cached.
const SESSION_CACHE_MAX_AGE_CAP: Duration = Duration::from_secs(5 * 60);

impl TesseraAuthBuilder {
    pub(crate) fn new(issuer_url: String, audience: String) -> TesseraAuthBuilder {
        TesseraAuthBuilder {
            issuer_url,
            audience,
            credentials: None,
            leeway: VerifierSettings::DEFAULT_LEEWAY,
            max_staleness: Self::DEFAULT_MAX_STALENESS,
            poll_interval: Duration::from_secs(2),
            stream_idle_timeout: Duration::from_secs(40),
            jwks_refresh_interval: Duration::from_secs(60),
            jwks_min_refresh_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            verified_cache_capacity: 100_000,
            session_cookie: None,
            session_tokens: false,
            session_cache_max_age: Duration::from_secs(30),
            session_cache_capacity: 100_000,
            replay_guard: None,
            max_operation_token_lifetime: VerifierSettings::DEFAULT_MAX_TRANSACTION_LIFETIME,
        }
    }

    /// The default [`max_staleness`](Self::max_staleness) bound, `10s`.
    pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(10);

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
    /// current between stream events (Tessera's keep-alive comes every 5 s) and catches
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

    /// Also accepts the browser's session cookie `name` (Tessera's `session.cookie_name`,
    /// `__Host-tessera_session` by default), for a service routed behind Tessera's own
    /// origin (same host, by path) so the browser sends it the cookie. Each session token is
    /// introspected at Tessera once (RFC 7662, with the client credentials) and the answer
    /// cached (see [`session_cache_max_age`](Self::session_cache_max_age)); a logout reaches
    /// the service through the revocation feed like a JWT's. Unsafe methods (`POST`, `PUT`,
    /// `PATCH`, `DELETE`) carried by the cookie need what Tessera demands: the session's
    /// CSRF token in `X-CSRF-Token`, and a browser's `Origin`/`Sec-Fetch-Site` naming
    /// Tessera's origin; otherwise `403`. A bearer header, when present, wins over the cookie.
    /// Defaults to off: cookies are ignored.
    pub fn accept_session_cookie(mut self, name: impl Into<String>) -> Self {
        self.session_cookie = Some(name.into());
        self
    }

    /// Also accepts opaque session tokens in `Authorization: Bearer` (Tessera's bearer
    /// session transport: native apps, scripts), checked by introspection and cached like
    /// the cookie (no CSRF check: nothing ambient carries them).
    /// Defaults to off: a bearer credential must be a JWT.
    pub fn accept_session_tokens(mut self) -> Self {
        self.session_tokens = true;
        self
    }

    /// How long Tessera's answer about a session token is reused at most; never past the
    /// session's idle expiry as Tessera reported it, and capped at `5m` (a revocation is
    /// remembered by the feed for an access token's lifetime, so a cached answer must not
    /// outlive that). Each introspection also counts as the session's activity at Tessera.
    /// Defaults to `30s`.
    pub fn session_cache_max_age(mut self, max_age: Duration) -> Self {
        self.session_cache_max_age = max_age;
        self
    }

    /// Session-token answers remembered at most (by SHA-256); beyond it Tessera is asked on
    /// every request with a new token.
    /// Defaults to `100000`.
    pub fn session_cache_capacity(mut self, capacity: usize) -> Self {
        self.session_cache_capacity = capacity;
        self
    }

    /// Where the `jti` of every one-time operation token accepted by
    /// [`require_operation`](crate::require_operation) is recorded until the token expires.
    /// A service running several replicas needs one guard they share — `RedisReplayGuard`
    /// (cargo feature `redis`) — or a token could be used once per replica.
    /// Defaults to a [`MemoryReplayGuard`] of
    /// [`DEFAULT_CAPACITY`](MemoryReplayGuard::DEFAULT_CAPACITY) for this process alone.
    pub fn replay_guard(mut self, guard: impl ReplayGuard) -> Self {
        self.replay_guard = Some(Arc::new(guard));
        self
    }

    /// The longest lifetime (`exp - iat`) a one-time operation token may claim, plus the
    /// leeway; longer ones are refused. It bounds how long the replay guard remembers each
    /// token. Tessera issues them for `30s` by default.
    /// Defaults to `5m`.
    pub fn max_operation_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_operation_token_lifetime = lifetime;
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
        let accepts_sessions = self.session_cookie.is_some() || self.session_tokens;
        let session_options = if accepts_sessions {
            let introspection_endpoint = metadata
                .introspection_endpoint
                .ok_or(StartError::NoIntrospectionEndpoint)?;
            let max_age = self.session_cache_max_age.min(SESSION_CACHE_MAX_AGE_CAP);
            Some(SessionOptions {
                cookie_name: self.session_cookie,
                bearer_tokens: self.session_tokens,
                introspection_endpoint,
                origin: Origin::parse(base),
                max_age_seconds: i64::try_from(max_age.as_secs()).unwrap_or(0),
                audience: self.audience.clone(),
            })
        } else {
            None
        };
        let endpoints = Endpoints {
            revocations: metadata
                .tessera_revocations_endpoint
                .unwrap_or_else(|| format!("{base}/v1/revocations")),
            revocation_stream: metadata
                .tessera_revocation_stream_endpoint
                .unwrap_or_else(|| format!("{base}/v1/revocations/stream")),
        };
        let mut settings = VerifierSettings::new(metadata.issuer, vec![self.audience]);
        settings.leeway = self.leeway.min(VerifierSettings::MAX_LEEWAY);
        settings.max_transaction_lifetime = self.max_operation_token_lifetime;
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
            sessions: VerifiedCredentials::new(self.session_cache_capacity),
            replay_guard: self
                .replay_guard
                .unwrap_or_else(|| Arc::new(MemoryReplayGuard::default())),
            session_options,
            endpoints,
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
