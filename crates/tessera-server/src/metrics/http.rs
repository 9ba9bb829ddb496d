//! Every request counted by route and status, and timed to its response head.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{self, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::Registry;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};
use tower::{Layer, Service};

use super::Metrics;
use crate::routes::SESSION_PATH;

/// The route label of a request no route matched: never the raw path, which a client
/// chooses and would make a new series of every probe.
const UNMATCHED: &str = "unmatched";

/// Request series, with the session check's handles made once: that route answers most
/// requests, and [`crate::app::Routes`] sends it past the router, so it carries no
/// [`MatchedPath`] and must not pay for a label lookup.
#[derive(Debug)]
pub(super) struct HttpMetrics {
    requests: IntCounterVec,
    durations: HistogramVec,
    session_ok: IntCounter,
    session_unauthorized: IntCounter,
    session_duration: Histogram,
}

impl HttpMetrics {
    pub(super) fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "tessera_http_requests_total",
                "HTTP requests by route template and status.",
            ),
            &["route", "status"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(
                "tessera_http_request_duration_seconds",
                "Time from a request's arrival to its response head, by route template.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(durations.clone()))?;
        Ok(HttpMetrics {
            session_ok: requests.with_label_values(&[SESSION_PATH, StatusCode::OK.as_str()]),
            session_unauthorized: requests
                .with_label_values(&[SESSION_PATH, StatusCode::UNAUTHORIZED.as_str()]),
            session_duration: durations.with_label_values(&[SESSION_PATH]),
            requests,
            durations,
        })
    }

    fn record<B>(&self, session_check: bool, response: &http::Response<B>, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let status = response.status();
        if session_check {
            self.session_duration.observe(seconds);
            match status {
                StatusCode::OK => self.session_ok.inc(),
                StatusCode::UNAUTHORIZED => self.session_unauthorized.inc(),
                other => self
                    .requests
                    .with_label_values(&[SESSION_PATH, other.as_str()])
                    .inc(),
            }
            return;
        }
        let route = response
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED, MatchedPath::as_str);
        self.requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.durations.with_label_values(&[route]).observe(seconds);
    }
}

/// Hands the route template the router matched to the response, for [`Measure`] outside
/// the router to label the request with (`Router::route_layer`, so only matched routes).
pub async fn tag_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Wraps a service in [`Measure`].
#[derive(Debug, Clone)]
pub struct MeasureLayer {
    metrics: Metrics,
}

impl MeasureLayer {
    pub(super) fn new(metrics: Metrics) -> Self {
        MeasureLayer { metrics }
    }
}

impl<S> Layer<S> for MeasureLayer {
    type Service = Measure<S>;

    fn layer(&self, inner: S) -> Measure<S> {
        Measure {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Counts and times every request `S` answers. Per request: a clock read at each end, a
/// reference count, and for the session check two atomic additions; other routes also look
/// their series up by label.
#[derive(Debug, Clone)]
pub struct Measure<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B> Service<Request> for Measure<S>
where
    S: Service<Request, Response = http::Response<B>>,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Measuring<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The same test `Routes` makes to send the request past the router.
        let session_check = request.method() == Method::GET && request.uri().path() == SESSION_PATH;
        Measuring {
            started: Instant::now(),
            inner: self.inner.call(request),
            metrics: self.metrics.clone(),
            session_check,
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Measure`]'s future: the inner one, recorded when it answers.
    #[derive(Debug)]
    pub struct Measuring<F> {
        #[pin]
        inner: F,
        metrics: Metrics,
        started: Instant,
        session_check: bool,
    }
}

impl<F, B, E> Future for Measuring<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            this.metrics
                .0
                .http
                .record(*this.session_check, response, *this.started);
        }
        Poll::Ready(result)
    }
}
