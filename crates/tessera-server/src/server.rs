//! The accept loop. It takes its listener and shutdown signal as arguments, so tests bind
//! `127.0.0.1:0` and run the real server in-process.

mod connections;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use std::any::Any;

use axum::body::{Body, Bytes};
use axum::http::header::{Entry, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use http_body_util::Either;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::ServiceExt as _;
use tower::util::MapResponse;
use tower_http::catch_panic::{CatchPanic, CatchPanicLayer, ResponseForPanic};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::app::Routes;
use crate::body::{SECURITY_HEADERS, starts_with_security_headers};
use crate::csrf::Origin;
use crate::extract::{PEER, too_large};
use crate::metrics::Measure;
use crate::problem::Problem;
use crate::{Config, Services, jobs};
use connections::{AcceptBackoff, Connection, Connections, DeadlineBody, request_timeout};

/// The application: routes and state, wrapped in the layers every response passes through.
///
/// The layers wrap the router from outside, composed statically: `Router::layer` would box
/// and clone every route once per layer per request, which costs more than the session check.
///
/// [`Measure`] is outermost, so a panic answered `500` is counted too.
pub type App = Measure<
    CatchPanic<
        MapResponse<tower::util::Either<Cors<Routes>, Routes>, fn(Response) -> Response>,
        AnswerPanic,
    >,
>;

/// Builds the [`App`] for `config` over the engine and tokens.
pub fn app(config: &Config, services: Services) -> App {
    let measure = services.metrics.layer();
    let https = config
        .server
        .public_url
        .as_ref()
        .is_some_and(|url| url.origin().is_https());
    let headers: fn(Response) -> Response = if https {
        security_headers_with_hsts
    } else {
        security_headers
    };
    ServiceBuilder::new()
        .layer(measure)
        .layer(CatchPanicLayer::custom(AnswerPanic))
        .map_response(headers)
        .option_layer(cors(&config.server.cors_origins))
        .service(Routes::new(crate::state::build(config, services)))
}

/// CORS for `server.cors_origins`, or none (no CORS headers at all) when it is empty.
///
/// Never credentials mode: a listed origin's page can send a bearer token it holds, but the
/// browser sends no cookie cross-origin, so the cookie transport stays same-site.
fn cors(origins: &[Origin]) -> Option<CorsLayer> {
    use axum::http::Method;
    use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};

    if origins.is_empty() {
        return None;
    }
    let origins = origins.to_vec();
    // Compared as parsed origins, so `https://a.example` matches a configured
    // `https://a.example:443`.
    let listed = AllowOrigin::predicate(move |origin, _| {
        origin
            .to_str()
            .ok()
            .and_then(Origin::parse)
            .is_some_and(|origin| origins.contains(&origin))
    });
    Some(
        CorsLayer::new()
            .allow_origin(listed)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([AUTHORIZATION, CONTENT_TYPE])
            .max_age(CORS_MAX_AGE),
    )
}

/// How long a browser may reuse a preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Turns a handler panic into a `500` problem; the process and the connection live on.
#[derive(Debug, Clone, Copy)]
pub struct AnswerPanic;

impl ResponseForPanic for AnswerPanic {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, _: Box<dyn Any + Send + 'static>) -> Response {
        tracing::error!("a request handler panicked");
        Problem::internal().into_response()
    }
}

/// API responses carry session data: never cached, never framed, never sniffed. A response
/// that set its own value keeps it.
///
/// Responses built by [`crate::body::response`] already start with the five, so they pass
/// with one comparison; any other response gets each one it lacks.
fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if starts_with_security_headers(headers) {
        return response;
    }
    headers.reserve(SECURITY_HEADERS.len());
    for (name, value) in SECURITY_HEADERS {
        if let Entry::Vacant(slot) = headers.entry(name) {
            slot.insert(HeaderValue::from_static(value));
        }
    }
    response
}

/// Browsers that reached Tessera over HTTPS once keep to HTTPS for a year, so a network
/// attacker cannot strip TLS from a later visit. Only sent when `server.public_url` is
/// `https` (behind a TLS-terminating proxy): over plain HTTP it would be ignored or wrong. No
/// `includeSubDomains`: the operator's other hosts are not Tessera's to decide.
fn security_headers_with_hsts(response: Response) -> Response {
    let mut response = security_headers(response);
    if let Entry::Vacant(slot) = response.headers_mut().entry(STRICT_TRANSPORT_SECURITY) {
        slot.insert(HeaderValue::from_static("max-age=31536000"));
    }
    response
}

