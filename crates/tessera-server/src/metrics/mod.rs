//! `GET /metrics`: what this instance has done, in the Prometheus text format.
//!
//! - this module: [`Metrics`], the series an instance counts, and the scrape (who may read it,
//!   and the values read from the engine at scrape time);
//! - `http`: the layer that counts every request by route and status, and times it;
//! - `stores`: the store wrappers that time every call by backend and count its failures.
//!
//! One [`prometheus::Registry`] per server instance, owned by its state, not a process-global
//! recorder: tests run several servers in one process, and each must count only its own
//! requests. The `prometheus` crate rather than `metrics-exporter-prometheus`: its histograms
//! are fixed atomic buckets, so an observation neither locks nor allocates, and an instance
//! nobody scrapes holds no growing buffer of observations.

mod http;
mod stores;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Summary};
use prometheus::{Encoder as _, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tessera_core::Engine;
use tessera_tokens::Tokens;

pub use http::{Measure, MeasureLayer, Measuring, tag_route};
pub(crate) use stores::{Backends, instrument};

use crate::Services;
use crate::auth::Carrier;
use crate::config::MetricsConfig;
use crate::problem::Problem;

/// The series one server instance counts, and who may read them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    http: http::HttpMetrics,
    stores: stores::StoreMetrics,
    /// By [`Transport`] and [`CheckOutcome`], created once so a check only adds to an atomic.
    session_checks: [[IntCounter; CheckOutcome::ALL.len()]; Transport::ALL.len()],
    exposure: Exposure,
}

/// Where `/metrics` is served.
#[derive(Debug)]
enum Exposure {
    /// Nowhere: `/metrics` is `404` like any unknown path.
    Off,
    /// On the main listener, to requests bearing the token (its SHA-256, compared in
    /// constant time).
    Bearer([u8; 32]),
    /// Only on `metrics.bind`, and there with the token if one is set.
    Separate(Option<[u8; 32]>),
}

/// How a session check's credential arrived, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Cookie,
    Bearer,
    Jwt,
    /// No credential, or one too malformed to tell.
    None,
}

impl Transport {
    const ALL: [Transport; 4] = [
        Transport::Cookie,
        Transport::Bearer,
        Transport::Jwt,
        Transport::None,
    ];

    fn label(self) -> &'static str {
        match self {
            Transport::Cookie => "cookie",
            Transport::Bearer => "bearer",
            Transport::Jwt => "jwt",
            Transport::None => "none",
        }
    }
}

/// How a session check ended, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The session is valid.
    Ok,
    /// No credential, or an unknown, malformed or revoked one.
    Unauthenticated,
    /// The session reached its idle or absolute expiry.
    Expired,
    /// A cookie-authenticated unsafe request without its CSRF proof.
    CsrfFailed,
    /// The store could not be reached; the check failed closed.
    StoreUnavailable,
    /// Anything else.
    Error,
}

impl CheckOutcome {
    const ALL: [CheckOutcome; 6] = [
        CheckOutcome::Ok,
        CheckOutcome::Unauthenticated,
        CheckOutcome::Expired,
        CheckOutcome::CsrfFailed,
        CheckOutcome::StoreUnavailable,
        CheckOutcome::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            CheckOutcome::Ok => "ok",
            CheckOutcome::Unauthenticated => "unauthenticated",
            CheckOutcome::Expired => "expired",
            CheckOutcome::CsrfFailed => "csrf_failed",
            CheckOutcome::StoreUnavailable => "store_unavailable",
            CheckOutcome::Error => "error",
        }
    }

    /// The outcome an engine error means.
    pub fn of(error: &tessera_core::Error) -> Self {
        match error {
            tessera_core::Error::Unauthenticated => CheckOutcome::Unauthenticated,
            tessera_core::Error::SessionExpired => CheckOutcome::Expired,
            tessera_core::Error::Store(_) => CheckOutcome::StoreUnavailable,
            _ => CheckOutcome::Error,
        }
    }
}

