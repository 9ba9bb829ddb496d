//! What every handler can reach: the engine, the token machinery and the HTTP settings,
//! built once from the configuration.

use std::sync::Arc;

use axum::body::Bytes;
use tessera_core::Engine;
use tessera_tokens::Tokens;

use crate::config::ProxyRange;
use crate::csrf::OriginPolicy;
use crate::metrics::Metrics;
use crate::routes;
use crate::{Config, Services, auth, csrf};

/// What every handler can reach, behind one shared allocation: axum clones the state for
/// every request, once per layer of routing it passes, so a clone must be a reference-count
/// increment and not a copy of the settings' strings.
#[derive(Debug, Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    /// Shares `state` between the handlers.
    pub fn new(state: SharedState) -> Self {
        AppState(Arc::new(state))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct SharedState {
    /// The session engine.
    pub engine: Engine,
    /// HTTP-level settings.
    pub http: HttpSettings,
    /// Access-token issuing and verification.
    pub tokens: Tokens,
    /// How often the revocation stream polls the log.
    pub revocation_poll: std::time::Duration,
    /// The OpenAPI document, serialized once.
    pub openapi: Bytes,
    /// This instance's metrics and who may read them.
    pub metrics: Metrics,
}

/// Settings that only matter to the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The session cookie.
    pub cookies: auth::CookieSettings,
    /// Origins allowed to make credentialed unsafe requests.
    pub origins: csrf::OriginPolicy,
    /// Origins allowed to log in with the token transport: `origins` plus
    /// `server.cors_origins` (no cookie is set, so a cross-origin page gains no ambient
    /// credential).
    pub token_origins: csrf::OriginPolicy,
    /// Whether `POST /v1/users` is open.
    pub registration: bool,
    /// Proxies whose `Forwarded` or `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ProxyRange>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Lifetime of one-time operation tokens (`token.one_time_ttl`).
    pub one_time_ttl: std::time::Duration,
}

/// What the handlers share, for `config` over the engine and tokens.
pub(crate) fn build(config: &Config, services: Services) -> AppState {
    let own_origin = config
        .server
        .public_url
        .as_ref()
        .map(|url| url.origin().clone());
    let http = HttpSettings {
        cookies: crate::danger::cookie_settings(config),
        origins: OriginPolicy::new(own_origin.clone(), config.server.allowed_origins.clone()),
        token_origins: OriginPolicy::new(
            own_origin,
            [
                &config.server.allowed_origins[..],
                &config.server.cors_origins[..],
            ]
            .concat(),
        ),
        registration: config.auth.registration,
        trusted_proxies: config.server.trusted_proxies.clone(),
        max_body_bytes: config.server.max_body_bytes,
        one_time_ttl: config.token.one_time_ttl,
    };
    let openapi = Bytes::from(routes::document(config).to_json().unwrap_or_default());
    AppState::new(SharedState {
        engine: services.engine,
        tokens: services.tokens,
        revocation_poll: config.sessions.revocation_poll,
        http,
        openapi,
        metrics: services.metrics,
    })
}