/// Serves the API on `listener` until `shutdown` completes, then lets requests in flight
/// finish for up to `server.shutdown_grace`. Background maintenance (picking up revocations
/// made by other processes, purging ended sessions) runs alongside.
pub async fn serve(
    listener: TcpListener,
    config: &Config,
    services: Services,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let maintenance = tokio::spawn(jobs::maintain(
        services.clone(),
        config.sessions.purge_interval,
        config.token.key_reload,
        config.audit.retention,
    ));
    let follower = tokio::spawn(jobs::follow_revocations(
        services.clone(),
        config.sessions.revocation_poll,
    ));
    let metrics_listener = match config.metrics.bind {
        Some(address) => Some(crate::metrics::listen(address, &services).await?),
        None => None,
    };
    let app = app(config, services);
    let mut builder = http1::Builder::new();
    // hyper starts the header timer on each read of a request head, the wait for the next
    // request on a keep-alive connection included, so it also bounds idle connections.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_timeout)
        .max_buf_size(config.server.max_header_bytes.max(8192))
        .max_headers(100);
    let limits = Limits {
        max_body_bytes: u64::try_from(config.server.max_body_bytes).unwrap_or(u64::MAX),
        body_timeout: config.server.body_timeout,
    };
    // Raises the open-file limit even when the cap is configured.
    let safe_cap = connections::default_cap(config.database.max_connections);
    let cap = config.server.max_connections.unwrap_or(safe_cap);
    if cap > safe_cap {
        tracing::warn!(
            max_connections = cap,
            suggested = safe_cap,
            "server.max_connections leaves too few descriptors under the open-file limit \
             for the stores and logs"
        );
    }
    let connections = Connections::new(cap);
    let mut backoff = AcceptBackoff::new();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(address = %listener.local_addr()?, max_connections = cap, "listening");
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(connection) => {
                backoff.succeeded();
                connection
            }
            Err(error) => {
                // Out of descriptors and the like: pause, or the loop spins on the error.
                let pause = backoff.failed(&error);
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        // Always accept, even at the cap: a connection left in the listen backlog would
        // be served after every attacker queued before it, and once the backlog overflows
        // the kernel drops SYNs that clients retry only after 1 s, 3 s, 7 s. Accepting keeps
        // the backlog empty, so a prober is either served (a slow connection makes room) or
        // refused at once, and the first connection after a flood is answered at once.
        let Some(admitted) = connections.admit() else {
            tracing::debug!(%peer, "connection cap reached with every connection busy; closing");
            continue;
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        let connection = Arc::clone(&admitted.connection);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            respond(app.clone(), Arc::clone(&connection), limits, request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(PEER.scope(peer, async move {
            tokio::select! {
                result = connection => if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                },
                () = admitted.connection.shed() => {
                    tracing::debug!("connection shed to make room for a newer one");
                }
            }
            drop(admitted);
        }));
    }
    drop(listener);
    tracing::info!("shutting down");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.server.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; dropping connections still open");
        }
    }
    maintenance.abort();
    follower.abort();
    if let Some(metrics_listener) = metrics_listener {
        metrics_listener.abort();
    }
    Ok(())
}

/// The body of the [`App`]'s responses.
type AppBody = tower_http::body::UnsyncBoxBody<Bytes, axum::BoxError>;

/// What the connection layer enforces on every request before the application sees it.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_body_bytes: u64,
    body_timeout: Duration,
}

