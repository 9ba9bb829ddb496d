//! OAuth-shaped token endpoints and discovery: `POST /v1/token`, the JWKS and the RFC 8414
//! metadata. Errors here are OAuth error JSON (RFC 6749 §5.2), not problem+json.

use axum::extract::{FromRequest, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tessera_core::{Error, RefreshToken};
use tessera_tokens::{IssueError, SignedTokens};
use utoipa::ToSchema;

use crate::AppState;
use crate::audit::Audit;
use crate::body::{SessionBody, json, to_json};
use crate::errors::{OAuthError, no_store};
use crate::extract::{ApiJson, is_form, read_form};
use crate::refresh_cookie::{self, RefreshCookie};
use crate::routes::exchange;
use crate::routes::exchange::ExchangeResponse;

/// `POST /v1/token` parameters (form-encoded as OAuth says, or JSON).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `refresh_token`, or `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693).
    #[schema(value_type = GrantType)]
    pub grant_type: String,
    /// Refresh: the refresh token to spend. Without it, the `__Secure-tessera_refresh`
    /// cookie's, for a same-origin JSON request (see `refresh_cookie` at login).
    pub refresh_token: Option<String>,
    /// Refresh: ignored (every refresh keeps the session's claims). Exchange: the scopes
    /// wanted, space-separated, a subset of what the user and the service allow (all of
    /// those when omitted); for a one-time token exactly one, its operation.
    pub scope: Option<String>,
    /// Exchange: the subject — an access token (issued for this server or a registered
    /// service) or an opaque session token; omitted with the `session_cookie` type.
    pub subject_token: Option<String>,
    /// Exchange: `urn:ietf:params:oauth:token-type:access_token` (or `…:jwt`),
    /// `urn:tessera:params:oauth:token-type:session` (a bearer session token) or
    /// `urn:tessera:params:oauth:token-type:session_cookie` (the request's session cookie,
    /// with `X-CSRF-Token` and a same-origin request, as every cookie-authenticated write).
    pub subject_token_type: Option<String>,
    /// Exchange: `urn:ietf:params:oauth:token-type:access_token` (default, or `…:jwt`), `…:txn_token`
    /// (a one-time operation token) or `urn:tessera:params:oauth:token-type:session` (a
    /// child session for a stateful service, from an access token issued for it).
    pub requested_token_type: Option<String>,
    /// Exchange: the registered service's audience (one per exchange).
    pub audience: Option<String>,
    /// Exchange: the same as `audience` (RFC 8707 `resource`); if both are sent they must
    /// agree.
    pub resource: Option<String>,
    /// Exchange, delegation: a registered client's `client_id:client_secret`; the token then
    /// carries `act` with that client as actor.
    pub actor_token: Option<String>,
    /// Exchange, delegation: `urn:tessera:params:oauth:token-type:client_credentials`.
    pub actor_token_type: Option<String>,
}

/// The grants of `POST /v1/token`, for the document: the handler reads `grant_type` as text
/// so that any other value is `unsupported_grant_type` (RFC 6749 §5.2).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum GrantType {
    /// Spend a refresh token for a new pair.
    RefreshToken,
    /// RFC 8693 token exchange: `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[schema(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

/// A token response (RFC 6749 §5.1), also the body of a token-transport login.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse<'a> {
    /// The JWT access token.
    pub access_token: &'a str,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The opaque refresh token (spent on use); absent when it travels in the refresh cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The session both belong to.
    pub session: SessionBody<'a>,
}

/// The answer to a token-transport login or refresh: the signed pair in the body or, for a
/// browser app that asked for it, the refresh token in its cookie instead
/// ([`refresh_cookie`]).
pub(crate) fn token_response(
    state: &AppState,
    session: SessionBody<'_>,
    tokens: &SignedTokens,
    refresh_in_cookie: bool,
) -> Response {
    let refresh_token = (!refresh_in_cookie).then(|| tokens.refresh_token.encode());
    let body = TokenResponse {
        access_token: &tokens.access_token,
        token_type: "Bearer",
        expires_in: tokens.expires_in,
        refresh_token,
        session,
    };
    let mut response = json(StatusCode::OK, to_json(&body));
    no_store(response.headers_mut());
    if refresh_in_cookie {
        refresh_cookie::set(state, response.headers_mut(), tokens);
    }
    response
}

