//! `POST /v1/token` with `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`
//! (RFC 8693): a user's session, proved by an access token, a bearer session token or the
//! session cookie, exchanged for
//!
//! - an access token bound to one registered service (`aud` exactly that service, `scope`
//!   at most what the user and the service allow, `sid` the parent session);
//! - a one-time operation token (`typ` `txntoken+jwt`, one operation, seconds long), which
//!   `tessera-tower`'s `require_operation` accepts once;
//! - a child session for a stateful service, from an access token issued for it.
//!
//! A registered client may act for the user by sending its credentials as `actor_token`;
//! the token then carries `act` (RFC 8693 §4.1). Errors are RFC 8693 / RFC 6749 JSON.

#![allow(clippy::result_large_err)]

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use tessera_core::{
    Actor as AuditActor, AuditContext, AuditKind, Error, ServiceRecord, SessionToken, ValidSession,
    grant_scopes,
};
use tessera_jose::Actor;
use tessera_tokens::{
    ACCESS_TOKEN_TYPE_URN, AccessError, CLIENT_CREDENTIALS_TYPE_URN, ExchangeGrant, JWT_TYPE_URN,
    REFRESH_TOKEN_TYPE_URN, SESSION_COOKIE_TYPE_URN, SESSION_TYPE_URN, Signed, TXN_TOKEN_TYPE_URN,
    actor_claim,
};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::presented_token;
use crate::body::{json, to_json};
use crate::csrf::CSRF_HEADER;
use crate::errors::{OAuthError, no_store};
use crate::routes::tokens::TokenRequest;

/// The grant type of RFC 8693.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A token-exchange answer (RFC 8693 §2.2.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeResponse {
    /// The issued token: a JWT, or for a child session its opaque session token.
    pub access_token: String,
    /// `urn:ietf:params:oauth:token-type:access_token`,
    /// `urn:ietf:params:oauth:token-type:txn_token` or
    /// `urn:tessera:params:oauth:token-type:session`.
    pub issued_token_type: &'static str,
    /// `Bearer` for an access token; `N_A` for a one-time token or a child session (RFC
    /// 8693: not an OAuth access token).
    pub token_type: &'static str,
    /// Seconds until it expires (a child session: its absolute expiry; it also ends after
    /// the idle timeout without use, and with its parent).
    pub expires_in: i64,
    /// The scopes granted, space-separated, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A child session only: its CSRF token, for the service to demand on cookie-carried
    /// writes as Tessera does (`tessera-tower` compares it with what introspection says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// What the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    Access,
    OneTime,
    ChildSession,
}

/// The subject: the session it proves and, for an access token, its audience and `act`.
struct Subject {
    session: ValidSession,
    /// The subject access token's audiences, `None` for a session token or cookie.
    audiences: Option<Vec<String>>,
    act: Option<Actor>,
}

/// A refusal is its HTTP answer, built where the reason is known. Returned by value: the
/// error path is cold and only ever turned into the response.
type Refusal = Response;

fn refuse(status: StatusCode, error: &'static str, description: &'static str) -> Refusal {
    OAuthError::response(status, error, description)
}

fn invalid_grant() -> Refusal {
    refuse(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the subject token is invalid, expired or revoked",
    )
}

/// Answers a token-exchange request whose parameters were read already.
pub(crate) async fn exchange(
    state: &AppState,
    audit: AuditContext,
    headers: &HeaderMap,
    parameters: TokenRequest,
) -> Response {
    match exchange_inner(state, audit, headers, parameters).await {
        Ok(answer) => {
            let mut response = json(StatusCode::OK, to_json(&answer));
            no_store(response.headers_mut());
            response
        }
        Err(refusal) => refusal,
    }
}