/// Answers one request: refuses a declared body over the limit before reading any of it
/// (so no `100 Continue` is sent), and gives a body `limits.body_timeout` to arrive.
async fn respond(
    app: App,
    connection: Arc<Connection>,
    limits: Limits,
    request: Request<Incoming>,
) -> Result<Response<Either<AppBody, Body>>, Infallible> {
    let body = request.body();
    if body.size_hint().lower() > limits.max_body_bytes {
        return Ok(too_large().into_response().map(Either::Right));
    }
    // Requests without a body (most) take no timer.
    let has_body = !body.is_end_stream();
    connection.start_request(has_body);
    let request = if has_body {
        let connection = Arc::clone(&connection);
        request.map(|body| Body::new(DeadlineBody::new(body, limits.body_timeout, connection)))
    } else {
        request.map(Body::new)
    };
    let Ok(response) = app.oneshot(request).await;
    // The handler saw a failed read and answered for it; the client gets the reason.
    if connection.finish_request() {
        return Ok(request_timeout().into_response().map(Either::Right));
    }
    Ok(response.map(Either::Left))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::http::header::{
        CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, SET_COOKIE,
        X_FRAME_OPTIONS,
    };

    use super::*;
    use crate::body::{json, response};

    fn values<'a>(response: &'a Response, name: &str) -> Vec<&'a str> {
        response
            .headers()
            .get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect()
    }

    #[test]
    fn every_response_gets_the_five_and_keeps_its_own_headers() {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.append(SET_COOKIE, HeaderValue::from_static("a=1"));
        headers.append(SET_COOKIE, HeaderValue::from_static("b=2"));
        headers.append(SET_COOKIE, HeaderValue::from_static("c=3"));
        headers.insert("x-custom", HeaderValue::from_static("kept"));

        let response = security_headers(response);
        assert_eq!(values(&response, "content-type"), ["application/json"]);
        assert_eq!(values(&response, "set-cookie"), ["a=1", "b=2", "c=3"]);
        assert_eq!(values(&response, "x-custom"), ["kept"]);
        assert_eq!(values(&response, "cache-control"), ["no-store"]);
        assert_eq!(values(&response, "x-content-type-options"), ["nosniff"]);
        assert_eq!(values(&response, "x-frame-options"), ["DENY"]);
        assert_eq!(values(&response, "referrer-policy"), ["no-referrer"]);
        assert_eq!(
            values(&response, "content-security-policy"),
            ["default-src 'none'; frame-ancestors 'none'"]
        );
        assert_eq!(response.headers().len(), 10);
    }

    #[test]
    fn a_response_that_set_a_security_header_keeps_its_values() {
        let mut response = Response::new(Body::empty());
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
        headers.append(CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );

        let response = security_headers(response);
        assert_eq!(
            values(&response, "cache-control"),
            ["private", "max-age=60"]
        );
        assert_eq!(
            values(&response, "content-security-policy"),
            ["default-src 'self'"]
        );
        assert_eq!(values(&response, "x-frame-options"), ["DENY"]);
        assert_eq!(response.headers().len(), 6);
    }

    fn assert_defaults_except(response: &Response, except: &[&str]) {
        for (name, value) in SECURITY_HEADERS {
            if !except.contains(&name.as_str()) {
                assert_eq!(values(response, name.as_str()), [value], "{name}");
            }
        }
    }

    #[test]
    fn responses_built_with_the_headers_in_place_pass_unchanged() {
        let built = json(StatusCode::OK, b"{}".to_vec());
        assert!(starts_with_security_headers(built.headers()));
        let before = built.headers().clone();
        let passed = security_headers(built);
        assert_eq!(passed.headers(), &before);
        assert_eq!(values(&passed, "content-type"), ["application/json"]);
        assert_defaults_except(&passed, &[]);
        assert_eq!(passed.headers().len(), 6);

        let problem = response(
            StatusCode::BAD_REQUEST,
            HeaderValue::from_static("application/problem+json"),
            Vec::new(),
        );
        let problem = security_headers(problem);
        assert_eq!(
            values(&problem, "content-type"),
            ["application/problem+json"]
        );
        assert_defaults_except(&problem, &[]);
        assert_eq!(problem.headers().len(), 6);
    }

    #[test]
    fn a_handler_that_changed_a_built_response_keeps_its_change_and_gets_the_rest() {
        let mut changed = json(StatusCode::OK, Vec::new());
        changed
            .headers_mut()
            .insert(X_FRAME_OPTIONS, HeaderValue::from_static("SAMEORIGIN"));
        changed
            .headers_mut()
            .append(CACHE_CONTROL, HeaderValue::from_static("private"));
        changed.headers_mut().remove(REFERRER_POLICY);
        changed.headers_mut().remove(CONTENT_SECURITY_POLICY);
        assert!(!starts_with_security_headers(changed.headers()));

        let passed = security_headers(changed);
        assert_eq!(values(&passed, "x-frame-options"), ["SAMEORIGIN"]);
        assert_eq!(values(&passed, "cache-control"), ["no-store", "private"]);
        assert_defaults_except(&passed, &["x-frame-options", "cache-control"]);
        assert_eq!(values(&passed, "content-type"), ["application/json"]);
        assert_eq!(passed.headers().len(), 7);
    }
}
