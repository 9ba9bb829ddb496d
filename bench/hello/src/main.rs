//! A bare axum "hello world": the ceiling `bench/http.sh` measures Tessera against.
//!
//! Run: `cargo run --release -p tessera-bench-hello -- 127.0.0.1:8081 [axum-serve|http1]`
//!
//! - `axum-serve` (default): the stock `axum::serve` (HTTP/1 and HTTP/2 auto-detection,
//!   per-connection graceful-shutdown plumbing).
//! - `http1`: the same router behind the accept loop Tessera itself uses (HTTP/1 only,
//!   `TCP_NODELAY`), so the two servers differ only in what they do per request.

#![forbid(unsafe_code)]

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
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
        other => Err(std::io::Error::other(format!(
            "unknown mode {other:?}; use axum-serve or http1"
        ))),
    }
}
