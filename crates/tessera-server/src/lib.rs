//! Tessera's HTTP server: the JSON API over the session engine, its configuration, and the
//! `tessera` command-line binary.
//!
//! # Layout
//!
//! - [`config`]: `tessera.toml` + `TESSERA__SECTION__KEY` + flags.
//! - `services`: [`open`] — the stores the configuration names, the engine over them and
//!   the token machinery (`tessera-tokens`) beside it.
//! - `state`: [`AppState`], what every handler can reach.
//! - [`server`]: the accept loop (takes its listener and shutdown signal as arguments);
//!   `jobs`: the background jobs it runs (revocation log, purge, key reload and rotation).
//! - [`routes`]: the JSON API handlers and the OpenAPI document they generate; `pages`: the
//!   HTML pages and assets, mounted beside them.
//! - [`audit`]: the request's audit context (address, user agent) for the engine's events.
//! - [`auth`]: session cookie / bearer credential extraction and the cookie itself;
//!   [`csrf`]: `Origin` / `Sec-Fetch-Site` checks (the CSRF token lives in the core).
//! - [`metrics`]: `GET /metrics` — the series each instance counts, and the scrape.
//! - [`problem`] (`application/problem+json`) and [`errors`]: every domain error as HTTP —
//!   the one place statuses are decided, for the API and the OAuth endpoints alike.
//!
//! # Quick start
//!
//! ```no_run
//! use tessera_server::{Config, open, server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load(None)?;
//! let services = open(&config).await?;
//! let listener = tokio::net::TcpListener::bind(config.server.bind).await?;
//! server::serve(listener, &config, services, async {
//!     tokio::signal::ctrl_c().await.ok();
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod danger;
mod data_files;
pub mod errors;
pub mod extract;
mod jobs;
pub mod metrics;
mod pages;
pub mod problem;
mod refresh_cookie;
pub mod routes;
pub mod server;
mod services;
mod state;

pub use config::{Config, ConfigError};
pub use services::{Services, StartError, engine_config, open, open_with_clock};
pub use state::{AppState, HttpSettings, SharedState};
