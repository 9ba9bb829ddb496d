//! Route guards: a scope or a role the caller must hold, answered `403 insufficient_scope`
//! otherwise (RFC 6750 §3.1).

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use futures_util::future::{Either, Ready, ready};
use tower::{Layer, Service};

use crate::principal::Principal;
use crate::rejection::Rejection;

/// A layer that lets a request through only when its [`Principal`] holds a scope or a role.
/// Put it on routes with `.route_layer(require_scope("orders:write"))`, inside
/// [`TesseraAuth`](crate::TesseraAuth). Without a principal the answer is `401`.
#[derive(Debug, Clone)]
pub struct Require {
    need: Arc<Need>,
}

#[derive(Debug)]
enum Need {
    Scope(String),
    Role(String),
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
    fn check(&self, principal: Option<&Principal>) -> Result<(), Rejection> {
        let principal = principal.ok_or(Rejection::MissingCredential)?;
        match &*self.need {
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
        match self.require.check(request.extensions().get::<Principal>()) {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(rejection) => Either::Left(ready(Ok(rejection.to_response()))),
        }
    }
}
