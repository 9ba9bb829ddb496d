//! The HTTP contract, exercised through a real socket with an ordinary HTTP client.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{COOKIE_NAME, PASSWORD, Sent, TestServer, client, problem, session_set_cookie};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn registration_returns_the_account_and_refuses_duplicates_and_weak_passwords() {
    let server = TestServer::start(|_| {}).await;
    let response = server.register("Alice", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["username"], "Alice");
    assert_eq!(body["id"].as_str().unwrap().len(), 22);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "no password hash or other extras: {body}"
    );

    problem(
        server.register("alice", PASSWORD).await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;
    for weak in ["password", "12345678", "short", "bob-the-builder"] {
        let response = server.register("bob-the-builder", weak).await;
        problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    for bad_name in [
        "",
        "has space",
        "x".repeat(65).as_str(),
        "ünicode",
        ".",
        "..",
    ] {
        let response = server.register(bad_name, PASSWORD).await;
        problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    // A long passphrase and Unicode are fine.
    let response = server
        .register("carol", &"ünïcödé passphrase ".repeat(10))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn registration_can_be_closed() {
    let server = TestServer::start(|config| config.auth.registration = false).await;
    problem(
        server.register("alice", PASSWORD).await,
        StatusCode::FORBIDDEN,
        "registration_closed",
    )
    .await;
}

#[tokio::test]
async fn cookie_login_sets_a_host_prefixed_cookie_and_returns_the_session() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let response = server
        .post("/v1/login")
        .header("user-agent", "test-agent/1.0")
        .json(&json!({"username": "alice", "password": PASSWORD, "transport": "cookie"}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let set_cookie = session_set_cookie(response.headers()).unwrap();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    for required in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            attributes.contains(&required),
            "{set_cookie} lacks {required}"
        );
    }
    assert!(
        !set_cookie.to_ascii_lowercase().contains("domain"),
        "{set_cookie}"
    );
    let token = attributes[0]
        .strip_prefix(&format!("{COOKIE_NAME}="))
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 64);

    let body: Value = response.json().await.unwrap();
    let text = body.to_string();
    assert!(
        !text.contains(&token),
        "the session token must only travel in the cookie"
    );
    let session = &body["session"];
    assert_eq!(session["user"]["username"], "alice");
    assert_eq!(session["transport"], "cookie");
    assert_eq!(session["ip"], "127.0.0.1");
    assert_eq!(session["user_agent"], "test-agent/1.0");
    for field in [
        "id",
        "created_at",
        "last_seen_at",
        "idle_expires_at",
        "expires_at",
    ] {
        assert!(session[field].is_string(), "{field} in {session}");
    }
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 43);
}

