//! Endpoints for resource servers and standard OAuth clients: token introspection
//! (RFC 7662), token revocation (RFC 7009), and the revocation feed that lets verifiers
//! outside the server forget revoked sessions' JWTs at once.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::stream::{self, Stream};
use headers::authorization::Basic;
use headers::{Authorization, HeaderMapExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tessera_core::{
    Error, RefreshToken, Revocation, RevocationKind, SessionId, SessionToken, UserId,
};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::audit::Audit;
use crate::body::{Rfc3339, json, to_json};
use crate::errors::OAuthError;
use crate::extract::{ApiQuery, is_form, read_form};

/// `POST /v1/introspect` and `POST /v1/revoke` parameters (form-encoded).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenParameters {
    /// The token.
    pub token: String,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    /// client_secret_post: the client id.
    pub client_id: Option<String>,
    /// client_secret_post: the client secret.
    pub client_secret: Option<String>,
}

/// An introspection answer (RFC 7662 §2.2). Inactive tokens get only `{"active": false}`.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Introspection {
    /// Whether the token is valid and its session live right now.
    pub active: bool,
    /// `access_token`, `refresh_token` or `session_token` (an opaque session token from the
    /// cookie or a bearer header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// User id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Expiry, Unix seconds (a session token: its idle expiry as of this check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time, Unix seconds (a session token: the login).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Access tokens: the token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Access tokens: the issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Access tokens: their audiences. Child sessions: the one service they belong to (a
    /// service must refuse a child session of another service's audience).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Vec<String>>,
    /// Access tokens: their scope, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The username (access and session tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's roles: an access token's `roles` claim (current, since a token issued
    /// before a change of roles is inactive); for session and refresh tokens, the roles now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Session tokens (a Tessera extension): the SHA-256 of the session's CSRF token,
    /// base64url without padding. A service routed behind Tessera's origin that accepts the
    /// session cookie compares it with the SHA-256 of a request's `X-CSRF-Token`, so it can
    /// demand the token exactly as Tessera does without being handed the token itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token_sha256: Option<String>,
}

/// Reads form parameters, refusing other content types and repeated or unknown parameters.
async fn form(
    state: &AppState,
    request: Request,
) -> Result<(HeaderMap, TokenParameters), Response> {
    let (parts, body) = request.into_parts();
    if !is_form(&parts.headers) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let parameters = read_form(body, state.http.max_body_bytes)
        .await
        .map_err(OAuthError::invalid_request)?;
    Ok((parts.headers, parameters))
}

/// Authenticates the calling client: HTTP Basic (client_secret_basic) or, for form
/// endpoints, `client_id` + `client_secret` parameters (client_secret_post). Both in one
/// request is `invalid_request` (RFC 6749 §2.3): which one would be the client?
async fn client(
    state: &AppState,
    headers: &HeaderMap,
    parameters: Option<&TokenParameters>,
) -> Result<(), Response> {
    let basic = headers.typed_get::<Authorization<Basic>>();
    if basic.is_some()
        && parameters.is_some_and(|form| form.client_id.is_some() || form.client_secret.is_some())
    {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method",
        ));
    }
    let credentials = match (&basic, parameters) {
        (Some(basic), _) => Some((basic.username(), basic.password())),
        (
            None,
            Some(TokenParameters {
                client_id: Some(id),
                client_secret: Some(secret),
                ..
            }),
        ) => Some((id.as_str(), secret.as_str())),
        _ => None,
    };
    let refused = || {
        OAuthError::response(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        )
    };
    let Some((id, secret)) = credentials else {
        return Err(refused());
    };
    match state.engine.authenticate_client(id, secret).await {
        Ok(_) => Ok(()),
        Err(error) => Err(OAuthError::from_engine(error)),
    }
}

