//! The JSON API: its handlers, their routes and the OpenAPI document generated from them.

use axum::Router;
use axum::routing::{delete, get, post};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;

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
        description = "Server-side sessions and JWT access tokens over one session record: a cookie, a bearer session token, or a short-lived JWT with a rotating refresh token. Errors are application/problem+json with a stable `code`; the OAuth endpoints (/v1/token, /v1/revoke, /v1/introspect) answer OAuth error JSON (RFC 6749 §5.2)."
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
        ops::metrics,
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

/// The JSON API's routes: the accounts, sessions, token and OAuth endpoints, discovery and
/// operations. The HTML pages are mounted beside them, in [`crate::app`].
pub fn api() -> Router<AppState> {
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
        .route("/metrics", get(ops::metrics))
}

/// The session check, the route every client calls on every page load.
pub const SESSION_PATH: &str = "/v1/session";
