//! The JSON API: its handlers, their routes and the OpenAPI document generated from them.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};

use crate::{AppState, Config};

pub mod account;
pub mod accounts;
pub mod admin;
pub mod admin_services;
pub mod exchange;
pub mod oauth;
pub mod ops;
pub mod sessions;
pub mod tokens;

/// The API's OpenAPI document; [`document`] is the one served.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tessera",
        description = "Server-side sessions and JWT access tokens over one session record: a cookie, a bearer session token, or a short-lived JWT with a rotating refresh token. Errors are application/problem+json (RFC 9457) with a stable `code`; the OAuth endpoints (/v1/token, /v1/revoke, /v1/introspect, and the revocation feed's client authentication) answer OAuth error JSON (RFC 6749 §5.2). Any request whose declared body exceeds `server.max_body_bytes` is answered 413 before its body is read, and one whose body does not arrive within `server.body_timeout` 408; an unknown path is 404 `not_found` and an unrouted method 405 `method_not_allowed`; a failure of the server itself is 500 `internal_error`."
    ),
    paths(
        accounts::create_user,
        accounts::login,
        accounts::logout,
        account::reauthenticate,
        account::change_password,
        account::delete_account,
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
        admin::list_users,
        admin::create_user,
        admin::show_user,
        admin::update_user,
        admin::delete_user,
        admin::reset_password,
        admin::user_sessions,
        admin::revoke_user_sessions,
        admin::revoke_session,
        admin::list_keys,
        admin::rotate_key,
        admin::list_clients,
        admin::create_client,
        admin::delete_client,
        admin_services::list_services,
        admin_services::create_service,
        admin_services::delete_service,
        admin::audit_events,
    ),
    modifiers(&SecuritySchemes, &ProblemMediaType, &BodyLimits)
)]
pub struct ApiDoc;

/// The document as served under `config`: [`ApiDoc`] with the configured password limits.
pub fn document(config: &Config) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    // Every field that sets a password: registration's, a password change's new one and an
    // administrator's reset.
    for (schema, field) in [
        ("NewUser", "password"),
        ("NewPassword", "new_password"),
        ("PasswordReset", "password"),
    ] {
        let password = document
            .components
            .as_mut()
            .and_then(|components| components.schemas.get_mut(schema))
            .and_then(|body| match body {
                RefOr::T(Schema::Object(object)) => object.properties.get_mut(field),
                _ => None,
            });
        if let Some(RefOr::T(Schema::Object(password))) = password {
            // Characters here; the server counts the maximum in bytes, so this is the bound a
            // client can check before sending, and the description says the rest.
            password.min_length = Some(config.auth.password_min_length);
            password.max_length = Some(config.auth.password_max_bytes);
        }
    }
    document
}

/// The schema every problem answer carries.
const PROBLEM_SCHEMA: &str = "#/components/schemas/ProblemBody";

/// Declares every [`ProblemBody`](crate::problem::ProblemBody) answer as
/// `application/problem+json`, the type [`Problem`](crate::problem::Problem) always sends:
/// one place instead of a `content_type` on each of the annotations' error lines.
#[derive(Debug)]
struct ProblemMediaType;

impl Modify for ProblemMediaType {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in openapi.paths.paths.values_mut().flat_map(operations_mut) {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let is_problem = response.content.get("application/json").is_some_and(|content| {
                    matches!(&content.schema, Some(RefOr::Ref(schema)) if schema.ref_location == PROBLEM_SCHEMA)
                });
                if is_problem
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response
                        .content
                        .insert("application/problem+json".to_owned(), content);
                }
            }
        }
    }
}

/// Adds the answers of the connection layer (`server::respond`) to every operation that
/// takes a body: `413` for a declared length over `server.max_body_bytes` and `408` for a
/// body that misses `server.body_timeout`, both problem+json whatever the route.
#[derive(Debug)]
struct BodyLimits;

impl Modify for BodyLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let answer = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::new(PROBLEM_SCHEMA)))
                        .build(),
                )
                .build()
        };
        for operation in openapi.paths.paths.values_mut().flat_map(operations_mut) {
            if operation.request_body.is_none() {
                continue;
            }
            let responses = &mut operation.responses.responses;
            responses.entry("408".to_owned()).or_insert_with(|| {
                RefOr::T(answer(
                    "`request_timeout`: the body did not arrive within `server.body_timeout`",
                ))
            });
            responses.entry("413".to_owned()).or_insert_with(|| {
                RefOr::T(answer(
                    "`payload_too_large`: the body is over `server.max_body_bytes`",
                ))
            });
        }
    }
}

/// The operations of one path.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

