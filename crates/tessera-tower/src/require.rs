//! Route guards: a caller at all (`401` otherwise), or a scope or a role the caller must
//! hold, answered `403 insufficient_scope` otherwise (RFC 6750 §3.1). A one-time operation
//! token is no caller here (`401 invalid_token`) unless
//! [`require_operation`](crate::require_operation) accepted it first.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use futures_util::future::{Either, Ready, ready};
use tower::{Layer, Service};

use crate::principal::Principal;
use crate::rejection::Rejection;

/// A layer that lets a request through only when its [`Principal`] holds a scope or a role.
/// Put it on routes with `.route_layer(require_scope("orders:write"))`, inside
/// [`TesseraAuth`](crate::TesseraAuth). Without a principal the answer is `401`; a one-time
/// operation token that no [`require_operation`](crate::require_operation) accepted is
/// `401 invalid_token`.
#[derive(Debug, Clone)]
pub struct Require {
    need: Arc<Need>,
}

#[derive(Debug)]
enum Need {
    Principal,
    Scope(String),
    Role(String),
}

/// Requires a valid credential, whatever it grants: for services without axum extractors
/// (a tonic gRPC server, a plain tower service), where nothing else would refuse a call
/// that carries no credential.
pub fn require_authenticated() -> Require {
    Require {
        need: Arc::new(Need::Principal),
    }
}

/// Requires `scope` in the token's `scope` claim.
pub fn require_scope(scope: impl Into<String>) -> Require {
    Require {
        need: Arc::new(Need::Scope(scope.into())),
    }
}

/// Requires `role` in the token's `roles` claim.
pub fn require_role(role: impl Into<String>) -> Require {
    Require {
        need: Arc::new(Need::Role(role.into())),
    }
}

impl Require {
    fn check(&self, extensions: &axum::http::Extensions) -> Result<(), Rejection> {
        let principal = Principal::of(extensions)?.ok_or(Rejection::MissingCredential)?;
        match &*self.need {
            Need::Principal => Ok(()),
            Need::Scope(scope) => principal.require_scope(scope),
            Need::Role(role) => principal.require_role(role),
        }
    }
}

impl<S> Layer<S> for Require {
    type Service = RequireService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            require: self.clone(),
        }
    }
}

/// The service [`Require`] wraps around a route.
#[derive(Debug, Clone)]
pub struct RequireService<S> {
    inner: S,
    require: Require,
}

impl<S, B, ResBody> Service<Request<B>> for RequireService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<ResBody>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.require.check(request.extensions()) {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(rejection) => Either::Left(ready(Ok(rejection.to_response_for(request.headers())))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::http::StatusCode;
    use tessera_jose::{AccessClaims, Audience, TransactionClaims};
    use tower::ServiceExt as _;

    use super::*;
    use crate::operation::PendingOperation;
    use crate::replay::MemoryReplayGuard;

    fn one_time(operation: &str) -> Principal {
        Principal::from_transaction(TransactionClaims {
            iss: "https://auth.example".into(),
            sub: "user-1".into(),
            aud: "orders".into(),
            exp: 2_000_000_000,
            iat: 1_700_000_000,
            nbf: None,
            jti: "txn-1".into(),
            txn: None,
            sid: "session-1".into(),
            scope: operation.into(),
            auth_time: None,
            roles: vec!["admin".into()],
            act: None,
            rctx: None,
            extra: Default::default(),
        })
    }

    fn principal(scope: Option<&str>, roles: &[&str]) -> Principal {
        Principal::from_claims(AccessClaims {
            iss: "https://auth.example".into(),
            sub: "user-1".into(),
            aud: Audience::One("orders".into()),
            exp: 2_000_000_000,
            iat: 1_700_000_000,
            nbf: None,
            auth_time: None,
            jti: "token-1".into(),
            sid: "session-1".into(),
            scope: scope.map(str::to_owned),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            client_id: None,
            extra: Default::default(),
        })
    }

    async fn status(require: Require, principal: Option<Principal>) -> (StatusCode, String) {
        let inner = tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(String::from("ok")))
        });
        let mut request = Request::new(());
        if let Some(principal) = principal {
            if principal.is_one_time() {
                request.extensions_mut().insert(PendingOperation {
                    principal,
                    guard: Arc::new(MemoryReplayGuard::default()),
                    remember_until: i64::MAX,
                    judged: Arc::default(),
                });
            } else {
                request.extensions_mut().insert(principal);
            }
        }
        let response = require.layer(inner).oneshot(request).await.unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (response.status(), challenge)
    }

    #[tokio::test]
    async fn a_scope_or_role_held_passes_and_one_missing_is_insufficient_scope() {
        let reader = principal(Some("orders:read orders:write"), &["clerk"]);
        assert_eq!(
            status(require_scope("orders:write"), Some(reader.clone()))
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            status(require_role("clerk"), Some(reader.clone())).await.0,
            StatusCode::OK
        );
        assert_eq!(
            status(require_scope("orders"), Some(reader.clone())).await,
            (
                StatusCode::FORBIDDEN,
                r#"Bearer error="insufficient_scope", scope="orders""#.to_owned()
            ),
            "scopes match whole entries only"
        );
        assert_eq!(
            status(require_role("admin"), Some(reader)).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(require_scope("orders:read"), Some(principal(None, &[])))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(require_scope("orders:read"), None).await,
            (StatusCode::UNAUTHORIZED, "Bearer".to_owned())
        );
        assert_eq!(
            status(require_authenticated(), Some(principal(None, &[])))
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            status(require_authenticated(), None).await,
            (StatusCode::UNAUTHORIZED, "Bearer".to_owned())
        );
    }

    #[tokio::test]
    async fn a_pending_one_time_token_satisfies_no_guard_even_with_the_scope_or_role() {
        let invalid = (
            StatusCode::UNAUTHORIZED,
            r#"Bearer error="invalid_token""#.to_owned(),
        );
        for require in [
            require_authenticated(),
            require_scope("refund"),
            require_role("admin"),
        ] {
            assert_eq!(
                status(require.clone(), Some(one_time("refund"))).await,
                invalid,
                "{require:?}"
            );
        }
    }
}
