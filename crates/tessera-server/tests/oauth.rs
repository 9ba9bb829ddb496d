//! Resource-server endpoints: introspection (RFC 7662), revocation by token (RFC 7009) and
//! the revocation feed, snapshot and server-sent events.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{PASSWORD, Sent, TestServer, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn token_login(server: &TestServer, username: &str) -> Value {
    server
        .post("/v1/login")
        .json(&json!({"username": username, "password": PASSWORD, "transport": "token"}))
        .sent()
        .await
        .json()
        .await
        .unwrap()
}

async fn credentials(server: &TestServer) -> (String, String) {
    let created = server
        .engine
        .create_client("resource-server")
        .await
        .unwrap();
    (created.record.id, created.secret.encode())
}

async fn introspect(
    server: &TestServer,
    (id, secret): &(String, String),
    token: &str,
) -> reqwest::Response {
    server
        .post("/v1/introspect")
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .sent()
        .await
}

fn sha256_base64url(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(text))
}

#[tokio::test]
async fn introspection_needs_client_credentials_and_reports_live_tokens() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    let client_credentials = credentials(&server).await;

    let active: Value = introspect(&server, &client_credentials, access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "access_token");
    assert_eq!(active["sid"], login["session"]["id"]);
    assert_eq!(active["username"], "alice");
    let active: Value = introspect(&server, &client_credentials, refresh)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(active["active"], true);
    assert_eq!(active["token_type"], "refresh_token");
    // A session token (what a same-origin service receives in the cookie or a bearer
    // header): active with its user until the session ends.
    let cookie_login = server.login("alice", PASSWORD).await;
    let session: Value = introspect(&server, &client_credentials, &cookie_login.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["active"], true, "{session}");
    assert_eq!(session["token_type"], "session_token");
    assert_eq!(session["username"], "alice");
    assert_eq!(session["sid"].as_str(), Some(cookie_login.session_id()));
    // Not the CSRF token itself, but what a same-origin service needs to check it.
    assert!(!session.to_string().contains(&cookie_login.csrf));
    assert_eq!(
        session["csrf_token_sha256"].as_str(),
        Some(sha256_base64url(&cookie_login.csrf).as_str())
    );
    assert!(active.get("csrf_token_sha256").is_none());
    let logout = server
        .post("/v1/logout")
        .bearer_auth(&cookie_login.token)
        .sent()
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let ended: Value = introspect(&server, &client_credentials, &cookie_login.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ended, json!({"active": false}));
    let junk: Value = introspect(&server, &client_credentials, "junk")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(junk, json!({"active": false}));

    // client_secret_post works too; bad or missing credentials are invalid_client.
    let post = server
        .post("/v1/introspect")
        .form(&[
            ("token", access),
            ("client_id", &client_credentials.0),
            ("client_secret", &client_credentials.1),
        ])
        .sent()
        .await;
    assert_eq!(post.json::<Value>().await.unwrap()["active"], true);
    let wrong = (
        client_credentials.0.clone(),
        tessera_core::SessionToken::generate().unwrap().encode(),
    );
    for response in [
        introspect(&server, &wrong, access).await,
        server
            .post("/v1/introspect")
            .form(&[("token", access)])
            .sent()
            .await,
    ] {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "invalid_client"
        );
    }

    // Basic and client_secret_post together are refused (RFC 6749 §2.3), even when both name
    // the same valid client.
    for form in [
        vec![
            ("token", access),
            ("client_id", &client_credentials.0),
            ("client_secret", &client_credentials.1),
        ],
        vec![("token", access), ("client_id", &client_credentials.0)],
    ] {
        let both = server
            .post("/v1/introspect")
            .basic_auth(&client_credentials.0, Some(&client_credentials.1))
            .form(&form)
            .sent()
            .await;
        assert_eq!(both.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            both.json::<Value>().await.unwrap()["error"],
            "invalid_request"
        );
    }

    // After logout both tokens are inactive.
    let logout = server.post("/v1/logout").bearer_auth(access).sent().await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    for token in [access, refresh] {
        let answer: Value = introspect(&server, &client_credentials, token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(answer, json!({"active": false}));
    }
}