/// A session token is the session's public id followed by a secret: knowing the id (it is
/// in listings and JWTs) and guessing at the secret gets nothing, in the cache or out of it,
/// and does not disturb the real session.
#[tokio::test]
async fn a_token_with_the_right_session_id_and_a_wrong_secret_is_refused() {
    use base64::Engine as _;
    for cache_capacity in [100_000, 0] {
        let server =
            TestServer::start(|config| config.session.cache_capacity = cache_capacity).await;
        let login = server.user_session("alice").await;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut raw = engine.decode(&login.token).unwrap();
        assert_eq!(raw.len(), 48);
        raw[40] ^= 0x01;
        let forged = engine.encode(&raw);
        assert_eq!(forged[..21], login.token[..21], "same session id");
        let status = |token: String| {
            let url = server.url("/v1/session");
            async move { client().get(url).bearer_auth(token).sent().await }
        };
        problem(
            status(forged.clone()).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
        let real = status(login.token.clone()).await;
        assert_eq!(real.status(), StatusCode::OK, "cache {cache_capacity}");
        let body: Value = real.json().await.unwrap();
        assert_eq!(body["session"]["id"], login.session_id());
        problem(
            status(forged).await,
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
        )
        .await;
    }
}

#[tokio::test]
async fn the_current_session_is_read_by_cookie_or_bearer_and_nothing_else() {
    let server = TestServer::start(|_| {}).await;
    let login = server.user_session("alice").await;
    let by_cookie = server
        .get("/v1/session")
        .header("cookie", login.cookie())
        .sent()
        .await;
    assert_eq!(by_cookie.status(), StatusCode::OK);
    assert_eq!(by_cookie.headers()["cache-control"], "no-store");
    let body: Value = by_cookie.json().await.unwrap();
    assert_eq!(body["session"]["id"], login.session_id());
    assert_eq!(body["session"]["user"]["username"], "alice");
    assert_eq!(body["csrf_token"], login.csrf.as_str());

    let by_bearer = server
        .get("/v1/session")
        .bearer_auth(&login.token)
        .sent()
        .await;
    assert_eq!(by_bearer.status(), StatusCode::OK);
    let body: Value = by_bearer.json().await.unwrap();
    assert_eq!(body["session"]["id"], login.session_id());
    assert!(
        body.get("csrf_token").is_none(),
        "bearer clients need no CSRF token"
    );

    let none = server.get("/v1/session").sent().await;
    assert_eq!(
        none.headers()["www-authenticate"],
        "Bearer realm=\"tessera\""
    );
    problem(none, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let unknown = tessera_core::SessionToken::generate().unwrap().encode();
    for cookie in [
        format!("{COOKIE_NAME}={unknown}"),
        format!("{COOKIE_NAME}=garbage"),
        format!("{COOKIE_NAME}={}", "A".repeat(4000)),
        format!("{COOKIE_NAME}={}; {COOKIE_NAME}={unknown}", login.token),
        format!("__host-tessera_session={}", login.token),
    ] {
        let response = server
            .get("/v1/session")
            .header("cookie", cookie)
            .sent()
            .await;
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    // Session ids are only accepted from the cookie or the Authorization header.
    let in_query = server
        .get(&format!("/v1/session?session={}", login.token))
        .sent()
        .await;
    problem(in_query, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    for header in ["Basic YWxpY2U6cGFzcw==", "Bearer a.b.c", "Bearer"] {
        let response = server
            .get("/v1/session")
            .header("authorization", header)
            .sent()
            .await;
        problem(response, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_are_indistinguishable() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let mut bodies = Vec::new();
    let mut unknown_times = Vec::new();
    let mut wrong_times = Vec::new();
    for round in 0..5 {
        for (username, times) in [
            ("nobody-here", &mut unknown_times),
            ("alice", &mut wrong_times),
        ] {
            let started = Instant::now();
            let response = server
                .login_response(username, &format!("wrong password {round}"))
                .await;
            times.push(started.elapsed());
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert!(response.headers().get("set-cookie").is_none());
            bodies.push(response.text().await.unwrap());
        }
    }
    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "{bodies:?}"
    );
    let parsed: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(parsed["code"], "invalid_credentials");
    // Both paths pay for an Argon2 verification. A short-cut for unknown users would be two
    // orders of magnitude faster; this bound catches that without being a timing benchmark.
    unknown_times.sort();
    wrong_times.sort();
    let (unknown, wrong) = (unknown_times[2], wrong_times[2]);
    assert!(
        unknown * 3 > wrong,
        "unknown-user median {unknown:?} vs wrong-password median {wrong:?}"
    );
}

#[tokio::test]
async fn every_login_gets_a_new_session_and_planted_cookies_are_never_adopted() {
    let server = TestServer::start(|_| {}).await;
    let first = server.user_session("alice").await;
    let planted = tessera_core::SessionToken::generate().unwrap().encode();
    let response = server
        .post("/v1/login")
        .header("cookie", format!("{COOKIE_NAME}={planted}"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .sent()
        .await;
    let second = common::Login::from_response(response).await;
    assert_ne!(second.token, first.token);
    assert_ne!(second.token, planted);
    assert_ne!(second.session_id(), first.session_id());
    let planted_use = server.get("/v1/session").bearer_auth(&planted).sent().await;
    assert_eq!(planted_use.status(), StatusCode::UNAUTHORIZED);

    // Logging in again from a browser that holds a live session ends that session.
    let response = server
        .post("/v1/login")
        .header("cookie", second.cookie())
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .sent()
        .await;
    let third = common::Login::from_response(response).await;
    let replaced = server
        .get("/v1/session")
        .bearer_auth(&second.token)
        .sent()
        .await;
    assert_eq!(replaced.status(), StatusCode::UNAUTHORIZED);
    let current = server
        .get("/v1/session")
        .bearer_auth(&third.token)
        .sent()
        .await;
    assert_eq!(current.status(), StatusCode::OK);
}

#[tokio::test]
async fn cookie_authenticated_unsafe_requests_need_the_csrf_token_and_a_same_origin() {
    let server = TestServer::start(|_| {}).await;
    let login = server.user_session("alice").await;
    let other = server.user_session("bob").await;
    let logout = || server.post("/v1/logout").header("cookie", login.cookie());
    let refused = [
        logout(),
        logout().header("x-csrf-token", "not-a-token"),
        logout().header("x-csrf-token", &other.csrf),
        logout()
            .header("x-csrf-token", &login.csrf)
            .header("origin", "http://evil.test"),
        logout()
            .header("x-csrf-token", &login.csrf)
            .header("origin", "null"),
        logout()
            .header("x-csrf-token", &login.csrf)
            .header("sec-fetch-site", "cross-site"),
        logout()
            .header("x-csrf-token", &login.csrf)
            .header("origin", format!("http://{}.evil.test", server.addr.ip())),
    ];
    for request in refused {
        problem(request.sent().await, StatusCode::FORBIDDEN, "csrf_failed").await;
    }
    let revoke_others = server
        .delete("/v1/sessions?scope=all")
        .header("cookie", login.cookie())
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", &login.csrf);
    problem(
        revoke_others.sent().await,
        StatusCode::FORBIDDEN,
        "csrf_failed",
    )
    .await;
    // Nothing changed.
    let still = server
        .get("/v1/session")
        .header("cookie", login.cookie())
        .sent()
        .await;
    assert_eq!(still.status(), StatusCode::OK);

    // The right token from the same origin works.
    let ok = logout()
        .header("x-csrf-token", &login.csrf)
        .header("origin", &server.base)
        .header("sec-fetch-site", "same-origin")
        .sent()
        .await;
    assert_eq!(ok.status(), StatusCode::NO_CONTENT);

    // Bearer requests carry no ambient credential and need no CSRF token.
    let bearer = server
        .post("/v1/logout")
        .bearer_auth(&other.token)
        .sent()
        .await;
    assert_eq!(bearer.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn login_and_registration_refuse_cross_site_requests() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let cross = server
        .post("/v1/login")
        .header("origin", "https://evil.test")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .sent()
        .await;
    assert!(cross.headers().get("set-cookie").is_none());
    problem(cross, StatusCode::FORBIDDEN, "csrf_failed").await;
    let cross = server
        .post("/v1/users")
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"username": "mallory", "password": PASSWORD}))
        .sent()
        .await;
    problem(cross, StatusCode::FORBIDDEN, "csrf_failed").await;
    // The account was not created.
    assert_eq!(
        server.register("mallory", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // A form post (a "simple" cross-site request) is refused by content type.
    let form = server
        .post("/v1/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=alice&password=x")
        .sent()
        .await;
    problem(
        form,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn configured_origins_replace_the_host_check() {
    let server = TestServer::start(|config| {
        config.server.public_url = Some("https://auth.example.com".parse().unwrap());
        config.server.allowed_origins = vec!["https://app.example.com".parse().unwrap()];
    })
    .await;
    server.register("alice", PASSWORD).await;
    let login_from = |origin: &str| {
        server
            .post("/v1/login")
            .header("origin", origin)
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
    };
    assert_eq!(
        login_from("https://app.example.com")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        login_from("https://auth.example.com")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let same_host = login_from(&server.base).await.unwrap();
    problem(same_host, StatusCode::FORBIDDEN, "csrf_failed").await;
}

#[tokio::test]
async fn allowed_origins_add_to_the_servers_own_origin() {
    // No public_url: the server's own origin is the one its Host names.
    let server = TestServer::start(|config| {
        config.server.allowed_origins = vec!["https://app.example.com".parse().unwrap()];
    })
    .await;
    let login = server.user_session("alice").await;
    let revoke_others_from = |origin: &str| {
        server
            .delete("/v1/sessions?scope=others")
            .header("cookie", login.cookie())
            .header("x-csrf-token", &login.csrf)
            .header("origin", origin)
            .send()
    };
    for allowed in [server.base.as_str(), "https://app.example.com"] {
        let response = revoke_others_from(allowed).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{allowed}");
    }
    let unlisted = revoke_others_from("https://evil.example.com")
        .await
        .unwrap();
    problem(unlisted, StatusCode::FORBIDDEN, "csrf_failed").await;
}

#[tokio::test]
async fn logout_kills_every_credential_of_the_session_and_clears_the_cookie() {
    let server = TestServer::start(|_| {}).await;
    let login = server.user_session("alice").await;
    let response = server
        .post("/v1/logout")
        .header("cookie", login.cookie())
        .header("x-csrf-token", &login.csrf)
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let cleared = session_set_cookie(response.headers()).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert!(
        cleared.starts_with(&format!("{COOKIE_NAME}=;")),
        "{cleared}"
    );
    let replay = server
        .get("/v1/session")
        .header("cookie", login.cookie())
        .sent()
        .await;
    // A dead cookie is cleared again on a 401.
    assert!(
        session_set_cookie(replay.headers())
            .unwrap()
            .contains("Max-Age=0")
    );
    problem(replay, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    let bearer = server
        .get("/v1/session")
        .bearer_auth(&login.token)
        .sent()
        .await;
    problem(bearer, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    // Logout is not a GET.
    let get = server.get("/v1/logout").sent().await;
    problem(get, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn sessions_are_listed_without_secrets_and_revoked_one_others_or_all() {
    let server = TestServer::start(|_| {}).await;
    let phone = server.user_session("alice").await;
    let laptop = server.login("alice", PASSWORD).await;
    let tablet = server.login("alice", PASSWORD).await;
    let bob = server.user_session("bob").await;

    let list = server
        .get("/v1/sessions")
        .bearer_auth(&laptop.token)
        .sent()
        .await;
    assert_eq!(list.status(), StatusCode::OK);
    let text = list.text().await.unwrap();
    for secret in [
        &phone.token,
        &laptop.token,
        &tablet.token,
        &phone.csrf,
        &laptop.csrf,
    ] {
        assert!(!text.contains(secret.as_str()), "secret in the listing");
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let sessions = body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "only alice's sessions: {body}");
    assert_eq!(sessions[0]["id"], tablet.session_id(), "newest first");
    for session in sessions {
        assert_eq!(
            session["current"],
            session["id"] == laptop.session_id(),
            "{session}"
        );
        assert_eq!(session["user"]["username"], "alice");
        for field in [
            "created_at",
            "last_seen_at",
            "idle_expires_at",
            "expires_at",
            "transport",
            "ip",
        ] {
            assert!(!session[field].is_null(), "{field}");
        }
    }

    // Revoke one: it dies, the others live; someone else's or a made-up id is 404.
    let revoke = |id: &str, login: &common::Login| {
        server
            .delete(&format!("/v1/sessions/{id}"))
            .header("cookie", login.cookie())
            .header("x-csrf-token", &login.csrf)
            .send()
    };
    assert_eq!(
        revoke(phone.session_id(), &laptop).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    problem(
        revoke(phone.session_id(), &laptop).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        revoke(bob.session_id(), &laptop).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    problem(
        revoke("not-a-session-id", &laptop).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let session_url = server.url("/v1/session");
    let status = |token: String| {
        let url = session_url.clone();
        async move { client().get(url).bearer_auth(token).sent().await.status() }
    };
    assert_eq!(status(phone.token.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(bob.token.clone()).await, StatusCode::OK);

    // Bad scopes are refused and change nothing.
    for query in ["", "?scope=everyone", "?scope=others&x=1"] {
        let response = server
            .delete(&format!("/v1/sessions{query}"))
            .bearer_auth(&laptop.token)
            .sent()
            .await;
        problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
    }
    assert_eq!(status(tablet.token.clone()).await, StatusCode::OK);

    // Others: the caller survives.
    let others = server
        .delete("/v1/sessions?scope=others")
        .bearer_auth(&laptop.token)
        .sent()
        .await;
    assert_eq!(others.status(), StatusCode::OK);
    assert_eq!(others.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(status(tablet.token.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(laptop.token.clone()).await, StatusCode::OK);

    // All: the caller too, and the cookie is cleared.
    let another = server.login("alice", PASSWORD).await;
    let all = server
        .delete("/v1/sessions?scope=all")
        .header("cookie", laptop.cookie())
        .header("x-csrf-token", &laptop.csrf)
        .sent()
        .await;
    assert_eq!(all.status(), StatusCode::OK);
    assert!(
        session_set_cookie(all.headers())
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(all.json::<Value>().await.unwrap()["revoked"], 2);
    assert_eq!(status(laptop.token.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(another.token.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(bob.token.clone()).await, StatusCode::OK);
}

#[tokio::test]
async fn idle_sessions_expire_and_activity_slides_the_idle_expiry() {
    let server = TestServer::start_with_clock(|config| {
        config.session.idle_timeout = Duration::from_secs(60);
        config.session.absolute_timeout = Duration::from_secs(3600);
    })
    .await;
    let login = server.user_session("alice").await;
    let get = || server.get("/v1/session").bearer_auth(&login.token).send();
    // Activity every 45 s keeps it alive well past the 60 s idle timeout.
    for _ in 0..5 {
        server.advance(Duration::from_secs(45));
        let response = get().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["session"]["last_seen_at"],
            tessera_server::body::rfc3339(server.now())
        );
    }
    server.advance(Duration::from_secs(61));
    problem(
        get().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "session_expired",
    )
    .await;
    let list = server
        .get("/v1/sessions")
        .bearer_auth(&login.token)
        .sent()
        .await;
    assert_eq!(list.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_end_at_the_absolute_expiry_whatever_their_activity() {
    let server = TestServer::start_with_clock(|config| {
        config.session.idle_timeout = Duration::from_secs(60);
        config.session.absolute_timeout = Duration::from_secs(150);
    })
    .await;
    let login = server.user_session("alice").await;
    let body = &login.body["session"];
    assert_eq!(
        body["expires_at"],
        tessera_server::body::rfc3339(server.now().saturating_add(Duration::from_secs(150)))
    );
    for _ in 0..3 {
        server.advance(Duration::from_secs(40));
        let response = server
            .get("/v1/session")
            .bearer_auth(&login.token)
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    server.advance(Duration::from_secs(40));
    let response = server
        .get("/v1/session")
        .header("cookie", login.cookie())
        .sent()
        .await;
    problem(response, StatusCode::UNAUTHORIZED, "session_expired").await;
}

#[tokio::test]
async fn the_idle_extension_survives_a_restart_within_the_touch_interval() {
    // The store is written at most once per touch interval: after a restart the session is
    // still valid and its idle expiry lags by at most that interval.
    let server = TestServer::start_with_clock(|config| {
        config.session.idle_timeout = Duration::from_secs(100);
        config.session.touch_interval = Some(Duration::from_secs(10));
    })
    .await;
    let login = server.user_session("alice").await;
    for _ in 0..8 {
        server.advance(Duration::from_secs(30));
        let response = server
            .get("/v1/session")
            .bearer_auth(&login.token)
            .sent()
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let server = server.restart().await;
    server.advance(Duration::from_secs(80));
    let response = server
        .get("/v1/session")
        .bearer_auth(&login.token)
        .sent()
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "idle extension was persisted"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_with_retry_after() {
    let server = TestServer::start_with_clock(|config| {
        config.ratelimit.account_failures = 3;
        config.ratelimit.window = Duration::from_secs(600);
    })
    .await;
    server.register("alice", PASSWORD).await;
    server.register("bob", PASSWORD).await;
    for _ in 0..3 {
        let response = server.login_response("alice", "wrong password!").await;
        problem(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Even the right password is refused until the window passes.
    let limited = server.login_response("ALICE", PASSWORD).await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry_after), "{retry_after}");
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Other accounts are unaffected.
    assert_eq!(
        server.login_response("bob", PASSWORD).await.status(),
        StatusCode::OK
    );
    // The limit holds across a restart (counters live in the store)...
    let server = server.restart().await;
    assert_eq!(
        server.login_response("alice", PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and lifts when the window has passed.
    server.advance(Duration::from_secs(601));
    assert_eq!(
        server.login_response("alice", PASSWORD).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_client_address() {
    let server = TestServer::start(|config| {
        config.ratelimit.address_failures = 4;
    })
    .await;
    server.register("alice", PASSWORD).await;
    for name in ["a1", "a2", "a3", "a4"] {
        assert_eq!(
            server.login_response(name, "guess guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = server.login_response("alice", PASSWORD).await;
    assert!(limited.headers().contains_key("retry-after"));
    problem(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn malformed_and_oversized_input_gets_a_clear_4xx_and_changes_nothing() {
    let server = TestServer::start(|_| {}).await;
    let post = |path: &str| server.post(path);
    let cases = [
        (
            post("/v1/users")
                .header("content-type", "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            post("/v1/users")
                .header("content-type", "application/json")
                .body(""),
            StatusCode::BAD_REQUEST,
            "malformed_request",
        ),
        (
            post("/v1/users")
                .header("content-type", "text/plain")
                .body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post("/v1/users").body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post("/v1/users").json(&json!({"username": "x"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            post("/v1/users").json(&json!({"username": 5, "password": PASSWORD})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            post("/v1/users")
                .json(&json!({"username": "eve", "password": PASSWORD, "admin": true})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            post("/v1/users").json(&json!(["eve", PASSWORD])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            post("/v1/users")
                .header("content-type", "application/json")
                .body(
                    r#"{"username":"eve","password":"a long password","password":"another one!"}"#,
                ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            post("/v1/users").json(&json!({"username": "eve", "password": "p".repeat(40_000)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            post("/v1/login").json(
                &json!({"username": "eve", "password": PASSWORD, "transport": "carrier-pigeon"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            post("/v1/nope").json(&json!({})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (index, (request, status, code)) in cases.into_iter().enumerate() {
        println!("case {index}");
        problem(request.sent().await, status, code).await;
    }
    // The wrong-type error never echoes the value sent.
    let response = post("/v1/users")
        .json(&json!({"username": "eve", "password": 12345678901u64}))
        .sent()
        .await;
    let body = problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(!body.to_string().contains("12345678901"), "{body}");
    // Nothing above created "eve".
    assert_eq!(
        server.register("eve", PASSWORD).await.status(),
        StatusCode::CREATED
    );

    // Oversized headers are refused by the HTTP layer before any handler runs.
    let huge = server
        .get("/v1/session")
        .header("cookie", format!("{COOKIE_NAME}={}", "A".repeat(40_000)))
        .sent()
        .await;
    assert_eq!(huge.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let huge_token = server
        .get("/v1/session")
        .bearer_auth("A".repeat(9000))
        .sent()
        .await;
    assert!(
        huge_token.status().is_client_error(),
        "{}",
        huge_token.status()
    );
    // The server is still healthy.
    assert_eq!(server.get("/healthz").sent().await.status(), StatusCode::OK);
}

#[tokio::test]
async fn sessions_and_revocations_survive_a_restart_and_no_raw_token_is_stored() {
    let server = TestServer::start(|_| {}).await;
    let kept = server.user_session("alice").await;
    let revoked = server.login("alice", PASSWORD).await;
    let response = server
        .post("/v1/logout")
        .bearer_auth(&revoked.token)
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let server = server.restart().await;
    let get = |token: &str| {
        server
            .get("/v1/session")
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(get(&kept.token).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        get(&revoked.token).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // The user survived too.
    problem(
        server.register("alice", PASSWORD).await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;

    // Nothing in the data directory holds a raw session token or its secret part, in text or
    // binary form; the secret's verifier is there, which shows the scan reads the files the
    // sessions live in.
    use base64::Engine as _;
    let mut hashes_seen = [false, false];
    let mut stack = vec![server.dir.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for (index, login) in [&kept, &revoked].into_iter().enumerate() {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&login.token)
                    .unwrap();
                let verifier = tessera_core::SessionToken::parse(&login.token)
                    .unwrap()
                    .verifier();
                for (secret, what) in [
                    (login.token.as_bytes(), "token text"),
                    (raw.as_slice(), "raw token bytes"),
                    (&raw[16..], "raw secret bytes"),
                    (&login.token.as_bytes()[22..], "secret text"),
                    (login.csrf.as_bytes(), "csrf token"),
                ] {
                    assert!(!contains(&bytes, secret), "{what} in {}", path.display());
                }
                hashes_seen[index] |= contains(&bytes, verifier.as_bytes());
            }
        }
    }
    assert_eq!(
        hashes_seen,
        [true, true],
        "the scan never found the stored hashes"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let server = TestServer::start(|_| {}).await;
    let health = server.get("/healthz").sent().await;
    assert_eq!(health.status(), StatusCode::OK);
    let ready = server.get("/readyz").sent().await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
    let openapi: Value = server
        .get("/openapi.json")
        .sent()
        .await
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/users",
        "/v1/login",
        "/v1/logout",
        "/v1/session",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(openapi["components"]["schemas"]["SessionBody"].is_object());
    // Security headers on every response.
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(health.headers()[name], value);
    }
}

#[tokio::test]
async fn a_login_upgrades_a_hash_made_with_older_parameters() {
    // Register under other (still OWASP-compliant) Argon2 parameters, then restart with the
    // defaults: the next successful login re-hashes the password with them.
    let server = TestServer::start(|config| {
        config.auth.argon2_memory_kib = 12_288;
        config.auth.argon2_iterations = 3;
    })
    .await;
    server.register("alice", PASSWORD).await;
    let stored = |server: &TestServer| {
        let path = server.dir.path().join("tessera.db");
        async move {
            use tessera_core::UserStore as _;
            let store = tessera_store::sqlite::SqliteStore::open(&path)
                .await
                .unwrap();
            let hash = store
                .user_by_username("alice")
                .await
                .unwrap()
                .unwrap()
                .password_hash;
            store.close().await;
            hash
        }
    };
    assert!(stored(&server).await.contains("m=12288,t=3,p=1"));
    let mut server = server;
    server.config.auth = tessera_server::config::AuthConfig::default();
    let server = server.restart().await;
    assert_eq!(
        server
            .login_response("alice", "wrong password!")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(
        stored(&server).await.contains("m=12288,t=3,p=1"),
        "a failed login changes nothing"
    );
    server.login("alice", PASSWORD).await;
    assert!(
        stored(&server)
            .await
            .contains("$argon2id$v=19$m=19456,t=2,p=1$")
    );
    // The new hash still verifies.
    server.login("alice", PASSWORD).await;
}

#[tokio::test]
async fn an_https_public_url_turns_on_strict_transport_security() {
    let https = TestServer::start(|config| {
        config.server.public_url = Some("https://auth.example.com".parse().unwrap());
    })
    .await;
    let http = TestServer::start(|config| {
        config.server.public_url = Some("http://127.0.0.1:8080".parse().unwrap());
    })
    .await;
    let unset = TestServer::start(|_| {}).await;
    // A prebuilt JSON answer, the session check's own path, a problem, and a page.
    let paths = ["/healthz", "/v1/session", "/v1/nope", "/login"];
    for path in paths {
        let response = client().get(https.url(path)).sent().await;
        let values: Vec<_> = response
            .headers()
            .get_all("strict-transport-security")
            .iter()
            .collect();
        assert_eq!(values, ["max-age=31536000"], "{path}");
        for server in [&http, &unset] {
            let response = server.get(path).sent().await;
            assert!(
                !response.headers().contains_key("strict-transport-security"),
                "{path}"
            );
        }
    }
}
