//! The stateless billing service: one-time `refund` tokens, access tokens for invoices.

use axum::Json;
use axum::Router;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tessera_tower::{Principal, TesseraAuth, require_operation, require_scope};

/// The billing API behind `auth` (built for billing's audience):
///
/// - `POST /refunds`: a one-time operation token for `refund`, accepted once.
/// - `POST /invoices/void`: a one-time token for `void_invoice` (a `refund` token is refused
///   here, and stays usable for its own route).
/// - `GET /invoices`: an access token for billing carrying `invoices:read`.
pub fn app(auth: TesseraAuth) -> Router {
    Router::new()
        .route(
            "/refunds",
            post(refund).route_layer(require_operation("refund")),
        )
        .route(
            "/invoices/void",
            post(void_invoice).route_layer(require_operation("void_invoice")),
        )
        .route(
            "/invoices",
            get(invoices).route_layer(require_scope("invoices:read")),
        )
        .layer(auth)
}

async fn refund(caller: Principal) -> Json<Value> {
    Json(json!({
        "refunded_for": caller.subject(),
        "transaction": caller.transaction_id(),
        "acting": caller.actor(),
    }))
}

async fn void_invoice(caller: Principal) -> Json<Value> {
    Json(json!({"voided_for": caller.subject(), "transaction": caller.transaction_id()}))
}

async fn invoices(caller: Principal) -> Json<Value> {
    Json(json!({"user": caller.subject(), "invoices": []}))
}
