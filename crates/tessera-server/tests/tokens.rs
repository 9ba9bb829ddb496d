//! The token transport over HTTP: JWT access tokens, refresh rotation with grace and theft
//! detection, JWKS and discovery, and revocation that reaches JWTs at once.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{PASSWORD, Sent, TestServer, client, problem};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn token_login(server: &TestServer, username: &str) -> Value {
    let response = server
        .post("/v1/login")
        .json(&json!({"username": username, "password": PASSWORD, "transport": "token"}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no cookie with the token transport"
    );
    response.json().await.unwrap()
}

async fn refresh(server: &TestServer, refresh_token: &str) -> reqwest::Response {
    server
        .post("/v1/token")
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .sent()
        .await
}

async fn session_status(server: &TestServer, bearer: &str) -> StatusCode {
    server
        .get("/v1/session")
        .bearer_auth(bearer)
        .sent()
        .await
        .status()
}

fn decode_segment(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

#[tokio::test]
async fn token_login_returns_a_signed_access_token_bound_to_the_session() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let body = token_login(&server, "alice").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
    let access = body["access_token"].as_str().unwrap();
    let header = decode_segment(access, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    let claims = decode_segment(access, 1);
    let session = &body["session"];
    assert_eq!(claims["sid"], session["id"]);
    assert_eq!(claims["sub"], session["user"]["id"]);
    assert_eq!(
        claims["iss"],
        format!("http://{}", server.config.server.bind)
    );
    assert_eq!(claims["aud"], json!(["tessera"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert!(claims["jti"].is_string());
    assert_eq!(session["transport"], "token");

    // The JWKS publishes the key that signed it, and nothing private.
    let jwks: Value = server
        .get("/.well-known/jwks.json")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.iter().any(|key| key["kid"] == header["kid"]), "{jwks}");
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                key.get(private).is_none(),
                "private member {private} published"
            );
        }
    }

    // Any route that takes a session takes the JWT.
    let current = server.get("/v1/session").bearer_auth(access).sent().await;
    assert_eq!(current.status(), StatusCode::OK);
    let current: Value = current.json().await.unwrap();
    assert_eq!(current["session"]["id"], session["id"]);
    assert!(current.get("csrf_token").is_none());
    let list = server.get("/v1/sessions").bearer_auth(access).sent().await;
    assert_eq!(list.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_and_a_retry_within_grace_gets_the_same_pair() {
    let server = TestServer::start_with_clock(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    let first_refresh = login["refresh_token"].as_str().unwrap();

    server.advance(Duration::from_secs(60));
    let rotated = refresh(&server, first_refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    assert_eq!(rotated.headers()["cache-control"], "no-store");
    let rotated: Value = rotated.json().await.unwrap();
    assert_ne!(rotated["refresh_token"], login["refresh_token"]);
    assert_ne!(rotated["access_token"], login["access_token"]);
    assert_eq!(rotated["session"]["id"], login["session"]["id"]);

    // A lost response: the client retries with the spent token inside the grace window.
    server.advance(Duration::from_secs(5));
    let retry: Value = refresh(&server, first_refresh).await.json().await.unwrap();
    assert_eq!(retry["refresh_token"], rotated["refresh_token"]);
    assert_eq!(
        retry["access_token"], rotated["access_token"],
        "EdDSA re-signs the same claims to the same bytes"
    );

    // The successor keeps working and the session is alive.
    let next = refresh(&server, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(next.status(), StatusCode::OK);
    let next: Value = next.json().await.unwrap();
    assert_eq!(
        session_status(&server, next["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reuse_after_the_grace_window_is_theft_and_revokes_everything() {
    let server = TestServer::start_with_clock(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    let stolen = login["refresh_token"].as_str().unwrap().to_owned();
    let rotated: Value = refresh(&server, &stolen).await.json().await.unwrap();
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(session_status(&server, &access).await, StatusCode::OK);

    server.advance(Duration::from_secs(11));
    let replay = refresh(&server, &stolen).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let error: Value = replay.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");
    assert!(!error.to_string().contains(&stolen));

    // Every credential of the session is dead: the legitimate successor and its JWT.
    let successor = refresh(&server, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        successor.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        session_status(&server, &access).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_refreshes_share_one_successor_and_nobody_is_logged_out() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    let parent = login["refresh_token"].as_str().unwrap().to_owned();
    let url = server.url("/v1/token");
    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            let parent = parent.clone();
            tokio::spawn(async move {
                let response = client()
                    .post(url)
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", parent.as_str()),
                    ])
                    .sent()
                    .await;
                assert_eq!(response.status(), StatusCode::OK);
                response.json::<Value>().await.unwrap()
            })
        })
        .collect();
    let mut successors = Vec::new();
    for attempt in attempts {
        successors.push(
            attempt.await.unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    successors.dedup();
    assert_eq!(
        successors.len(),
        1,
        "one successor for ten concurrent refreshes"
    );
    let next = refresh(&server, &successors[0]).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "the session survived the race"
    );
}

#[tokio::test]
async fn logout_and_revocation_kill_jwts_on_the_very_next_request() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let phone = token_login(&server, "alice").await;
    let phone_access = phone["access_token"].as_str().unwrap().to_owned();
    let tablet = token_login(&server, "alice").await;
    let tablet_access = tablet["access_token"].as_str().unwrap().to_owned();
    let browser = server.login("alice", PASSWORD).await;

    // Revoked from the browser's cookie session: the phone's JWT dies at once.
    let revoke = client()
        .delete(server.url(&format!(
            "/v1/sessions/{}",
            phone["session"]["id"].as_str().unwrap()
        )))
        .header("cookie", browser.cookie())
        .header("x-csrf-token", &browser.csrf)
        .sent()
        .await;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        session_status(&server, &phone_access).await,
        StatusCode::UNAUTHORIZED
    );
    let refresh_after = refresh(&server, phone["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refresh_after.status(), StatusCode::BAD_REQUEST);

    // Logout with the JWT itself (no CSRF token needed for a bearer credential).
    let logout = server
        .post("/v1/logout")
        .bearer_auth(&tablet_access)
        .sent()
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        session_status(&server, &tablet_access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        session_status(&server, &browser.token).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn forged_and_foreign_access_tokens_are_refused() {
    let server = TestServer::start(|_| {}).await;
    let other = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    other.register("alice", PASSWORD).await;
    let ours = token_login(&server, "alice").await;
    let theirs = token_login(&other, "alice").await;
    let access = ours["access_token"].as_str().unwrap();
    let parts: Vec<&str> = access.split('.').collect();

    let mut claims = decode_segment(access, 1);
    claims["sub"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    for forged in [
        theirs["access_token"].as_str().unwrap().to_owned(),
        tampered,
        unsigned,
        format!("{}.{}", parts[0], parts[1]),
        format!("{access}.extra"),
        format!("{}.{}.{}", parts[0], parts[1], "A".repeat(86)),
    ] {
        let response = server.get("/v1/session").bearer_auth(&forged).sent().await;
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    assert_eq!(session_status(&server, access).await, StatusCode::OK);
}

#[tokio::test]
async fn validly_signed_tokens_living_longer_than_access_ttl_are_refused() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    // The server's own signing key, through a second opening of its store: what a leaked key
    // (or a stolen database) lets an attacker sign.
    let minter = tessera_server::open(&server.config).await.unwrap();
    let login = server
        .engine
        .login(tessera_core::LoginAttempt {
            username: "alice",
            password: PASSWORD,
            transport: tessera_core::Transport::Token,
            ip: None,
            user_agent: None,
        })
        .await
        .unwrap();
    let grant = server
        .engine
        .issue_tokens(&login.session)
        .await
        .unwrap()
        .access;
    let access_ttl = server.config.token.access_ttl;
    let mint = |lifetime: Duration| {
        let mut grant = grant.clone();
        grant.expires_at = grant.issued_at.saturating_add(lifetime);
        minter.tokens.sign_access(&grant).unwrap()
    };
    let honest = mint(access_ttl);
    assert_eq!(session_status(&server, &honest).await, StatusCode::OK);
    let year_long = mint(Duration::from_secs(365 * 24 * 3600));
    let response = server
        .get("/v1/session")
        .bearer_auth(&year_long)
        .sent()
        .await;
    problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    // Just past access_ttl plus the leeway is refused as well.
    let beyond = mint(access_ttl + server.config.token.leeway + Duration::from_secs(2));
    assert_eq!(
        session_status(&server, &beyond).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn token_endpoint_errors_are_oauth_shaped() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    let refresh_token = login["refresh_token"].as_str().unwrap();
    let post = || server.post("/v1/token");
    let cases = [
        (
            post().form(&[("refresh_token", refresh_token)]),
            "invalid_request",
        ),
        (
            post().form(&[("grant_type", "password"), ("username", "alice")]),
            "invalid_request",
        ),
        (
            post().form(&[("grant_type", "client_credentials")]),
            "unsupported_grant_type",
        ),
        (
            post().form(&[("grant_type", "refresh_token")]),
            "invalid_request",
        ),
        (
            post().form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")]),
            "invalid_grant",
        ),
        (
            post().form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &"A".repeat(43)),
            ]),
            "invalid_grant",
        ),
        (
            post()
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "grant_type=refresh_token&refresh_token={refresh_token}&refresh_token=x"
                )),
            "invalid_request",
        ),
        (
            post()
                .header("content-type", "text/plain")
                .body("grant_type=refresh_token"),
            "invalid_request",
        ),
        (
            post().json(&json!({"grant_type": "refresh_token", "refresh_token": 5})),
            "invalid_request",
        ),
    ];
    for (index, (request, error)) in cases.into_iter().enumerate() {
        let response = request.sent().await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "case {index}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "case {index}: {body}");
        assert!(body["error_description"].is_string());
    }
    // JSON is accepted too, and none of the failures above spent the token.
    let response = post()
        .json(&json!({"grant_type": "refresh_token", "refresh_token": refresh_token}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn discovery_metadata_points_at_the_endpoints() {
    let server = TestServer::start(|config| {
        config.server.public_url = Some("https://auth.example.com".parse().unwrap())
    })
    .await;
    let metadata: Value = server
        .get("/.well-known/oauth-authorization-server")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], "https://auth.example.com");
    assert_eq!(
        metadata["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        metadata["token_endpoint"],
        "https://auth.example.com/v1/token"
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!([
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
}

#[tokio::test]
async fn signing_keys_survive_a_restart() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    let jwks_before: Value = server
        .get("/.well-known/jwks.json")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let server = server.restart().await;
    let jwks_after: Value = server
        .get("/.well-known/jwks.json")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after);
    assert_eq!(
        session_status(&server, login["access_token"].as_str().unwrap()).await,
        StatusCode::OK
    );
    let rotated = refresh(&server, login["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rotated.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_tokens_never_outlive_the_session() {
    let server = TestServer::start_with_clock(|config| {
        config.session.absolute_timeout = Duration::from_secs(600);
        config.session.idle_timeout = Duration::from_secs(600);
    })
    .await;
    server.register("alice", PASSWORD).await;
    let login = token_login(&server, "alice").await;
    server.advance(Duration::from_secs(599));
    let late = refresh(&server, login["refresh_token"].as_str().unwrap()).await;
    assert_eq!(late.status(), StatusCode::OK);
    let late: Value = late.json().await.unwrap();
    assert!(
        late["expires_in"].as_i64().unwrap() <= 1,
        "the access token ends with the session"
    );
    server.advance(Duration::from_secs(2));
    let after = refresh(&server, late["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        after.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn every_supported_algorithm_signs_and_verifies_end_to_end() {
    for (algorithm, secret) in [
        ("ES256", None),
        ("RS256", None),
        (
            "HS256",
            Some("a single-service secret of at least 32 bytes"),
        ),
    ] {
        let server = TestServer::start(|config| {
            config.token.algorithm = algorithm.parse().unwrap();
            config.token.hs256_secret =
                secret.map(|secret| serde_json::from_value(json!(secret)).unwrap());
        })
        .await;
        server.register("alice", PASSWORD).await;
        let login = token_login(&server, "alice").await;
        let access = login["access_token"].as_str().unwrap();
        assert_eq!(decode_segment(access, 0)["alg"], algorithm);
        assert_eq!(
            session_status(&server, access).await,
            StatusCode::OK,
            "{algorithm}"
        );
        let jwks: Value = server
            .get("/.well-known/jwks.json")
            .sent()
            .await
            .json()
            .await
            .unwrap();
        let published = jwks["keys"].as_array().unwrap().len();
        // A shared HS256 secret is never published; asymmetric keys are.
        assert_eq!(
            published,
            usize::from(secret.is_none()),
            "{algorithm}: {jwks}"
        );
    }
}

async fn jwks_kids(server: &TestServer) -> Vec<String> {
    let jwks: Value = server
        .get("/.well-known/jwks.json")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_rotation_schedule_publishes_a_new_key_before_it_signs() {
    let server = TestServer::start_with_clock(|config| {
        config.token.key_reload = Duration::from_millis(100);
        config.token.key_rotation = Duration::from_secs(24 * 60 * 60);
    })
    .await;
    server.register("alice", PASSWORD).await;
    let first = token_login(&server, "alice").await;
    let old_kid = decode_segment(first["access_token"].as_str().unwrap(), 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(jwks_kids(&server).await, vec![old_kid.clone()]);

    // Not yet due: nothing changes however often maintenance runs.
    server.advance(Duration::from_secs(23 * 60 * 60));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jwks_kids(&server).await, vec![old_kid.clone()]);

    server.advance(Duration::from_secs(60 * 60 + 1));
    let mut kids = Vec::new();
    for _ in 0..50 {
        kids = jwks_kids(&server).await;
        if kids.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kids.len(), 2, "the due key was rotated: {kids:?}");
    assert!(kids.contains(&old_kid));
    let new_kid = kids.iter().find(|kid| **kid != old_kid).unwrap().clone();

    // Published first, signing only after the lead time.
    let during_lead = token_login(&server, "alice").await;
    assert_eq!(
        decode_segment(during_lead["access_token"].as_str().unwrap(), 0)["kid"],
        old_kid.as_str()
    );
    server.advance(server.config.token.key_publish_lead + Duration::from_secs(1));
    let after_lead = token_login(&server, "alice").await;
    let after_lead_token = after_lead["access_token"].as_str().unwrap();
    assert_eq!(decode_segment(after_lead_token, 0)["kid"], new_kid.as_str());
    assert_eq!(
        session_status(&server, after_lead_token).await,
        StatusCode::OK
    );
    // The old key stays published while tokens it signed may still be live.
    let during_lead_token = during_lead["access_token"].as_str().unwrap();
    assert!(jwks_kids(&server).await.contains(&old_kid));
    assert_eq!(
        session_status(&server, during_lead_token).await,
        StatusCode::OK
    );

    // One rotation per due key: the schedule does not rotate the new key again at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jwks_kids(&server).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_due_for_rotation_at_once_add_exactly_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tessera_server::config::Config::default();
    config.database.url = tessera_server::config::Database::Sqlite(dir.path().join("tessera.db"));
    config.token.key_rotation = Duration::from_secs(60 * 60);
    let clock =
        tessera_core::ManualClock::new(tessera_core::Clock::now(&tessera_core::SystemClock));
    let open = || tessera_server::open_with_clock(&config, std::sync::Arc::new(clock.clone()));
    let (first, second, third) = tokio::join!(open(), open(), open());
    let instances = [first.unwrap(), second.unwrap(), third.unwrap()];
    for instance in &instances {
        instance.tokens.reload().await.unwrap();
        let jwks: Value = serde_json::from_slice(&instance.tokens.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "one first key");
    }
    clock.advance(Duration::from_secs(60 * 60 + 5));

    let results = futures_util::future::join_all(
        instances
            .iter()
            .map(|instance| instance.tokens.rotate_if_due()),
    )
    .await;
    let rotated: Vec<String> = results.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(
        rotated.len(),
        1,
        "exactly one instance rotated: {rotated:?}"
    );

    for instance in &instances {
        instance.tokens.reload().await.unwrap();
        assert_eq!(instance.tokens.rotate_if_due().await.unwrap(), None);
        let jwks: Value = serde_json::from_slice(&instance.tokens.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    }
}