/// Exchanges a refresh token for a new access and refresh token (rotation), or exchanges
/// the user's session for a token for a registered service (RFC 8693; see
/// `ExchangeResponse`).
///
/// A spent refresh token presented again within `token.refresh_grace` returns the same
/// successor pair; presented later it is treated as stolen, the session is revoked and the
/// answer is `invalid_grant`.
#[utoipa::path(
    post, path = "/v1/token", tag = "tokens",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Refresh: a new token pair, not cached", body = TokenResponse),
        (status = 200, description = "Token exchange: the issued token, not cached", body = ExchangeResponse),
        (status = 400, description = "`invalid_request` (malformed, unknown or repeated parameters, another body type, no refresh token), `invalid_grant`, `unsupported_grant_type`; for token exchange also `invalid_target` (unregistered audience), `invalid_scope` (more than the user and service allow; not exactly one operation for a one-time token) and `unauthorized_client` (an actor that is not a registered client)", body = OAuthError),
        (status = 401, description = "`invalid_client`: token exchange with an actor_token whose client credentials are wrong", body = OAuthError),
        (status = 403, description = "`invalid_request`: the refresh cookie, or a session-cookie subject, from a request another site could have made or without X-CSRF-Token", body = OAuthError),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`", body = OAuthError),
    ),
    security((), ("refresh_cookie" = []))
)]
pub async fn token(
    State(state): State<AppState>,
    Audit(audit): Audit,
    request: Request,
) -> Response {
    let cookie = RefreshCookie::read(&state, request.headers());
    let headers = request.headers().clone();
    let parameters = match parse_token_request(&state, request).await {
        Ok(parameters) => parameters,
        Err(response) => return response,
    };
    if parameters.grant_type == exchange::TOKEN_EXCHANGE_GRANT {
        return exchange::exchange(&state, audit, &headers, parameters).await;
    }
    if parameters.grant_type != "refresh_token" {
        return OAuthError::response(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be refresh_token or urn:ietf:params:oauth:grant-type:token-exchange",
        );
    }
    let exchange_only = [
        &parameters.subject_token,
        &parameters.subject_token_type,
        &parameters.requested_token_type,
        &parameters.audience,
        &parameters.resource,
        &parameters.actor_token,
        &parameters.actor_token_type,
    ];
    if exchange_only.iter().any(|parameter| parameter.is_some()) {
        return OAuthError::invalid_request(
            "token-exchange parameters with grant_type=refresh_token",
        );
    }
    // Without the parameter, the browser's refresh cookie (see `refresh_cookie`).
    let (presented, via_cookie) = match parameters.refresh_token.as_deref() {
        Some(presented) => (presented, false),
        None => match cookie.token() {
            Ok(presented) => (presented, true),
            Err(unusable) => return unusable.response(),
        },
    };
    let Ok(refresh_token) = RefreshToken::parse(presented) else {
        return OAuthError::response(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token is invalid",
        );
    };
    match state.tokens.refresh_in(&refresh_token, audit).await {
        Ok(refreshed) => token_response(
            &state,
            SessionBody::current(&refreshed.session),
            &refreshed.tokens,
            via_cookie,
        ),
        // The cookie's token can never work again: clear it.
        Err(IssueError::Engine(Error::InvalidGrant)) if via_cookie => {
            RefreshCookie::refused(&state, OAuthError::from_engine(Error::InvalidGrant))
        }
        Err(error) => OAuthError::from_issue(error),
    }
}

async fn parse_token_request(state: &AppState, request: Request) -> Result<TokenRequest, Response> {
    if is_form(request.headers()) {
        // Repeated parameters are refused (RFC 6749 §3.2).
        return read_form(request.into_body(), state.http.max_body_bytes)
            .await
            .map_err(OAuthError::invalid_request);
    }
    match ApiJson::<TokenRequest>::from_request(request, state).await {
        Ok(ApiJson(parameters)) => Ok(parameters),
        Err(problem) if problem.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded or application/json",
            ))
        }
        Err(_) => Err(OAuthError::invalid_request(
            "malformed, unknown or repeated parameters",
        )),
    }
}

/// The public keys access tokens are verified with (RFC 7517); never private parts.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "JWK Set, cacheable for 60 s", body = JwkSet, content_type = "application/jwk-set+json"))
)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = (StatusCode::OK, state.tokens.jwks_json()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Short enough that a verifier learns a rotated-in key well before it signs.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// A JWK Set (RFC 7517 §5), for the document: the body is the key ring's own JSON.
#[derive(Debug, ToSchema)]
pub struct JwkSet {
    /// The public verification keys, each with its `kid`.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

/// Authorization server metadata (RFC 8414).
#[derive(Debug, Serialize, ToSchema)]
pub struct Metadata {
    /// The `iss` of every token.
    pub issuer: String,
    /// Where the verification keys are.
    pub jwks_uri: String,
    /// `POST /v1/token`.
    pub token_endpoint: String,
    /// `POST /v1/revoke` (RFC 7009).
    pub revocation_endpoint: String,
    /// `POST /v1/introspect` (RFC 7662), for clients with credentials.
    pub introspection_endpoint: String,
    /// Grants the token endpoint accepts.
    pub grant_types_supported: Vec<&'static str>,
    /// First-party public clients: no client authentication at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Tessera extension: `GET /v1/revocations`, the revocation feed's snapshot (client
    /// credentials), for verifiers outside the server such as `tessera-tower`.
    pub tessera_revocations_endpoint: String,
    /// Tessera extension: `GET /v1/revocations/stream`, the revocation feed as server-sent
    /// events (client credentials).
    pub tessera_revocation_stream_endpoint: String,
}

/// Discovery document for standard OAuth clients.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "tokens", responses((status = 200, body = Metadata)))]
pub async fn metadata(State(state): State<AppState>) -> Response {
    let issuer = state.tokens.issuer().trim_end_matches('/').to_owned();
    let body = Metadata {
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        token_endpoint: format!("{issuer}/v1/token"),
        revocation_endpoint: format!("{issuer}/v1/revoke"),
        introspection_endpoint: format!("{issuer}/v1/introspect"),
        tessera_revocations_endpoint: format!("{issuer}/v1/revocations"),
        tessera_revocation_stream_endpoint: format!("{issuer}/v1/revocations/stream"),
        grant_types_supported: vec!["refresh_token", exchange::TOKEN_EXCHANGE_GRANT],
        token_endpoint_auth_methods_supported: vec!["none"],
        issuer: state.tokens.issuer().to_owned(),
    };
    let mut response = json(StatusCode::OK, to_json(&body));
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
