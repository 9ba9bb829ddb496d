//! `examples/orders`' `GET /orders` behind `jwt-authorizer` (axum 0.7): the key set fetched
//! from Tessera's `jwks_uri`, `iss` and `aud` checked, every request verified (no cache of
//! verified tokens, no revocations). A baseline for `bench/tower.sh`.
//!
//! Run: `cargo run --release --manifest-path bench/tower-authorizer/Cargo.toml -- ADDRESS JWKS_URL ISSUER AUDIENCE`

#![forbid(unsafe_code)]

use axum::routing::get;
use axum::{Json, Router};
use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, jwks_url, issuer, audience] = args.as_slice() else {
        return Err("usage: ADDRESS JWKS_URL ISSUER AUDIENCE".into());
    };
    let authorizer = JwtAuthorizer::<Claims>::from_jwks_url(jwks_url)
        .validation(Validation::new().iss(&[issuer]).aud(&[audience]))
        .build()
        .await?;
    let app = Router::new()
        .route("/orders", get(orders))
        .layer(authorizer.into_layer());
    let listener = tokio::net::TcpListener::bind(address).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn orders(JwtClaims(caller): JwtClaims<Claims>) -> Json<Value> {
    Json(json!({"user": caller.sub, "session": caller.sid, "orders": []}))
}
