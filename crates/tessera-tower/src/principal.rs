//! What a verified credential proves, as typed axum extractors.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use tessera_jose::{AccessClaims, TransactionClaims};

use crate::operation::PendingOperation;
use crate::rejection::Rejection;

/// The authenticated caller: who, in which session, with which roles and scope.
///
/// Extract it in a handler behind [`TesseraAuth`](crate::TesseraAuth); a request
/// without a valid credential is answered `401` with `WWW-Authenticate: Bearer` before the
/// handler runs. Cheap to clone (one `Arc`). Use `Option<Principal>` on routes that also
/// serve anonymous callers.
///
/// A one-time operation token becomes a `Principal` only on a route guarded by
/// [`require_operation`](crate::require_operation) for its operation, once its `jti` has
/// been recorded as used; anywhere else both extractors answer `401 invalid_token`.
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
    /// The `act` chain's subjects, outermost (current actor) first.
    actor: Vec<String>,
    /// `Some` for a one-time operation token.
    operation: Option<Operation>,
}

#[derive(Debug, PartialEq, Eq)]
struct Operation {
    name: String,
    transaction_id: String,
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

    /// The audiences the credential names (`aud`); for a session token, the audience of a
    /// child session (introspection's `aud`), empty for an ordinary session.
    pub fn audience(&self) -> &[String] {
        &self.inner.audience
    }

    /// Who acts on the user's behalf (RFC 8693 `act`): the chain's client ids, current
    /// actor first, then whoever delegated to it. Empty when the user's own client called.
    pub fn actor(&self) -> &[String] {
        &self.inner.actor
    }

    /// The operation a one-time operation token authorizes (its `scope`), e.g. `refund`;
    /// `None` for every other credential.
    pub fn operation(&self) -> Option<&str> {
        self.inner
            .operation
            .as_ref()
            .map(|operation| operation.name.as_str())
    }

    /// The transaction id of a one-time operation token (`txn`, else its `jti`); `None` for
    /// every other credential.
    pub fn transaction_id(&self) -> Option<&str> {
        self.inner
            .operation
            .as_ref()
            .map(|operation| operation.transaction_id.as_str())
    }

    /// True for a one-time operation token.
    pub fn is_one_time(&self) -> bool {
        self.inner.operation.is_some()
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
        // Verified claims: `act`, when present, was checked to be a valid chain.
        let actor = claims
            .actor()
            .ok()
            .flatten()
            .map(|actor| actor.chain().map(str::to_owned).collect())
            .unwrap_or_default();
        Principal {
            inner: Arc::new(Identity {
                audience: claims.aud.iter().map(str::to_owned).collect(),
                actor,
                operation: None,
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
    /// A one-time operation token's caller, from verified claims.
    pub(crate) fn from_transaction(claims: TransactionClaims) -> Principal {
        let actor = claims
            .act
            .as_ref()
            .map(|actor| actor.chain().map(str::to_owned).collect())
            .unwrap_or_default();
        let transaction_id = claims.transaction_id().to_owned();
        Principal {
            inner: Arc::new(Identity {
                subject: claims.sub,
                session_id: claims.sid,
                username: None,
                roles: claims.roles,
                scope: Some(claims.scope.clone()),
                token_id: Some(claims.jti),
                issued_at: claims.iat,
                expires_at: claims.exp,
                audience: vec![claims.aud],
                actor,
                operation: Some(Operation {
                    name: claims.scope,
                    transaction_id,
                }),
            }),
        }
    }

    /// A session token's caller, from Tessera's introspection answer; `audience` is a child
    /// session's.
    pub(crate) fn from_session(
        subject: String,
        session_id: String,
        username: Option<String>,
        expires_at: i64,
        audience: Vec<String>,
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
                audience,
                actor: Vec::new(),
                operation: None,
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The layer inserts a principal only for a valid credential and answers invalid ones
        // itself, so absence means no credential (or no layer: then nothing is let in) — or
        // a one-time token no `require_operation` accepted, which is refused.
        Principal::of(&parts.extensions)?.ok_or(Rejection::MissingCredential)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Rejection;

    /// `None` without a credential; `401 invalid_token` for a one-time operation token that
    /// no [`require_operation`](crate::require_operation) accepted, rather than serving it
    /// as anonymous.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Principal::of(&parts.extensions)
    }
}

impl Principal {
    /// The request's caller as the layer (and any `require_operation`) left it: a pending
    /// one-time token is an invalid credential here.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> Result<Option<Principal>, Rejection> {
        if extensions.get::<PendingOperation>().is_some() {
            return Err(Rejection::InvalidToken);
        }
        Ok(extensions.get::<Principal>().cloned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tessera_jose::{Actor, Audience};

    use super::*;

    #[test]
    fn an_access_token_s_actor_chain_is_listed_current_actor_first() {
        let mut claims = AccessClaims {
            iss: "https://auth.example".into(),
            sub: "user-1".into(),
            aud: Audience::One("billing".into()),
            exp: 2_000_000_000,
            iat: 1_700_000_000,
            nbf: None,
            auth_time: None,
            jti: "token-1".into(),
            sid: "session-1".into(),
            scope: Some("invoices:read".into()),
            roles: vec![],
            client_id: None,
            extra: Default::default(),
        };
        let plain = Principal::from_claims(claims.clone());
        assert!(plain.actor().is_empty());
        assert_eq!((plain.operation(), plain.transaction_id()), (None, None));
        assert!(!plain.is_one_time());

        claims.set_actor(Some(&Actor::new("gateway").after(Actor::new("cart"))));
        let delegated = Principal::from_claims(claims);
        assert_eq!(delegated.actor(), ["gateway", "cart"]);
        assert!(!delegated.is_one_time());
    }
}
