//! In-process cost of the hot path through the real router: `GET /v1/session` with a
//! session cookie (extractor, validation, JSON body, headers) and with a JWT access token
//! already verified once, next to `GET /healthz` (the same layers, no session). No sockets:
//! this isolates Tessera's own work per request.
//!
//! Run: `cargo bench -p tessera-server --bench router`

// Benchmark set-up: a failure is a broken benchmark, and should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::{LoginAttempt, Transport};
use tessera_server::config::Database;
use tessera_server::{Config, open, server};
use tower::ServiceExt as _;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.url = Database::Sqlite(dir.path().join("bench.db"));
    let (app, cookie, jwt) = runtime.block_on(async {
        let services = open(&config).await.unwrap();
        let engine = services.engine.clone();
        engine
            .create_user("bench", "correct horse battery staple")
            .await
            .unwrap();
        let login = engine
            .login(LoginAttempt {
                username: "bench",
                password: "correct horse battery staple",
                transport: Transport::Cookie,
                ip: None,
                user_agent: Some("criterion"),
            })
            .await
            .unwrap();
        let cookie = format!("{}={}", config.session.cookie_name, login.token.encode());
        let token_login = engine
            .login(LoginAttempt {
                username: "bench",
                password: "correct horse battery staple",
                transport: Transport::Token,
                ip: None,
                user_agent: Some("criterion"),
            })
            .await
            .unwrap();
        let pair = services.tokens.issue(&token_login.session).await.unwrap();
        let jwt = format!("Bearer {}", pair.access_token);
        (server::app(&config, services), cookie, jwt)
    });

    let mut group = c.benchmark_group("router");
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);
    let bare = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
    group.bench_function("bare axum hello (reference)", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/").body(Body::empty()).unwrap();
            let response = bare.clone().oneshot(request).await.unwrap();
            black_box(response)
        });
    });
    group.bench_function("GET /healthz", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/healthz").body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            black_box(response)
        });
    });
    group.bench_function("GET /v1/session (cookie)", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/v1/session")
                .header("cookie", &cookie)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            black_box(response)
        });
    });
    group.bench_function("GET /v1/session (JWT seen before)", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = Request::get("/v1/session")
                .header("authorization", &jwt)
                .body(Body::empty())
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            black_box(response)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
