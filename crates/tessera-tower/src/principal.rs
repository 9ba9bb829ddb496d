//! What a verified credential proves, as typed axum extractors.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use tessera_jose::AccessClaims;

use crate::rejection::Rejection;

/// The authenticated caller: who, in which session, with which roles and scope.
///
/// Extract it in a handler behind [`TesseraAuth`](crate::TesseraAuth); a request
/// without a valid credential is answered `401` with `WWW-Authenticate: Bearer` before the
/// handler runs. Cheap to clone (one `Arc`). Use `Option<Principal>` on routes that also
/// serve anonymous callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    inner: Arc<Identity>,
}

#[derive(Debug, PartialEq, Eq)]
struct Identity {
    subject: String,
    session_id: String,
    username: Option<String>,
    roles: Vec<String>,
    scope: Option<String>,
    token_id: Option<String>,
    issued_at: i64,
    expires_at: i64,
    audience: Vec<String>,
}

impl Principal {
    /// The user's public id (`sub`).
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The public id of the session behind the credential (`sid`).
    pub fn session_id(&self) -> &str {
        &self.inner.session_id
    }

    /// The username, when the credential carries it: session tokens (cookie or bearer) do,
    /// from introspection; Tessera's access tokens carry none today (`sub` is the stable
    /// id), so this is `None` for them.
    pub fn username(&self) -> Option<&str> {
        self.inner.username.as_deref()
    }

    /// Role names (the `roles` claim; empty for session tokens, whose introspection answer
    /// carries none).
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    /// The OAuth scope string (`scope`), space-separated, if any.
    pub fn scope(&self) -> Option<&str> {
        self.inner.scope.as_deref()
    }

    /// The token id (`jti`) of a JWT; `None` for session tokens.
    pub fn token_id(&self) -> Option<&str> {
        self.inner.token_id.as_deref()
    }

    /// When the credential was issued, unix seconds (`iat`); `0` for a session token, whose
    /// introspection answer does not carry it.
    pub fn issued_at(&self) -> i64 {
        self.inner.issued_at
    }

    /// When the credential expires, unix seconds (`exp`; for a session token, its idle
    /// expiry as of the last introspection).
    pub fn expires_at(&self) -> i64 {
        self.inner.expires_at
    }

    /// The audiences the credential names (`aud`); empty for session tokens.
    pub fn audience(&self) -> &[String] {
        &self.inner.audience
    }

    /// True when the scope lists `scope` (exact match of one space-separated entry).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope()
            .is_some_and(|granted| granted.split(' ').any(|entry| entry == scope))
    }

    /// True when `role` is one of the roles.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|held| held == role)
    }

    /// `Ok` when the scope lists `scope`, else the `403 insufficient_scope` answer.
    pub fn require_scope(&self, scope: &str) -> Result<(), Rejection> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Rejection::InsufficientScope {
                scope: scope.to_owned(),
            })
        }
    }

    /// `Ok` when `role` is one of the roles, else the `403 insufficient_scope` answer.
    pub fn require_role(&self, role: &str) -> Result<(), Rejection> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(Rejection::InsufficientScope {
                scope: role.to_owned(),
            })
        }
    }

    pub(crate) fn from_claims(claims: AccessClaims) -> Principal {
        Principal {
            inner: Arc::new(Identity {
                audience: claims.aud.iter().map(str::to_owned).collect(),
                subject: claims.sub,
                session_id: claims.sid,
                username: None,
                roles: claims.roles,
                scope: claims.scope,
                token_id: Some(claims.jti),
                issued_at: claims.iat,
                expires_at: claims.exp,
            }),
        }
    }
}

impl Principal {
    /// A session token's caller, from Tessera's introspection answer.
    pub(crate) fn from_session(
        subject: String,
        session_id: String,
        username: Option<String>,
        expires_at: i64,
    ) -> Principal {
        Principal {
            inner: Arc::new(Identity {
                subject,
                session_id,
                username,
                roles: Vec::new(),
                scope: None,
                token_id: None,
                // Introspection does not say when the session began; a session's standing is
                // kept coherent by its revocation instead (disabling revokes every session).
                issued_at: 0,
                expires_at,
                audience: Vec::new(),
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The layer inserts a principal only for a valid credential and answers invalid ones
        // itself, so absence means no credential (or no layer: then nothing is let in).
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(Rejection::MissingCredential)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}
