//! The microservice story of the seed articles, on `tessera-tower` and Tessera's token
//! exchange (RFC 8693):
//!
//! - [`billing`]: a *stateless* service. Refunds take a one-time operation token for
//!   `refund` (exchanged at Tessera seconds before, used once); listing invoices takes an
//!   access token exchanged for billing with `invoices:read`.
//! - [`cart`]: a *stateful* service. It exchanges the user's access token for a child
//!   session at Tessera and keeps it in its own `__Host-` cookie; the cart then works on that
//!   cookie alone, and ends when the user logs out at Tessera.
//!
//! `examples/story/run.sh` starts Tessera and both services with one command;
//! `crates/tessera-server/tests/story.rs` drives the whole story from outside.

pub mod billing;
pub mod cart;

use std::time::Duration;

use tessera_tower::{StartError, TesseraAuth, TesseraAuthBuilder};

/// Where a service finds Tessera and who it is there.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tessera's URL (its issuer).
    pub tessera: String,
    /// This service's registered audience (`tessera service add … --audience`).
    pub audience: String,
    /// This service's client credentials (`tessera client add …`): the revocation feed and
    /// introspection need them.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
}

impl Settings {
    /// The layer for this service, configured by `customize` before it starts.
    pub async fn auth(
        &self,
        customize: impl FnOnce(TesseraAuthBuilder) -> TesseraAuthBuilder,
    ) -> Result<TesseraAuth, StartError> {
        let builder = TesseraAuth::builder(&self.tessera, &self.audience)
            .client_credentials(&self.client_id, &self.client_secret)
            .request_timeout(Duration::from_secs(5));
        customize(builder).build().await
    }

    /// Reads `TESSERA_URL`, `<PREFIX>_AUDIENCE`, `<PREFIX>_CLIENT_ID` and
    /// `<PREFIX>_CLIENT_SECRET`.
    pub fn from_env(prefix: &str, default_audience: &str) -> Result<Settings, String> {
        let variable = |name: String| std::env::var(&name).map_err(|_| format!("set {name}"));
        Ok(Settings {
            tessera: std::env::var("TESSERA_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned()),
            audience: std::env::var(format!("{prefix}_AUDIENCE"))
                .unwrap_or_else(|_| default_audience.to_owned()),
            client_id: variable(format!("{prefix}_CLIENT_ID"))?,
            client_secret: variable(format!("{prefix}_CLIENT_SECRET"))?,
        })
    }
}

/// Serves `app` on `bind` until the process ends.
pub async fn serve(bind: &str, app: axum::Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    tracing::info!(%bind, "listening");
    axum::serve(listener, app).await
}
