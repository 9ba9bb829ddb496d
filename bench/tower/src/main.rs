//! The orders service's `GET /orders` without the layer, for `bench/tower.sh`: the same route
//! and the same JSON as `examples/orders`, so only the authentication differs.
//!
//! Run: `cargo run --release -p tessera-bench-tower -- ADDRESS MODE`
//!
//! - `none`: no authentication at all (the ceiling).
//! - `jsonwebtoken JWKS_FILE ISSUER AUDIENCE`: the plain way to check a JWT — `jsonwebtoken`
//!   (aws-lc backend) verifying `Authorization: Bearer` on every request with the first key
//!   of a JWK Set, checking `iss`, `aud` and `exp`. No cache, no revocations.

#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(mode)) = (args.next(), args.next()) else {
        return Err(std::io::Error::other("usage: ADDRESS none|jsonwebtoken …"));
    };
    let listener = tokio::net::TcpListener::bind(&address).await?;
    match mode.as_str() {
        "none" => {
            let app = Router::new().route("/orders", get(anonymous_orders));
            axum::serve(listener, app).await
        }
        "jsonwebtoken" => {
            let (Some(jwks), Some(issuer), Some(audience)) =
                (args.next(), args.next(), args.next())
            else {
                return Err(std::io::Error::other(
                    "usage: ADDRESS jsonwebtoken JWKS_FILE ISSUER AUDIENCE",
                ));
            };
            let verifier = Verifier::new(&std::fs::read(jwks)?, &issuer, &audience)?;
            let app = Router::new()
                .route("/orders", get(verified_orders))
                .with_state(Arc::new(verifier));
            axum::serve(listener, app).await
        }
        other => Err(std::io::Error::other(format!("unknown mode {other:?}"))),
    }
}

/// `examples/orders`' answer, for a caller nobody checked.
async fn anonymous_orders() -> Json<Value> {
    Json(json!({"user": "anonymous", "session": "none", "orders": []}))
}

struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    fn new(jwks: &[u8], issuer: &str, audience: &str) -> std::io::Result<Verifier> {
        let set: JwkSet = serde_json::from_slice(jwks).map_err(std::io::Error::other)?;
        let jwk = set
            .keys
            .first()
            .ok_or_else(|| std::io::Error::other("the JWK Set is empty"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(std::io::Error::other)?;
        // The algorithm comes from the key (RFC 8725), never from the token.
        let algorithm = jwk
            .common
            .key_algorithm
            .ok_or_else(|| std::io::Error::other("the key names no algorithm"))?
            .to_string()
            .parse()
            .map_err(std::io::Error::other)?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        Ok(Verifier { key, validation })
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    sid: String,
}

/// `examples/orders`' answer after a plain signature and claims check.
async fn verified_orders(
    State(verifier): State<Arc<Verifier>>,
    headers: HeaderMap,
) -> Result<Json<Value>, StatusCode> {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let data = jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    Ok(Json(
        json!({"user": data.claims.sub, "session": data.claims.sid, "orders": []}),
    ))
}