/// Tells a resource server whether a token is active (RFC 7662). Client authentication is
/// required; the answer for anything not active is just `{"active": false}`.
#[utoipa::path(
    post, path = "/v1/introspect", tag = "tokens",
    request_body(content = TokenParameters, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's state, not cached", body = Introspection),
        (status = 400, description = "`invalid_request`: another body type, or malformed, unknown or repeated parameters", body = OAuthError),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate: Basic`", body = OAuthError),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`", body = OAuthError),
    ),
    security(("client" = []))
)]
pub async fn introspect(State(state): State<AppState>, request: Request) -> Response {
    let (headers, parameters) = match form(&state, request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Err(response) = client(&state, &headers, Some(&parameters)).await {
        return response;
    }
    let answer = match introspection(&state, &parameters.token).await {
        Ok(answer) => answer,
        Err(error) => return OAuthError::from_engine(error),
    };
    let mut response = json(StatusCode::OK, to_json(&answer));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

async fn introspection(state: &AppState, token: &str) -> Result<Introspection, Error> {
    if token.contains('.') {
        let Ok(claims) = state.tokens.verify(token) else {
            return Ok(Introspection::default());
        };
        if state.tokens.is_stale(&claims) {
            return Ok(Introspection::default());
        }
        let Ok(session_id) = SessionId::parse(&claims.sid) else {
            return Ok(Introspection::default());
        };
        return match state.engine.session_for_access(&session_id).await {
            Ok(session) if session.record().user_id.as_str() == claims.sub => Ok(Introspection {
                active: true,
                token_type: Some("access_token"),
                sub: Some(claims.sub.clone()),
                sid: Some(claims.sid.clone()),
                exp: Some(claims.exp),
                iat: Some(claims.iat),
                jti: Some(claims.jti.clone()),
                iss: Some(claims.iss.clone()),
                aud: Some(claims.aud.iter().map(str::to_owned).collect()),
                scope: claims.scope.clone(),
                username: Some(session.username().to_owned()),
                roles: Some(claims.roles.clone()),
                csrf_token_sha256: None,
            }),
            Ok(_) | Err(Error::Unauthenticated | Error::SessionExpired) => {
                Ok(Introspection::default())
            }
            Err(other) => Err(other),
        };
    }
    // An opaque session token (a cookie's value, or a bearer session token) presented to a
    // service routed behind Tessera's origin: checked like any request that carries it, so
    // it counts as activity and a revoked or expired session is inactive.
    if let Ok(session_token) = SessionToken::parse(token) {
        return match state.engine.validate_any(&session_token).await {
            Ok(session) => {
                let record = session.record();
                Ok(Introspection {
                    active: true,
                    token_type: Some("session_token"),
                    aud: record
                        .parent
                        .as_ref()
                        .map(|parent| vec![parent.audience.clone()]),
                    sub: Some(record.user_id.as_str().to_owned()),
                    sid: Some(record.id.as_str().to_owned()),
                    exp: Some(session.idle_expires_at().unix_seconds()),
                    iat: Some(record.created_at.unix_seconds()),
                    username: Some(session.username().to_owned()),
                    roles: Some(roles_of(state, &record.user_id).await?),
                    csrf_token_sha256: Some(csrf_token_sha256(&session_token)),
                    ..Introspection::default()
                })
            }
            Err(Error::Unauthenticated | Error::SessionExpired) => Ok(Introspection::default()),
            Err(other) => Err(other),
        };
    }
    let Ok(refresh) = RefreshToken::parse(token) else {
        return Ok(Introspection::default());
    };
    Ok(match state.engine.inspect_refresh(&refresh).await? {
        Some((record, session)) => Introspection {
            active: true,
            token_type: Some("refresh_token"),
            sub: Some(session.user_id.as_str().to_owned()),
            sid: Some(session.id.as_str().to_owned()),
            exp: Some(record.expires_at.unix_seconds()),
            iat: Some(record.issued_at.unix_seconds()),
            roles: Some(roles_of(state, &session.user_id).await?),
            ..Introspection::default()
        },
        None => Introspection::default(),
    })
}

/// The user's roles now (a user deleted meanwhile has none).
async fn roles_of(state: &AppState, user_id: &UserId) -> Result<Vec<String>, Error> {
    match state.engine.standing_of(user_id).await {
        Ok(standing) => Ok(standing.roles.iter().map(str::to_owned).collect()),
        Err(Error::UserNotFound) => Ok(Vec::new()),
        Err(other) => Err(other),
    }
}

/// The base64url SHA-256 of `token`'s CSRF token (see [`Introspection::csrf_token_sha256`]).
fn csrf_token_sha256(token: &SessionToken) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.csrf_token().encode().as_bytes()))
}

