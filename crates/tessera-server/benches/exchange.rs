//! In-process cost of `POST /v1/token` through the real router, side by side in one run:
//! a refresh (verify nothing, rotate the chain in the store, sign one JWT) against a token
//! exchange for a registered service (verify the subject JWT, read the services and the
//! user, sign one JWT, append an audit row) and for a one-time operation token, and the
//! verification a service then does on the exchanged token (Tessera's own verifier, never
//! seen before: one signature check) next to the check of the user's own token seen before
//! (a cache hit) — the end-to-end cost of "exchange + one call" against "call with the
//! user's own token". SQLite in a temporary directory, as `tessera serve`
//! runs by default.
//!
//! Run: `cargo bench -p tessera-server --bench exchange`

// Benchmark set-up: a failure is a broken benchmark, and should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::{LoginAttempt, NewService, Transport};
use tessera_server::config::Database;
use tessera_server::{Config, open, server};
use tower::ServiceExt as _;

const EXCHANGE: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
    &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
    &audience=https%3A%2F%2Fbilling.example";

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.url = Database::Sqlite(dir.path().join("bench.db"));
    let (app, tokens, access, refresh) = runtime.block_on(async {
        let services = open(&config).await.unwrap();
        let engine = services.engine.clone();
        engine
            .create_user("bench", "correct horse battery staple")
            .await
            .unwrap();
        engine
            .register_service(NewService {
                name: "billing".to_owned(),
                audience: "https://billing.example".to_owned(),
                scopes: vec!["refund".to_owned(), "invoices:read".to_owned()],
                max_ttl: Duration::from_secs(120),
                sessions: false,
            })
            .await
            .unwrap();
        let login = engine
            .login(LoginAttempt {
                username: "bench",
                password: "correct horse battery staple",
                transport: Transport::Token,
                ip: None,
                user_agent: Some("criterion"),
            })
            .await
            .unwrap();
        let pair = services.tokens.issue(&login.session).await.unwrap();
        let tokens = services.tokens.clone();
        (
            server::app(&config, services),
            tokens,
            pair.access_token,
            pair.refresh_token.encode(),
        )
    });

    let post = |body: String| {
        Request::post("/v1/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let mut group = c.benchmark_group("token endpoint");
    group
        .measurement_time(Duration::from_secs(6))
        .sample_size(40);
    let refresh = RefCell::new(refresh);
    group.bench_function("refresh (rotate + sign)", |b| {
        b.to_async(&runtime).iter(|| async {
            let current = refresh.borrow().clone();
            let request = post(format!("grant_type=refresh_token&refresh_token={current}"));
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 16)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            *refresh.borrow_mut() = body["refresh_token"].as_str().unwrap().to_owned();
            black_box(body)
        });
    });
    group.bench_function("exchange: access token for a service", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = post(format!("{EXCHANGE}&subject_token={access}"));
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            black_box(response)
        });
    });
    group.bench_function("exchange: one-time operation token", |b| {
        b.to_async(&runtime).iter(|| async {
            let request = post(format!(
                "{EXCHANGE}&subject_token={access}\
                 &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Atxn_token\
                 &scope=refund"
            ));
            let response = app.clone().oneshot(request).await.unwrap();
            assert!(response.status().is_success());
            black_box(response)
        });
    });
    // What the downstream service then pays for the exchanged token: one verification of a
    // token it has never seen (Tessera's own strict verifier; tessera-tower uses the same).
    let exchanged = runtime.block_on(async {
        let response = app
            .clone()
            .oneshot(post(format!("{EXCHANGE}&subject_token={access}")))
            .await
            .unwrap();
        let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    });
    let audiences = vec!["https://billing.example".to_owned()];
    group.bench_function("verify the exchanged token (never seen)", |b| {
        b.iter(|| {
            black_box(
                tokens
                    .verify_subject(&exchanged, audiences.clone())
                    .unwrap(),
            )
        });
    });
    // The alternative: the service takes the user's own token, which it has seen before (a
    // verifier's cache hit, as tessera-tower's and Tessera's own are).
    tokens.verify(&access).unwrap();
    group.bench_function("verify the user's own token (seen before)", |b| {
        b.iter(|| black_box(tokens.verify(&access).unwrap()));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
