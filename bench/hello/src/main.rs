//! A bare axum "hello world": the ceiling `bench/http.sh` measures Tessera against.
//!
//! Run: `cargo run --release -p tessera-bench-hello -- 127.0.0.1:8081`

#![forbid(unsafe_code)]

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&address).await?;
    axum::serve(listener, app).await
}