async fn exchange_inner(
    state: &AppState,
    audit: AuditContext,
    headers: &HeaderMap,
    parameters: TokenRequest,
) -> Result<ExchangeResponse, Refusal> {
    if parameters.refresh_token.is_some() {
        return Err(OAuthError::invalid_request(
            "refresh_token is not a token-exchange parameter",
        ));
    }
    let requested = match parameters.requested_token_type.as_deref() {
        None | Some(ACCESS_TOKEN_TYPE_URN | JWT_TYPE_URN) => Requested::Access,
        Some(TXN_TOKEN_TYPE_URN) => Requested::OneTime,
        Some(SESSION_TYPE_URN) => Requested::ChildSession,
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "requested_token_type must be access_token, jwt, txn_token or Tessera's session",
            ));
        }
    };
    let target = target_audience(&parameters)?;
    let services = state
        .engine
        .services()
        .await
        .map_err(OAuthError::from_engine)?;
    let actor = actor(state, &parameters).await?;
    let subject = subject(state, headers, &parameters, &services).await?;
    let Some(service) = services.iter().find(|service| service.audience == target) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "no service is registered for this audience",
        ));
    };
    let record = subject.session.record();
    let standing = state
        .engine
        .standing_for_exchange(&record.user_id)
        .await
        .map_err(OAuthError::from_engine)?;
    let event = state
        .engine
        .with_context(audit.clone())
        .audit_event(AuditKind::TokenExchanged)
        .actor(match &actor {
            Some(client_id) => AuditActor::Client(client_id.clone()),
            None => AuditActor::User(record.user_id.clone()),
        })
        .user(&record.user_id)
        .session(&record.id)
        .detail("service", &service.name);

    if requested == Requested::ChildSession {
        // JWT → session: the service presents the access token it was given.
        if subject
            .audiences
            .as_ref()
            .is_none_or(|audiences| audiences.len() != 1 || audiences[0] != service.audience)
        {
            return Err(OAuthError::invalid_request(
                "a child session is exchanged from an access token issued for that service",
            ));
        }
        if parameters.scope.is_some() || actor.is_some() {
            return Err(OAuthError::invalid_request(
                "a child session takes neither scope nor actor_token",
            ));
        }
        let (token, child) = state
            .engine
            .create_child_session(&subject.session, service)
            .await
            .map_err(OAuthError::from_engine)?;
        state
            .engine
            .record_audit(
                event
                    .detail("issued", "child_session")
                    .detail("child", &child.id),
            )
            .await;
        let now = state.engine.clock().now();
        return Ok(ExchangeResponse {
            access_token: token.encode(),
            issued_token_type: SESSION_TYPE_URN,
            token_type: "N_A",
            expires_in: (child.expires_at.unix_millis() - now.unix_millis()).div_euclid(1000),
            scope: None,
            csrf_token: Some(token.csrf_token().encode()),
        });
    }

    let scopes = grant_scopes(service, &standing, parameters.scope.as_deref())
        .map_err(|rejection| OAuthError::from_engine(Error::Exchange(rejection)))?;
    let kind = match requested {
        Requested::OneTime => {
            let asked = parameters.scope.as_deref().map_or(0, |scope| {
                scope.split(' ').filter(|s| !s.is_empty()).count()
            });
            if asked != 1 || scopes.len() != 1 {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "a one-time token needs exactly one operation in scope",
                ));
            }
            Signed::OneTime {
                lifetime: state.http.one_time_ttl,
            }
        }
        _ => Signed::Access,
    };
    let act = match &actor {
        Some(client_id) => Some(
            actor_claim(client_id, subject.act.as_ref())
                .ok_or_else(|| OAuthError::invalid_request("the delegation chain is too deep"))?,
        ),
        // Without a new actor, a delegated subject stays delegated.
        None => subject.act.clone(),
    };
    let signed = state
        .tokens
        .sign_exchanged(ExchangeGrant {
            session: &subject.session,
            standing: &standing,
            service,
            scopes: &scopes,
            act,
            request_ip: audit.ip.map(|ip| ip.to_string()),
            kind,
        })
        .await
        .map_err(OAuthError::from_issue)?;
    let (issued_token_type, token_type, issued) = match kind {
        Signed::Access => (ACCESS_TOKEN_TYPE_URN, "Bearer", "access_token"),
        Signed::OneTime { .. } => (TXN_TOKEN_TYPE_URN, "N_A", "one_time_token"),
    };
    state
        .engine
        .record_audit(
            event
                .detail("issued", issued)
                .detail("jti", &signed.token_id)
                .detail("scope", scopes.join(" ")),
        )
        .await;
    Ok(ExchangeResponse {
        access_token: signed.token,
        issued_token_type,
        token_type,
        expires_in: signed.expires_in,
        scope: (!scopes.is_empty()).then(|| scopes.join(" ")),
        csrf_token: None,
    })
}

/// The one target service: `audience` or `resource` (the same value if both).
fn target_audience(parameters: &TokenRequest) -> Result<String, Refusal> {
    match (&parameters.audience, &parameters.resource) {
        (Some(audience), Some(resource)) if audience != resource => {
            Err(OAuthError::invalid_request(
                "audience and resource name different services; exchange for one at a time",
            ))
        }
        (Some(target), _) | (None, Some(target)) => Ok(target.clone()),
        (None, None) => Err(OAuthError::invalid_request(
            "audience (or resource) naming a registered service is required",
        )),
    }
}