/// The metrics could not be set up (a series registered twice: a bug, caught by the tests).
#[derive(Debug, thiserror::Error)]
#[error("could not register the metrics")]
pub struct MetricsError(#[from] prometheus::Error);

impl Metrics {
    /// A fresh registry with every series of this instance, exposed as `config` says.
    pub fn new(config: &MetricsConfig) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let checks = IntCounterVec::new(
            Opts::new(
                "tessera_session_checks_total",
                "Session checks (every request that needs a session) by transport and outcome.",
            ),
            &["transport", "outcome"],
        )?;
        registry.register(Box::new(checks.clone()))?;
        let session_checks = Transport::ALL.map(|transport| {
            CheckOutcome::ALL
                .map(|outcome| checks.with_label_values(&[transport.label(), outcome.label()]))
        });
        let digest = |secret: &crate::config::Secret| -> [u8; 32] {
            Sha256::digest(secret.expose().as_bytes()).into()
        };
        let exposure = match (&config.bind, &config.bearer_token) {
            (Some(_), token) => Exposure::Separate(token.as_ref().map(digest)),
            (None, Some(token)) => Exposure::Bearer(digest(token)),
            (None, None) => Exposure::Off,
        };
        Ok(Metrics(Arc::new(Inner {
            http: http::HttpMetrics::register(&registry)?,
            stores: stores::StoreMetrics::register(&registry)?,
            registry,
            session_checks,
            exposure,
        })))
    }

    /// A [`MeasureLayer`] counting and timing every request into these metrics.
    pub fn layer(&self) -> MeasureLayer {
        MeasureLayer::new(self.clone())
    }

    /// Counts one session check. `carrier` is `None` when no credential could be told.
    pub fn session_checked(&self, carrier: Option<Carrier>, outcome: CheckOutcome) {
        let transport = match carrier {
            Some(Carrier::Cookie) => Transport::Cookie,
            Some(Carrier::Bearer) => Transport::Bearer,
            Some(Carrier::AccessToken) => Transport::Jwt,
            None => Transport::None,
        };
        // The arrays follow `ALL`, whose order is the enums' declaration order.
        self.0.session_checks[transport as usize][outcome as usize].inc();
    }

    /// Whether the main listener serves `/metrics` (to bearers of the token).
    pub fn on_main_listener(&self) -> bool {
        matches!(self.0.exposure, Exposure::Bearer(_))
    }

    /// Answers a scrape: the token checked if one is required, then every series as text.
    pub fn scrape(
        &self,
        headers: &HeaderMap,
        engine: &Engine,
        tokens: &Tokens,
    ) -> Result<Response, Problem> {
        let required = match &self.0.exposure {
            Exposure::Off => return Err(Problem::not_found("no such endpoint")),
            Exposure::Bearer(digest) => Some(digest),
            Exposure::Separate(digest) => digest.as_ref(),
        };
        if let Some(expected) = required {
            let presented = headers
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| Sha256::digest(token.trim().as_bytes()));
            let matches = presented.is_some_and(|digest| bool::from(digest.ct_eq(expected)));
            if !matches {
                return Err(Problem::unauthenticated(
                    "GET /metrics needs the metrics bearer token",
                ));
            }
        }
        let body = self.render(engine, tokens).map_err(|error| {
            tracing::error!(%error, "could not render the metrics");
            Problem::internal()
        })?;
        Ok(crate::body::response(
            StatusCode::OK,
            HeaderValue::from_static(prometheus::TEXT_FORMAT),
            body,
        ))
    }

    /// Every series as Prometheus text: the counted ones, then those read at scrape time.
    fn render(&self, engine: &Engine, tokens: &Tokens) -> Result<Vec<u8>, prometheus::Error> {
        let mut families = self.0.registry.gather();
        families.extend(read_at_scrape(engine, tokens));
        families.sort_by(|a, b| a.name().cmp(b.name()));
        let mut text = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&families, &mut text)?;
        Ok(text)
    }
}

/// Binds `address` and serves `GET /metrics` there (and `404` for anything else) until the
/// returned task is aborted.
pub(crate) async fn listen(
    address: SocketAddr,
    services: &Services,
) -> io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics");
    let Services {
        engine,
        tokens,
        metrics,
        ..
    } = services.clone();
    let scrape =
        move |headers: HeaderMap| async move { metrics.scrape(&headers, &engine, &tokens) };
    let router = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { Problem::not_found("no such endpoint") });
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    }))
}