#[tokio::test]
async fn revoking_a_token_ends_its_session_and_always_answers_200() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let revoke = |token: String| {
        let url = server.url("/v1/revoke");
        async move {
            client()
                .post(url)
                .form(&[("token", token)])
                .sent()
                .await
                .status()
        }
    };
    let by_refresh = token_login(&server, "alice").await;
    assert_eq!(
        revoke(by_refresh["refresh_token"].as_str().unwrap().to_owned()).await,
        StatusCode::OK
    );
    let status = server
        .get("/v1/session")
        .bearer_auth(by_refresh["access_token"].as_str().unwrap())
        .sent()
        .await
        .status();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoking the refresh token ended the session"
    );

    let by_access = token_login(&server, "alice").await;
    assert_eq!(
        revoke(by_access["access_token"].as_str().unwrap().to_owned()).await,
        StatusCode::OK
    );
    let refreshed = server
        .post("/v1/token")
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                by_access["refresh_token"].as_str().unwrap(),
            ),
        ])
        .sent()
        .await;
    assert_eq!(
        refreshed.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // Unknown, malformed and already revoked tokens: still 200, nothing revealed.
    for token in [
        "junk",
        "a.b.c",
        &"A".repeat(43),
        by_access["refresh_token"].as_str().unwrap(),
    ] {
        assert_eq!(revoke(token.to_owned()).await, StatusCode::OK, "{token}");
    }
    let no_token = server
        .post("/v1/revoke")
        .form(&[("nothing", "x")])
        .sent()
        .await;
    assert_eq!(no_token.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        no_token.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn the_revocation_feed_lists_revoked_sessions_after_a_cursor() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let client_credentials = credentials(&server).await;
    let feed = |after: u64| {
        let url = server.url(&format!("/v1/revocations?after={after}"));
        let (id, secret) = client_credentials.clone();
        async move { client().get(url).basic_auth(id, Some(secret)).sent().await }
    };
    let empty: Value = feed(0).await.json().await.unwrap();
    assert_eq!(empty["revocations"], json!([]));
    let start = empty["cursor"].as_u64().unwrap();

    let first = token_login(&server, "alice").await;
    let second = token_login(&server, "alice").await;
    for login in [&first, &second] {
        let logout = server
            .post("/v1/logout")
            .bearer_auth(login["access_token"].as_str().unwrap())
            .sent()
            .await;
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    }
    let page: Value = feed(start).await.json().await.unwrap();
    let entries = page["revocations"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{page}");
    assert_eq!(entries[0]["sid"], first["session"]["id"]);
    assert_eq!(entries[1]["sid"], second["session"]["id"]);
    assert!(
        entries[0]["remember_until"].as_str().unwrap() > entries[0]["revoked_at"].as_str().unwrap()
    );
    let cursor = page["cursor"].as_u64().unwrap();
    assert_eq!(cursor, entries[1]["sequence"].as_u64().unwrap());
    let after: Value = feed(cursor).await.json().await.unwrap();
    assert_eq!(after["revocations"], json!([]));

    let anonymous = server.get("/v1/revocations").sent().await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_revocation_stream_pushes_this_instances_revocations_without_waiting_for_its_poll() {
    // A poll this slow would miss the deadline below by far: only the wake-up can make it.
    let server =
        TestServer::start(|config| config.sessions.revocation_poll = Duration::from_secs(30)).await;
    server.register("alice", PASSWORD).await;
    let (id, secret) = credentials(&server).await;
    let mut stream = server
        .get("/v1/revocations/stream")
        .basic_auth(&id, Some(&secret))
        .sent()
        .await;
    assert_eq!(stream.status(), StatusCode::OK);
    for _ in 0..3 {
        let login = token_login(&server, "alice").await;
        let started = std::time::Instant::now();
        let logout = server
            .post("/v1/logout")
            .bearer_auth(login["access_token"].as_str().unwrap())
            .sent()
            .await;
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let sid = login["session"]["id"].as_str().unwrap();
        let mut received = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while !received.contains(sid) {
            let chunk = tokio::time::timeout_at(deadline, stream.chunk())
                .await
                .expect("the revocation waited for the poll")
                .unwrap()
                .unwrap();
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
        eprintln!("pushed {:?} after the logout began", started.elapsed());
    }
}

#[tokio::test]
async fn the_revocation_stream_pushes_each_revocation() {
    let server =
        TestServer::start(|config| config.sessions.revocation_poll = Duration::from_millis(50))
            .await;
    server.register("alice", PASSWORD).await;
    let (id, secret) = credentials(&server).await;
    let mut stream = server
        .get("/v1/revocations/stream")
        .basic_auth(&id, Some(&secret))
        .sent()
        .await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let cache_control: Vec<_> = stream.headers().get_all("cache-control").iter().collect();
    assert_eq!(cache_control, ["no-store"]);

    let login = token_login(&server, "alice").await;
    let logout = server
        .post("/v1/logout")
        .bearer_auth(login["access_token"].as_str().unwrap())
        .sent()
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let sid = login["session"]["id"].as_str().unwrap();
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !received.contains(sid) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("no event in time")
            .unwrap()
            .unwrap();
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(received.contains("event: revocation"), "{received}");
    assert!(received.contains("id: "), "{received}");
}