/// The acting client, when `actor_token` carries a registered client's credentials.
async fn actor(state: &AppState, parameters: &TokenRequest) -> Result<Option<String>, Refusal> {
    let (token, token_type) = match (&parameters.actor_token, &parameters.actor_token_type) {
        (None, None) => return Ok(None),
        (Some(token), Some(token_type)) => (token, token_type),
        _ => {
            return Err(OAuthError::invalid_request(
                "actor_token and actor_token_type go together",
            ));
        }
    };
    if token_type != CLIENT_CREDENTIALS_TYPE_URN {
        // Delegation is for registered (confidential) clients only: an actor that cannot
        // prove a client's credentials is a public client.
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "only a registered client, by its client credentials, may act for a user",
        ));
    }
    let Some((id, secret)) = token.split_once(':') else {
        return Err(OAuthError::invalid_request(
            "actor_token must be client_id:client_secret",
        ));
    };
    match state.engine.authenticate_client(id, secret).await {
        Ok(client) => Ok(Some(client.id)),
        Err(error) => Err(OAuthError::from_engine(error)),
    }
}

/// Proves the subject: an access token (issued for this server or a registered service), a
/// bearer session token, or the request's session cookie with its CSRF token.
async fn subject(
    state: &AppState,
    headers: &HeaderMap,
    parameters: &TokenRequest,
    services: &[ServiceRecord],
) -> Result<Subject, Refusal> {
    let token_type = parameters
        .subject_token_type
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("subject_token_type is required"))?;
    match token_type {
        ACCESS_TOKEN_TYPE_URN | JWT_TYPE_URN => {
            let jwt = parameters
                .subject_token
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
            let mut audiences = state.tokens.audiences().to_vec();
            audiences.extend(services.iter().map(|service| service.audience.clone()));
            let claims = state
                .tokens
                .verify_subject(jwt, audiences)
                .map_err(|_| invalid_grant())?;
            let session = match state.tokens.session_for_claims(&claims).await {
                Ok(session) => session,
                Err(AccessError::Engine(
                    error @ (Error::Store(_) | Error::Busy | Error::Hashing(_)),
                )) => return Err(OAuthError::from_engine(error)),
                Err(_) => return Err(invalid_grant()),
            };
            Ok(Subject {
                session,
                audiences: Some(claims.aud.iter().map(str::to_owned).collect()),
                act: claims.actor().map_err(|_| invalid_grant())?,
            })
        }
        SESSION_TYPE_URN => {
            let presented = parameters
                .subject_token
                .as_deref()
                .ok_or_else(|| OAuthError::invalid_request("subject_token is required"))?;
            let token = SessionToken::parse(presented).map_err(|_| invalid_grant())?;
            Ok(Subject {
                session: validate(state, &token).await?,
                audiences: None,
                act: None,
            })
        }
        SESSION_COOKIE_TYPE_URN => {
            if parameters.subject_token.is_some() {
                return Err(OAuthError::invalid_request(
                    "with the session cookie as subject, subject_token is omitted",
                ));
            }
            let Ok(Some((token, crate::auth::Carrier::Cookie))) =
                presented_token(headers, &state.http.cookies.name)
            else {
                return Err(invalid_grant());
            };
            // A cookie-authenticated unsafe request: where it came from, and the session's
            // CSRF token, exactly as for every other one.
            let csrf = headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok());
            let same_site = state.http.origins.check(headers).is_ok();
            if !same_site || !csrf.is_some_and(|csrf| token.verify_csrf(csrf)) {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "invalid_request",
                    "a session-cookie subject needs a same-origin request with X-CSRF-Token",
                ));
            }
            Ok(Subject {
                session: validate(state, &token).await?,
                audiences: None,
                act: None,
            })
        }
        REFRESH_TOKEN_TYPE_URN => Err(OAuthError::invalid_request(
            "a refresh token cannot be exchanged; use grant_type=refresh_token",
        )),
        _ => Err(OAuthError::invalid_request(
            "subject_token_type must be access_token, jwt, or Tessera's session or session_cookie",
        )),
    }
}

async fn validate(state: &AppState, token: &SessionToken) -> Result<ValidSession, Refusal> {
    match state.engine.validate(token).await {
        Ok(session) => Ok(session),
        Err(Error::Unauthenticated | Error::SessionExpired) => Err(invalid_grant()),
        Err(other) => Err(OAuthError::from_engine(other)),
    }
}