/// The series the engine and the keys already keep, read now: counters kept as atomics in
/// the core (which has no metrics dependency) and gauges that cost nothing to compute.
fn read_at_scrape(engine: &Engine, tokens: &Tokens) -> Vec<MetricFamily> {
    let cache = engine.cache_lookups();
    let logins = engine.login_outcomes();
    let hashing = engine.hashing_load();
    let remembered = engine.remembered_revocations();
    let mut families = vec![
        family(
            "tessera_session_cache_lookups_total",
            "In-process session cache lookups by result (a miss reads the session store).",
            MetricType::COUNTER,
            vec![
                counter(cache.hits, &[("result", "hit")]),
                counter(cache.misses, &[("result", "miss")]),
            ],
        ),
        family(
            "tessera_session_cache_entries",
            "Sessions held in the in-process cache.",
            MetricType::GAUGE,
            vec![gauge(engine.cached_sessions() as f64)],
        ),
        family(
            "tessera_revocations_remembered",
            "Revoked sessions (kind=session) and users whose earlier tokens are refused \
             (kind=user) held in process, each until the revocation retention has passed.",
            MetricType::GAUGE,
            vec![
                gauge_with(remembered.sessions as f64, &[("kind", "session")]),
                gauge_with(remembered.users as f64, &[("kind", "user")]),
            ],
        ),
        family(
            "tessera_logins_total",
            "Login attempts by outcome.",
            MetricType::COUNTER,
            [
                ("ok", logins.ok),
                ("invalid_credentials", logins.invalid_credentials),
                ("rate_limited", logins.rate_limited),
                ("busy", logins.busy),
                ("failed", logins.failed),
            ]
            .into_iter()
            .map(|(outcome, count)| counter(count, &[("outcome", outcome)]))
            .collect(),
        ),
        family(
            "tessera_revocation_feed_age_seconds",
            "Time since the revocation log was last read successfully.",
            MetricType::GAUGE,
            vec![gauge(engine.revocation_feed_age().as_secs_f64())],
        ),
        family(
            "tessera_password_hash_running",
            "Password hashes computing now.",
            MetricType::GAUGE,
            vec![gauge(hashing.running as f64)],
        ),
        family(
            "tessera_password_hash_queued",
            "Password checks waiting for a hashing slot.",
            MetricType::GAUGE,
            vec![gauge(hashing.queued as f64)],
        ),
        family(
            "tessera_password_hash_wait_seconds",
            "Time password checks waited for a hashing slot.",
            MetricType::SUMMARY,
            vec![summary(hashing.slots_granted, hashing.total_wait)],
        ),
        family(
            "tessera_signing_keys_published",
            "Verification keys in the published JWKS.",
            MetricType::GAUGE,
            vec![gauge(published_keys(tokens) as f64)],
        ),
    ];
    if let Some(bound) = engine.config().revocation_max_staleness {
        families.push(family(
            "tessera_revocation_feed_max_staleness_seconds",
            "The feed age beyond which the cache is bypassed and /readyz fails.",
            MetricType::GAUGE,
            vec![gauge(bound.as_secs_f64())],
        ));
    }
    families
}

/// Keys in the JWKS exactly as `/.well-known/jwks.json` publishes it.
fn published_keys(tokens: &Tokens) -> usize {
    #[derive(serde::Deserialize)]
    struct Jwks {
        keys: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Jwks>(&tokens.jwks_json()).map_or(0, |jwks| jwks.keys.len())
}

fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

fn counter(value: u64, labels: &[(&str, &str)]) -> Metric {
    let mut counter = Counter::default();
    counter.set_value(value as f64);
    let mut metric = Metric::from_label(label_pairs(labels));
    metric.set_counter(counter);
    metric
}

fn gauge(value: f64) -> Metric {
    gauge_with(value, &[])
}

fn gauge_with(value: f64, labels: &[(&str, &str)]) -> Metric {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::from_label(label_pairs(labels));
    metric.set_gauge(gauge);
    metric
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

fn summary(count: u64, sum: Duration) -> Metric {
    let mut summary = Summary::default();
    summary.set_sample_count(count);
    summary.set_sample_sum(sum.as_secs_f64());
    let mut metric = Metric::default();
    metric.set_summary(summary);
    metric
}
