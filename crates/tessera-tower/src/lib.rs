//! Tower/axum middleware that lets another service check Tessera's credentials in-process.
//!
//! Configured by Tessera's URL and this service's audience (plus client credentials for the
//! revocation feed), [`TesseraAuth`] discovers everything else from
//! `/.well-known/oauth-authorization-server`, verifies `Authorization: Bearer` JWTs exactly
//! as Tessera does (RFC 8725 via [`tessera_jose`]: algorithm fixed by the key, `typ`
//! `at+jwt`, `iss`, `aud` = this service, `exp`/`nbf` with leeway), refuses tokens of
//! revoked sessions, and hands the handler a typed [`Principal`].
//!
//! Requests only read memory: background tasks keep the key set (on a schedule, and on an
//! unknown `kid`, single-flight and rate-limited) and the revocation set (server-sent
//! events with `Last-Event-ID` resume, plus a snapshot from the cursor on every reconnect)
//! current. When the revocation set has not been confirmed for longer than a bound (default
//! 10 s), requests with a credential get `503` with `Retry-After` until the feed is back.
//! Invalid credentials get `401` with `WWW-Authenticate: Bearer error="invalid_token"`
//! (RFC 6750), never a reason; gRPC requests get the same answer as a `grpc-status`.
//!
//! A service routed behind Tessera's own origin can also accept the browser's session cookie
//! ([`TesseraAuthBuilder::accept_session_cookie`]) and opaque bearer session tokens
//! ([`TesseraAuthBuilder::accept_session_tokens`]): each is introspected at Tessera once
//! (RFC 7662), cached briefly by its hash, and refused as soon as the revocation feed names
//! its session; cookie-carried writes need the session's CSRF token, as on Tessera. A child
//! session (one a stateful service obtained by token exchange) carries its service's `aud`
//! and opens only that service.
//!
//! One-time operation tokens (`typ` `txntoken+jwt`, issued by token exchange for one
//! operation at one service, seconds long) are accepted only on routes guarded by
//! [`require_operation`], once: see [One-time operation tokens](#one-time-operation-tokens).
//!
//! Layout:
//! - [`TesseraAuth`], [`TesseraAuthBuilder`]: the layer and its configuration.
//! - [`TesseraAuthService`]: the service it wraps around any tower service.
//! - [`Principal`]: the extractor (`Option<Principal>` for anonymous-friendly routes).
//! - [`require_scope`], [`require_role`]: route guards answering `403 insufficient_scope`;
//!   [`require_authenticated`] for services without extractors (tonic, plain tower).
//! - [`require_operation`]: the route guard that accepts a one-time operation token once.
//! - [`ReplayGuard`], [`MemoryReplayGuard`] and, with the `redis` feature,
//!   `RedisReplayGuard`: where used one-time tokens are recorded.
//! - [`Health`]: how stale the revocation set is, for readiness probes.
//! - [`Rejection`], [`StartError`], [`FetchError`]: the answers and errors.
//!
//! # Quick start
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tessera_tower::{Principal, TesseraAuth, require_scope};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = TesseraAuth::builder("http://127.0.0.1:8080", "orders")
//!     .client_credentials("client-id", "client-secret")
//!     .build()
//!     .await?;
//! let health = auth.health();
//! let app = Router::new()
//!     .route("/orders", get(|who: Principal| async move { format!("orders of {}", who.subject()) }))
//!     .route(
//!         "/orders/export",
//!         get(|| async { "all orders" }).route_layer(require_scope("orders:export")),
//!     )
//!     .layer(auth)
//!     .route("/readyz", get(move || async move { if health.is_ready() { "ready" } else { "stale" } }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # One-time operation tokens
//!
//! A token for one operation — `refund` at the billing service — that must work once. Guard
//! the operation's route with [`require_operation`]; the layer does the rest:
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use tessera_tower::{Principal, TesseraAuth, require_operation};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = TesseraAuth::builder("http://127.0.0.1:8080", "billing")
//!     .client_credentials("client-id", "client-secret")
//!     // Several replicas? Share one guard (cargo feature `redis`):
//!     // .replay_guard(tessera_tower::RedisReplayGuard::connect("redis://127.0.0.1", "billing:used:").await?)
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route(
//!         "/refunds",
//!         post(|who: Principal| async move {
//!             format!("refund {} for {}", who.transaction_id().unwrap_or("?"), who.subject())
//!         })
//!         .route_layer(require_operation("refund")),
//!     )
//!     .layer(auth);
//! # Ok(())
//! # }
//! ```
//!
//! - The token is verified like an access token (keys, `iss`, its one `aud` = this service,
//!   `exp` with leeway, a lifetime of at most [`max_operation_token_lifetime`], its `sid`
//!   against revoked sessions, `iat` against stale users) — then, on a route guarded by
//!   `require_operation("refund")`: its operation (`scope`) must be `refund` (otherwise `403
//!   insufficient_scope`, and the token is not used up), and its `jti` is recorded in the
//!   replay guard: the first presentation passes, every later one is `401 invalid_token`.
//! - Everywhere else it is `401 invalid_token`: the [`Principal`] extractors (`Option` too)
//!   and `require_authenticated/scope/role` refuse it, and a route that asks for no caller
//!   has its answer replaced by the same `401`. A route that wants a one-time token refuses
//!   access tokens and sessions with `403 insufficient_scope`, whatever their scope.
//! - The default [`MemoryReplayGuard`] is for one process. Replicas of a service need one
//!   guard they share, or a token could be used once per replica: `RedisReplayGuard` (one
//!   `SET NX PX` per token, key prefix of your choice); Redis unreachable is `503` with
//!   `Retry-After`, never an acceptance.
//!
//! [`max_operation_token_lifetime`]: TesseraAuthBuilder::max_operation_token_lifetime

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod builder;
mod error;
mod feed;
mod fetch;
mod health;
mod keys;
mod operation;
mod principal;
mod rejection;
mod replay;
mod require;
mod session;
mod verified;

pub use auth::{ResponseFuture, TesseraAuth, TesseraAuthService};
pub use builder::TesseraAuthBuilder;
pub use error::{FetchError, StartError};
pub use health::Health;
pub use operation::{RequireOperation, RequireOperationService, require_operation};
pub use principal::Principal;
pub use rejection::Rejection;
#[cfg(feature = "redis")]
pub use replay::RedisReplayGuard;
pub use replay::{GuardError, MemoryReplayGuard, Presentation, ReplayGuard};
pub use require::{Require, RequireService, require_authenticated, require_role, require_scope};
