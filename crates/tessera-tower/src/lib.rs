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
//! its session; cookie-carried writes need the session's CSRF token, as on Tessera.
//!
//! Layout:
//! - [`TesseraAuth`], [`TesseraAuthBuilder`]: the layer and its configuration.
//! - [`TesseraAuthService`]: the service it wraps around any tower service.
//! - [`Principal`]: the extractor (`Option<Principal>` for anonymous-friendly routes).
//! - [`require_scope`], [`require_role`]: route guards answering `403 insufficient_scope`;
//!   [`require_authenticated`] for services without extractors (tonic, plain tower).
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

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod builder;
mod error;
mod feed;
mod fetch;
mod health;
mod keys;
mod principal;
mod rejection;
mod require;
mod session;
mod verified;

pub use auth::{ResponseFuture, TesseraAuth, TesseraAuthService};
pub use builder::TesseraAuthBuilder;
pub use error::{FetchError, StartError};
pub use health::Health;
pub use principal::Principal;
pub use rejection::Rejection;
pub use require::{Require, RequireService, require_authenticated, require_role, require_scope};
