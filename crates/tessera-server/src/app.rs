//! The application's routing: the JSON API ([`crate::routes`]) and the HTML pages mounted
//! beside it, with one fast path for the session check.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use futures_util::future::{BoxFuture, Either, FutureExt as _, Map};
use tower::Service;

use crate::problem::Problem;
use crate::routes::SESSION_PATH;
use crate::{AppState, pages, routes};

/// The routes with their state: [`router`], except that `GET /v1/session` goes straight to
/// its handler.
///
/// That request is the session check every client makes on every page load, and the
/// router's own work for it (matching the path among every route, recording the matched
/// path and the original URI, cloning the boxed route) was a measurable share of a check
/// (`docs/benchmarks.md`, "Measured reasons in the code"). The handler is the same
/// function with the same extractor, inside the same layers; the `tests` module holds the
/// two answers together. Everything else, `HEAD` included, goes through the router.
#[derive(Debug, Clone)]
pub struct Routes {
    router: Router,
    state: AppState,
}

impl Routes {
    /// [`router`] over `state`.
    pub fn new(state: AppState) -> Self {
        Routes {
            router: router().with_state(state.clone()),
            state,
        }
    }
}

impl Service<Request> for Routes {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<
        Map<BoxFuture<'static, Response>, fn(Response) -> Result<Response, Infallible>>,
        RouteFuture<Infallible>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::GET && request.uri().path() == SESSION_PATH {
            let answered: fn(Response) -> Result<Response, Infallible> = Ok;
            let future = Handler::call(routes::sessions::current, request, self.state.clone());
            return Either::Left(future.map(answered));
        }
        Either::Right(self.router.call(request))
    }
}

/// Every route — the JSON API and, beside it, the HTML pages — with problem+json answers
/// for unknown paths and methods.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(routes::api())
        .merge(pages::router())
        // Only matched routes: the request metrics label by route template, never raw path.
        .route_layer(axum::middleware::from_fn(crate::metrics::tag_route))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "this endpoint does not accept that method",
            )
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, COOKIE};
    use tessera_core::{Clock as _, LoginAttempt, ManualClock, SystemClock, Transport};
    use tower::ServiceExt as _;

    use super::*;
    use crate::{Config, open_with_clock};

    /// Status, headers but the length (hyper writes it from the body), and body.
    async fn answer(
        service: impl Service<Request, Response = Response, Error = Infallible>,
        request: Request,
    ) -> (axum::http::StatusCode, Vec<(String, String)>, Vec<u8>) {
        let response = service.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let mut headers: Vec<_> = parts
            .headers
            .iter()
            .filter(|(name, _)| **name != CONTENT_LENGTH)
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, headers, body.to_vec())
    }

    #[tokio::test]
    async fn the_session_check_answers_as_the_router_does() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.database.url = crate::config::Database::Sqlite(dir.path().join("t.db"));
        // A clock that stands still, so both answers show the same activity times.
        let clock = ManualClock::new(SystemClock.now());
        let services = open_with_clock(&config, Arc::new(clock)).await.unwrap();
        let engine = services.engine.clone();
        engine
            .create_user("alice", "correct horse battery staple")
            .await
            .unwrap();
        let mut tokens = Vec::new();
        for transport in [Transport::Cookie, Transport::Token] {
            let login = engine
                .login(LoginAttempt {
                    username: "alice",
                    password: "correct horse battery staple",
                    transport,
                    ip: None,
                    user_agent: Some("test \"agent\""),
                })
                .await
                .unwrap();
            tokens.push(login.token.encode());
        }
        let state = crate::state::build(&config, services);
        let cookie = format!("{}={}", config.session.cookie_name, tokens[0]);
        let bearer = format!("Bearer {}", tokens[1]);
        let requests: [(&str, &str, Option<(_, &str)>, u16); 7] = [
            ("GET", "/v1/session", Some((COOKIE, &cookie)), 200),
            ("GET", "/v1/session?x=1", Some((COOKIE, &cookie)), 200),
            ("GET", "/v1/session", Some((AUTHORIZATION, &bearer)), 200),
            ("GET", "/v1/session", None, 401),
            (
                "GET",
                "/v1/session",
                Some((COOKIE, "__Host-tessera_session=junk")),
                401,
            ),
            ("HEAD", "/v1/session", Some((COOKIE, &cookie)), 200),
            ("GET", "/v1/session/", Some((COOKIE, &cookie)), 404),
        ];
        for (method, uri, header, status) in requests {
            let request = || {
                let mut request = Request::builder().method(method).uri(uri);
                if let Some((name, value)) = &header {
                    request = request.header(name, *value);
                }
                request.body(Body::empty()).unwrap()
            };
            let routes = Routes::new(state.clone());
            let router = router().with_state(state.clone());
            let ours = answer(routes, request()).await;
            let theirs = answer(router, request()).await;
            assert_eq!(ours.0.as_u16(), status, "{method} {uri} {header:?}");
            assert_eq!(ours, theirs, "{method} {uri} {header:?}");
        }
    }
}