/// Revokes a token (RFC 7009): the token itself is the proof, so first-party public clients
/// need no client credentials. Revoking a refresh or access token, or a session token, ends
/// its whole session (and its child sessions); revoking a child session's token ends only
/// that child.
/// The answer is `200` whether or not the token was valid.
#[utoipa::path(
    post, path = "/v1/revoke", tag = "tokens",
    request_body(content = TokenParameters, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke; no body"),
        (status = 400, description = "`invalid_request`: another body type, or malformed, unknown or repeated parameters", body = OAuthError),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`", body = OAuthError),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Audit(audit): Audit,
    request: Request,
) -> Response {
    let (_, parameters) = match form(&state, request).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let engine = state.engine.with_context(audit);
    let result = if parameters.token.contains('.') {
        match state.tokens.verify(&parameters.token) {
            Ok(claims) => match SessionId::parse(&claims.sid) {
                Ok(id) => engine.revoke_quietly(&id).await,
                Err(_) => Ok(false),
            },
            Err(_) => Ok(false),
        }
    } else if let Ok(token) = SessionToken::parse(&parameters.token) {
        // An opaque session token: a bearer session, or a service's child session (its
        // service logging the user out there leaves the parent alone).
        match state.engine.validate_any(&token).await {
            Ok(session) => engine.revoke_quietly(&session.record().id).await,
            Err(Error::Unauthenticated | Error::SessionExpired) => Ok(false),
            Err(other) => Err(other),
        }
    } else {
        match RefreshToken::parse(&parameters.token) {
            Ok(token) => engine.revoke_by_refresh(&token).await,
            Err(_) => Ok(false),
        }
    };
    match result {
        Ok(_) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert("cache-control", HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => OAuthError::from_engine(error),
    }
}

/// `GET /v1/revocations` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// Only revocations after this sequence. Defaults to `0` (everything still retained).
    pub after: Option<u64>,
    /// At most this many, 1–1000. Defaults to `1000`.
    pub limit: Option<usize>,
}

/// One entry of the revocation feed, as verifiers need it: a revoked session
/// (`kind: "session"`), or a user whose access tokens issued before `stale_before` are
/// stale (`kind: "user"`: roles, claims, password or account state changed).
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationEntry {
    /// Position in the feed; pass the last one seen as `after`.
    pub sequence: u64,
    /// `session` or `user`. A verifier must act on both; one that does not know a kind
    /// must fail closed rather than skip the entry.
    #[schema(value_type = String, example = "session")]
    pub kind: &'static str,
    /// `session` entries: the revoked session; refuse every JWT whose `sid` is this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user: the session's owner, or the user whose tokens went stale.
    pub user_id: String,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub revoked_at: Rfc3339,
    /// `user` entries: refuse every JWT whose `sub` is `user_id` and whose `iat` is before
    /// this instant (always a whole second). A refresh gets a token issued at or after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stale_before: Option<Rfc3339>,
    /// Until when a verifier must remember it: after this, every access token it could
    /// refuse has expired.
    #[schema(value_type = String, format = DateTime)]
    pub remember_until: Rfc3339,
}

/// `GET /v1/revocations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevocationFeed {
    /// Revocations after the cursor given, oldest first.
    pub revocations: Vec<RevocationEntry>,
    /// The sequence to pass as `after` next time.
    pub cursor: u64,
}

fn entry(state: &AppState, revocation: &Revocation) -> RevocationEntry {
    let remember = state.tokens.remember_revocations_for();
    let (kind, sid, stale_before, remembered_from) = match &revocation.kind {
        RevocationKind::Session(id) => (
            "session",
            Some(id.as_str().to_owned()),
            None,
            revocation.revoked_at,
        ),
        RevocationKind::User => {
            let stale_before = revocation.stale_before();
            ("user", None, Some(Rfc3339(stale_before)), stale_before)
        }
    };
    RevocationEntry {
        sequence: revocation.sequence,
        kind,
        sid,
        user_id: revocation.user_id.as_str().to_owned(),
        revoked_at: Rfc3339(revocation.revoked_at),
        stale_before,
        remember_until: Rfc3339(remembered_from.saturating_add(remember)),
    }
}

/// The revocation feed: revoked sessions and users whose tokens went stale, since a cursor, for verifiers outside the server
/// (client credentials required). Entries are retained at least as long as an access token
/// can live.
#[utoipa::path(
    get, path = "/v1/revocations", tag = "tokens",
    params(FeedQuery),
    responses(
        (status = 200, description = "Revocations after `after`", body = RevocationFeed),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate: Basic`", body = OAuthError),
        (status = 422, description = "`validation_failed`: a malformed or unknown query parameter (checked before the client)", body = crate::problem::ProblemBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`", body = OAuthError),
    ),
    security(("client" = []))
)]
pub async fn revocations(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Response {
    if let Err(response) = client(&state, &headers, None).await {
        return response;
    }
    let after = query.after.unwrap_or(0);
    let limit = query.limit.unwrap_or(1000).clamp(1, 1000);
    let result = async {
        let cursor = state.engine.revocation_cursor().await?;
        let batch = state.engine.revocations_since(after, limit).await?;
        Ok::<_, Error>((cursor, batch))
    }
    .await;
    match result {
        Ok((cursor, batch)) => {
            let cursor = batch.last().map_or(cursor.max(after), |last| last.sequence);
            let revocations = batch
                .iter()
                .map(|revocation| entry(&state, revocation))
                .collect();
            json(
                StatusCode::OK,
                to_json(&RevocationFeed {
                    revocations,
                    cursor,
                }),
            )
        }
        Err(error) => OAuthError::from_engine(error),
    }
}

/// How often an idle revocation stream carries a keep-alive comment. A verifier counts any
/// bytes as proof that its revocation set is current, so this stays well below the shortest
/// staleness bound a verifier is expected to use (`tessera-tower` defaults to 10 s): a
/// quiet stream then never looks stale.
pub const FEED_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The revocation feed as server-sent events: one `revocation` event per entry (a revoked
/// session, or a user whose tokens went stale)
/// (`id` = sequence, so a reconnect with `Last-Event-ID` resumes without a gap), starting
/// after `after` (or `Last-Event-ID`), or at the current end if neither is given.
#[utoipa::path(
    get, path = "/v1/revocations/stream", tag = "tokens",
    params(FeedQuery),
    responses(
        (status = 200, description = "Server-sent `revocation` events, each a `RevocationEntry`; it does not end", content_type = "text/event-stream"),
        (status = 401, description = "`invalid_client`, with `WWW-Authenticate: Basic`", body = OAuthError),
        (status = 422, description = "`validation_failed`: a malformed or unknown query parameter (checked before the client)", body = crate::problem::ProblemBody),
        (status = 503, description = "`temporarily_unavailable`, with `Retry-After`", body = OAuthError),
    ),
    security(("client" = []))
)]
pub async fn revocation_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<FeedQuery>,
) -> Response {
    if let Err(response) = client(&state, &headers, None).await {
        return response;
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    let start = match resume.or(query.after) {
        Some(after) => after,
        None => match state.engine.revocation_cursor().await {
            Ok(cursor) => cursor,
            Err(error) => return OAuthError::from_engine(error),
        },
    };
    let poll = state.revocation_poll;
    let mut response = Sse::new(feed(state, start, poll))
        .keep_alive(KeepAlive::new().interval(FEED_KEEP_ALIVE))
        .into_response();
    // axum's SSE answer says `no-cache` (store, but revalidate); revocations, like every
    // other API answer, are never to be stored.
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Reads the revocation log and yields each new entry once, in order: again as soon as this
/// instance knows the log grew (its own revocations, and what its sync read from other
/// instances' pushes), and every `poll` regardless. A store failure ends the stream; the
/// client reconnects with `Last-Event-ID` and misses nothing.
fn feed(
    state: AppState,
    start: u64,
    poll: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let grew = state.engine.revocation_log_grew();
    stream::unfold(
        (state, start, Vec::<Event>::new(), true, grew),
        move |(state, mut cursor, mut pending, mut first, mut grew)| async move {
            loop {
                if let Some(event) = pending.pop() {
                    return Some((Ok(event), (state, cursor, pending, first, grew)));
                }
                if !first {
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        // An error means the engine is gone; the poll carries on.
                        _ = grew.changed() => {}
                    }
                }
                first = false;
                // Seen before the read: a growth after it wakes the next wait at once.
                grew.borrow_and_update();
                let batch = match state.engine.revocations_since(cursor, 1000).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%error, "revocation stream ends on a store failure");
                        return None;
                    }
                };
                if let Some(last) = batch.last() {
                    cursor = last.sequence;
                }
                // Stored reversed so `pop` yields oldest first.
                pending = batch
                    .iter()
                    .rev()
                    .map(|revocation| {
                        Event::default()
                            .event("revocation")
                            .id(revocation.sequence.to_string())
                            .data(String::from_utf8_lossy(&to_json(&entry(
                                &state, revocation,
                            ))))
                    })
                    .collect();
            }
        },
    )
}
