//! The caller's current session, the list of their sessions, and revocation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tessera_core::{RevokeScope, SessionId};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::audit::Audit;
use crate::auth::{Authenticated, Carrier};
use crate::body::{
    ChildSessionBody, CurrentSession, ListedSession, Revoked, SessionBody, SessionList, json,
    to_json,
};
use crate::extract::ApiQuery;
use crate::problem::{Problem, ProblemBody};

/// The session making the request.
#[utoipa::path(
    get, path = "/v1/session", tag = "sessions",
    responses(
        (status = 200, description = "The current session", body = CurrentSession),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = []), ("bearer" = []))
)]
pub async fn current(auth: Authenticated) -> Response {
    let body = CurrentSession {
        session: SessionBody::current(&auth.session),
        csrf_token: match (&auth.token, auth.carrier) {
            (Some(token), Carrier::Cookie) => Some(token.csrf_token().encoded()),
            _ => None,
        },
    };
    json(StatusCode::OK, body.to_json())
}

/// The caller's live sessions, the current one marked.
#[utoipa::path(
    get, path = "/v1/sessions", tag = "sessions",
    responses(
        (status = 200, description = "Live sessions, newest first, each with its child sessions", body = SessionList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = []), ("bearer" = []))
)]
pub async fn list(State(state): State<AppState>, auth: Authenticated) -> Result<Response, Problem> {
    let current = auth.session.record();
    let records = state.engine.sessions_of(&current.user_id).await?;
    let username = auth.session.username();
    let sessions = records
        .iter()
        .filter(|record| record.parent.is_none())
        .map(|record| {
            let session = if record.id == current.id {
                SessionBody {
                    current: Some(true),
                    ..SessionBody::current(&auth.session)
                }
            } else {
                SessionBody::listed(record, username, Some(false))
            };
            let children = records
                .iter()
                .filter_map(|child| {
                    let parent = child.parent.as_ref()?;
                    (parent.id == record.id).then(|| ChildSessionBody {
                        session: SessionBody::listed(child, username, Some(false)),
                        service: &parent.audience,
                    })
                })
                .collect();
            ListedSession { session, children }
        })
        .collect();
    Ok(json(StatusCode::OK, to_json(&SessionList { sessions })))
}

/// Revokes one of the caller's sessions.
#[utoipa::path(
    delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Public session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 403, description = "`csrf_failed`: the cookie without a matching `X-CSRF-Token`, or a cross-site request", body = ProblemBody),
        (status = 404, description = "`not_found`: no such live session of the caller's", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = [], "csrf" = []), ("bearer" = []))
)]
pub async fn revoke_one(
    State(state): State<AppState>,
    Audit(audit): Audit,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let id = SessionId::parse(&id).map_err(|_| Problem::not_found("no such session"))?;
    let owner = &auth.session.record().user_id;
    state
        .engine
        .with_context(audit)
        .revoke_session_of(owner, &id)
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if id == auth.session.record().id {
        response
            .headers_mut()
            .insert(SET_COOKIE, state.http.cookies.clear_cookie());
    }
    Ok(response)
}

/// `DELETE /v1/sessions` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScopeQuery {
    /// `others` (every session but the caller's) or `all`.
    #[param(value_type = RevokeScopeName, inline)]
    pub scope: String,
}

/// The values of `scope`, for the document: the handler reads the parameter as text so an
/// unknown value gets its own message.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RevokeScopeName {
    /// Every session of the caller's but the one making the request.
    Others,
    /// Every session of the caller's.
    All,
}

/// Revokes the caller's other sessions, or all of them.
#[utoipa::path(
    delete, path = "/v1/sessions", tag = "sessions",
    params(ScopeQuery),
    responses(
        (status = 200, description = "Revoked; with `scope=all` the cookie is cleared", body = Revoked),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ProblemBody),
        (status = 403, description = "`csrf_failed`: the cookie without a matching `X-CSRF-Token`, or a cross-site request", body = ProblemBody),
        (status = 422, description = "`validation_failed`: missing or unknown scope, or an unknown parameter", body = ProblemBody),
        (status = 503, description = "`store_unavailable`, with `Retry-After`", body = ProblemBody),
    ),
    security(("cookie" = [], "csrf" = []), ("bearer" = []))
)]
pub async fn revoke_many(
    State(state): State<AppState>,
    Audit(audit): Audit,
    auth: Authenticated,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Result<Response, Problem> {
    let scope = match query.scope.as_str() {
        "others" => RevokeScope::Others,
        "all" => RevokeScope::All,
        _ => return Err(Problem::validation("scope must be \"others\" or \"all\"")),
    };
    let revoked = state
        .engine
        .with_context(audit)
        .revoke_sessions(&auth.session, scope)
        .await?;
    let mut response = json(StatusCode::OK, to_json(&Revoked { revoked }));
    if scope == RevokeScope::All {
        response
            .headers_mut()
            .insert(SET_COOKIE, state.http.cookies.clear_cookie());
    }
    Ok(response)
}
