//! An "orders" API protected by `tessera-tower`: the example of `docs/services.md`.
//!
//! Run it against a local `tessera serve` that issues tokens for the `orders` audience:
//!
//! ```text
//! examples/orders/run.sh   # starts Tessera, registers the client, runs this service
//! ```
//!
//! or by hand, with a client from `tessera client add orders`:
//!
//! ```text
//! TESSERA__TOKEN__AUDIENCE='["tessera","orders"]' tessera serve &
//! TESSERA_CLIENT_ID=… TESSERA_CLIENT_SECRET=… cargo run -p orders-example
//! ```
//!
//! Environment: `TESSERA_URL` (default `http://127.0.0.1:8080`), `ORDERS_AUDIENCE` (default
//! `orders`), `ORDERS_BIND` (default `127.0.0.1:3000`), `TESSERA_CLIENT_ID` and
//! `TESSERA_CLIENT_SECRET` (required).

use std::process::ExitCode;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use tessera_tower::{Principal, TesseraAuth, require_role};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let variable =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let (Ok(client_id), Ok(client_secret)) = (
        std::env::var("TESSERA_CLIENT_ID"),
        std::env::var("TESSERA_CLIENT_SECRET"),
    ) else {
        eprintln!("set TESSERA_CLIENT_ID and TESSERA_CLIENT_SECRET (tessera client add orders)");
        return ExitCode::FAILURE;
    };
    let tessera = variable("TESSERA_URL", "http://127.0.0.1:8080");
    let auth = match TesseraAuth::builder(&tessera, variable("ORDERS_AUDIENCE", "orders"))
        .client_credentials(client_id, client_secret)
        .build()
        .await
    {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("could not start against {tessera}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let health = auth.health();
    let app = Router::new()
        .route("/orders", get(my_orders))
        .route(
            "/orders/all",
            get(all_orders).route_layer(require_role("admin")),
        )
        .route("/catalog", get(catalog))
        .layer(auth)
        // Readiness follows the revocation feed: a stale feed means 503s, so stop routing here.
        .route(
            "/readyz",
            get(move || async move {
                if health.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "revocation feed stale")
                }
            }),
        );
    let bind = variable("ORDERS_BIND", "127.0.0.1:3000");
    let listener = match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("could not listen on {bind}: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%bind, "orders service listening");
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("server error: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The caller's orders: any valid token for this audience.
async fn my_orders(caller: Principal) -> Json<Value> {
    Json(json!({"user": caller.subject(), "session": caller.session_id(), "orders": []}))
}

/// Everyone's orders: the `admin` role only (403 `insufficient_scope` otherwise).
async fn all_orders(caller: Principal) -> Json<Value> {
    Json(json!({"by": caller.subject(), "orders": []}))
}

/// Public, with a greeting for signed-in callers.
async fn catalog(caller: Option<Principal>) -> Json<Value> {
    Json(json!({"items": ["tea", "coffee"], "signed_in": caller.is_some()}))
}
