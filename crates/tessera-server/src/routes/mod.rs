//! The HTTP routes and their OpenAPI description.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::routing::{delete, get, post};
use futures_util::future::{BoxFuture, Either, FutureExt as _, Map};
use tower::Service;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::problem::Problem;

pub mod accounts;
pub mod oauth;
pub mod ops;
pub mod sessions;
pub mod tokens;

/// The API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Server-side sessions (and, later, JWTs) over one session record. Errors are application/problem+json with a stable `code`."
    ),
    paths(
        accounts::create_user,
        accounts::login,
        accounts::logout,
        sessions::current,
        sessions::list,
        sessions::revoke_one,
        sessions::revoke_many,
        tokens::token,
        tokens::jwks,
        tokens::metadata,
        oauth::introspect,
        oauth::revoke,
        oauth::revocations,
        oauth::revocation_stream,
        ops::healthz,
        ops::readyz,
        ops::openapi,
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-tessera_session",
                "Session cookie set by POST /v1/login; unsafe methods also need X-CSRF-Token",
            ))),
        );
        components.add_security_scheme(
            "client",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("Client id and secret from `tessera client add`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The opaque session token, or a JWT access token"))
                    .build(),
            ),
        );
    }
}

/// The routes with their state: [`router`], except that `GET /v1/session` goes straight to
/// its handler.
///
/// That request is the session check every client makes on every page load, and the
/// router's own work for it (matching the path among every route, recording the matched
/// path and the original URI, cloning the boxed route) was about a tenth of the server's
/// CPU time per check (`bench/scale.sh`, Redis without the cache). The handler is the same
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
            let future = Handler::call(sessions::current, request, self.state.clone());
            return Either::Left(future.map(answered));
        }
        Either::Right(self.router.call(request))
    }
}

const SESSION_PATH: &str = "/v1/session";

/// Every route, with problem+json answers for unknown paths and methods.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/users", post(accounts::create_user))
        .route("/v1/login", post(accounts::login))
        .route("/v1/logout", post(accounts::logout))
        .route(SESSION_PATH, get(sessions::current))
        .route(
            "/v1/sessions",
            get(sessions::list).delete(sessions::revoke_many),
        )
        .route("/v1/sessions/{id}", delete(sessions::revoke_one))
        .route("/v1/token", post(tokens::token))
        .route("/v1/introspect", post(oauth::introspect))
        .route("/v1/revoke", post(oauth::revoke))
        .route("/v1/revocations", get(oauth::revocations))
        .route("/v1/revocations/stream", get(oauth::revocation_stream))
        .route("/.well-known/jwks.json", get(tokens::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(tokens::metadata),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(ops::openapi))
        .merge(crate::pages::router())
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
