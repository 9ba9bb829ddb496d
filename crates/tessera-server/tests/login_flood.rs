//! A login flood through a real socket: once every hashing slot is busy and the queue is full,
//! the next login is refused at once with `503 server_busy` and `Retry-After`, not queued.
//! Measured under load by `bench/login-flood.sh` (docs/reliability.md).

mod common;

use common::{PASSWORD, Sent as _, TestServer, client, problem};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_login_beyond_the_hashing_queue_gets_503_server_busy_at_once() {
    let server = TestServer::start(|config| {
        config.auth.hash_concurrency = Some(1);
        config.auth.hash_queue = 1;
        // A hash of about a second keeps the one slot busy while the test sends the rest.
        config.auth.argon2_memory_kib = 65_536;
        config.auth.argon2_iterations = 12;
    })
    .await;
    assert_eq!(
        server.register("alice", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let login = |password: &'static str| {
        client()
            .post(server.url("/v1/login"))
            .json(&json!({"username": "alice", "password": password}))
            .sent()
    };
    let before = server.engine.login_outcomes();

    // One login hashing, one waiting for the slot: the hasher is full.
    let hashing = tokio::spawn(login(PASSWORD));
    while server.engine.hashing_load().running < 1 {
        tokio::task::yield_now().await;
    }
    let waiting = tokio::spawn(login("not the password"));
    while server.engine.hashing_load().queued < 1 {
        tokio::task::yield_now().await;
    }

    let refused = login(PASSWORD).await;
    let retry_after = refused
        .headers()
        .get("retry-after")
        .expect("Retry-After on server_busy")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    problem(refused, StatusCode::SERVICE_UNAVAILABLE, "server_busy").await;
    // Answered while the waiting login still waits for its turn (a whole hash away): the
    // refusal did not queue behind it.
    assert!(!waiting.is_finished());

    assert_eq!(hashing.await.unwrap().status(), StatusCode::OK);
    problem(
        waiting.await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let after = server.engine.login_outcomes();
    assert_eq!(after.busy - before.busy, 1);
    assert_eq!(after.ok - before.ok, 1);
    assert_eq!(after.invalid_credentials - before.invalid_credentials, 1);

    // Nothing was held against the refused attempt: the next login goes through.
    let load = server.engine.hashing_load();
    assert_eq!((load.running, load.queued), (0, 0));
    assert_eq!(
        server.login_response("alice", PASSWORD).await.status(),
        StatusCode::OK
    );
}
