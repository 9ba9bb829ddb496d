//! The baselines `bench/http.sh` and `bench/jwt-fresh.sh` measure Tessera against.
//!
//! Run: `cargo run --release -p tessera-bench-hello -- 127.0.0.1:8081 [MODE]`
//!
//! - `axum-serve` (default): a bare "hello world" on the stock `axum::serve` (HTTP/1 and
//!   HTTP/2 auto-detection, per-connection graceful-shutdown plumbing).
//! - `http1`: the same router behind the accept loop Tessera itself uses (HTTP/1 only,
//!   `TCP_NODELAY`), so the two servers differ only in what they do per request.
//! - `jwt JWKS_FILE ISSUER AUDIENCE`: the plain way to check a JWT — axum::serve plus
//!   `jsonwebtoken` (aws-lc backend) verifying `Authorization: Bearer` on `GET /v1/session`
//!   with the first EdDSA key of a JWK Set, checking `iss`, `aud` and `exp`. No revocation,
//!   no cache: what a service that trusts JWTs blindly does.
//! - `redis-getex REDIS_URL`: the least a Redis-backed session check can do — axum::serve plus
//!   one `GETEX hello:session:<cookie> PX 1800000` per `GET /v1/session` (sliding expiry) on
//!   a multiplexed connection, answering the stored value, or 401 if there is none.

#![forbid(unsafe_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let mode = args.next().unwrap_or_else(|| "axum-serve".to_owned());
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    match mode.as_str() {
        "axum-serve" => axum::serve(listener, app).await,
        "http1" => loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let app = app.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                app.clone().oneshot(request.map(Body::new))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        },
        "jwt" => {
            let (Some(jwks), Some(issuer), Some(audience)) =
                (args.next(), args.next(), args.next())
            else {
                return Err(std::io::Error::other(
                    "usage: jwt JWKS_FILE ISSUER AUDIENCE",
                ));
            };
            let verifier = Verifier::new(&std::fs::read(jwks)?, &issuer, &audience)?;
            let app = Router::new()
                .route("/v1/session", get(session))
                .with_state(Arc::new(verifier));
            axum::serve(listener, app).await
        }
        "redis-getex" => {
            let url = args
                .next()
                .ok_or_else(|| std::io::Error::other("usage: redis-getex REDIS_URL"))?;
            let client = redis::Client::open(url).map_err(std::io::Error::other)?;
            let connection = redis::aio::ConnectionManager::new(client)
                .await
                .map_err(std::io::Error::other)?;
            let app = Router::new()
                .route("/v1/session", get(getex))
                .with_state(connection);
            axum::serve(listener, app).await
        }
        other => Err(std::io::Error::other(format!(
            "unknown mode {other:?}; use axum-serve, http1, jwt or redis-getex"
        ))),
    }
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
        let mut validation = Validation::new(Algorithm::EdDSA);
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

#[derive(Serialize)]
struct SessionBody<'a> {
    user_id: &'a str,
    session_id: &'a str,
}

async fn session(
    State(verifier): State<Arc<Verifier>>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, StatusCode> {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let data = jsonwebtoken::decode::<Claims>(token, &verifier.key, &verifier.validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    let body = SessionBody {
        user_id: &data.claims.sub,
        session_id: &data.claims.sid,
    };
    serde_json::to_value(&body)
        .map(axum::Json)
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

async fn getex(
    State(mut redis): State<redis::aio::ConnectionManager>,
    headers: HeaderMap,
) -> Result<Vec<u8>, StatusCode> {
    let token = headers
        .get("cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("__Host-tessera_session="))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let value: Option<Vec<u8>> = redis::cmd("GETEX")
        .arg(format!("hello:session:{token}"))
        .arg("PX")
        .arg(1_800_000)
        .query_async(&mut redis)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    value.ok_or(StatusCode::UNAUTHORIZED)
}