#[derive(Debug)]
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-tessera_session",
                "Session cookie set by POST /v1/login (named by `session.cookie_name`)",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's CSRF token (`csrf_token` of the login and session answers): required with the cookie on unsafe methods",
            ))),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Secure-tessera_refresh",
                "Refresh-token cookie set by a token-transport login with `refresh_cookie: true`",
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
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Id and secret of a client with the admin scope (`tessera client add NAME --admin`)",
                    ))
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
        components.add_security_scheme(
            "metrics",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`metrics.bearer_token`"))
                    .build(),
            ),
        );
    }
}

/// The JSON API's routes: the accounts, sessions, token and OAuth endpoints, discovery,
/// operations and the admin API — exactly [`operations`]. The HTML pages are mounted beside them, in
/// [`crate::app`].
pub fn api() -> Router<AppState> {
    routed()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
}

/// The method and path of every operation [`api`] routes. `tests/openapi.rs` holds this list
/// equal to the document's operations and asks the server each one, so a route added without
/// its `#[utoipa::path]` (or documented without a route) fails the suite.
pub fn operations() -> Vec<(Method, &'static str)> {
    routed()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The one list of the API's routes: each method says what its handler is routed for.
fn routed() -> Vec<(Method, &'static str, MethodRouter<AppState>)> {
    vec![
        (Method::POST, "/v1/users", post(accounts::create_user)),
        (Method::POST, "/v1/login", post(accounts::login)),
        (Method::POST, "/v1/logout", post(accounts::logout)),
        (
            Method::POST,
            "/v1/reauthenticate",
            post(account::reauthenticate),
        ),
        (Method::POST, "/v1/password", post(account::change_password)),
        (
            Method::DELETE,
            "/v1/account",
            delete(account::delete_account),
        ),
        (Method::GET, SESSION_PATH, get(sessions::current)),
        (Method::GET, "/v1/sessions", get(sessions::list)),
        (
            Method::DELETE,
            "/v1/sessions",
            delete(sessions::revoke_many),
        ),
        (
            Method::DELETE,
            "/v1/sessions/{id}",
            delete(sessions::revoke_one),
        ),
        (Method::POST, "/v1/token", post(tokens::token)),
        (Method::POST, "/v1/introspect", post(oauth::introspect)),
        (Method::POST, "/v1/revoke", post(oauth::revoke)),
        (Method::GET, "/v1/revocations", get(oauth::revocations)),
        (
            Method::GET,
            "/v1/revocations/stream",
            get(oauth::revocation_stream),
        ),
        (Method::GET, "/.well-known/jwks.json", get(tokens::jwks)),
        (
            Method::GET,
            "/.well-known/oauth-authorization-server",
            get(tokens::metadata),
        ),
        (Method::GET, "/healthz", get(ops::healthz)),
        (Method::GET, "/readyz", get(ops::readyz)),
        (Method::GET, "/openapi.json", get(ops::openapi)),
        (Method::GET, "/metrics", get(ops::metrics)),
        // The admin API (`admin.rs`): admin client credentials only.
        (Method::GET, "/v1/admin/users", get(admin::list_users)),
        (Method::POST, "/v1/admin/users", post(admin::create_user)),
        (Method::GET, "/v1/admin/users/{id}", get(admin::show_user)),
        (
            Method::PATCH,
            "/v1/admin/users/{id}",
            patch(admin::update_user),
        ),
        (
            Method::DELETE,
            "/v1/admin/users/{id}",
            delete(admin::delete_user),
        ),
        (
            Method::POST,
            "/v1/admin/users/{id}/password",
            post(admin::reset_password),
        ),
        (
            Method::GET,
            "/v1/admin/users/{id}/sessions",
            get(admin::user_sessions),
        ),
        (
            Method::DELETE,
            "/v1/admin/users/{id}/sessions",
            delete(admin::revoke_user_sessions),
        ),
        (
            Method::DELETE,
            "/v1/admin/sessions/{id}",
            delete(admin::revoke_session),
        ),
        (Method::GET, "/v1/admin/keys", get(admin::list_keys)),
        (
            Method::POST,
            "/v1/admin/keys/rotate",
            post(admin::rotate_key),
        ),
        (Method::GET, "/v1/admin/clients", get(admin::list_clients)),
        (
            Method::POST,
            "/v1/admin/clients",
            post(admin::create_client),
        ),
        (
            Method::DELETE,
            "/v1/admin/clients/{name}",
            delete(admin::delete_client),
        ),
        (
            Method::GET,
            "/v1/admin/services",
            get(admin_services::list_services),
        ),
        (
            Method::POST,
            "/v1/admin/services",
            post(admin_services::create_service),
        ),
        (
            Method::DELETE,
            "/v1/admin/services/{name}",
            delete(admin_services::delete_service),
        ),
        (Method::GET, "/v1/admin/audit", get(admin::audit_events)),
    ]
}

/// The session check, the route every client calls on every page load.
pub const SESSION_PATH: &str = "/v1/session";
