//! The account's lifecycle over HTTP: re-authentication, the recent-authentication rule,
//! password change (every other session ends in every form; the caller's continues under a
//! new id) and self-service deletion — and that every refused request changes nothing.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{COOKIE_NAME, Login, PASSWORD, Sent, TestServer, problem, session_set_cookie};
use reqwest::StatusCode;
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new passphrase";
/// The re-authentication window the tests run with: shorter than the access-token lifetime
/// (`5m`), so a JWT issued before the clock moves past the window is still valid after.
const WINDOW: Duration = Duration::from_secs(60);

async fn server() -> TestServer {
    TestServer::start_with_clock(|config| {
        config.session.reauthentication_window = WINDOW;
    })
    .await
}

/// A token-transport login: the access token and the refresh token.
async fn token_login(server: &TestServer, password: &str) -> (String, String) {
    let response = server
        .post("/v1/login")
        .json(&json!({"username": "alice", "password": password, "transport": "token"}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
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

async fn status_with_bearer(server: &TestServer, bearer: &str) -> StatusCode {
    server
        .get("/v1/session")
        .bearer_auth(bearer)
        .sent()
        .await
        .status()
}

async fn status_with_cookie(server: &TestServer, login: &Login) -> StatusCode {
    server
        .get("/v1/session")
        .header("cookie", login.cookie())
        .sent()
        .await
        .status()
}

fn claims(jwt: &str) -> Value {
    let segment = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// `POST path` with the login's cookie and CSRF token.
fn cookie_post(server: &TestServer, login: &Login, path: &str) -> reqwest::RequestBuilder {
    server
        .post(path)
        .header("cookie", login.cookie())
        .header("x-csrf-token", &login.csrf)
}

async fn change_with_cookie(
    server: &TestServer,
    login: &Login,
    current: &str,
) -> reqwest::Response {
    cookie_post(server, login, "/v1/password")
        .json(&json!({"current_password": current, "new_password": NEW_PASSWORD}))
        .sent()
        .await
}

async fn reauthenticate(server: &TestServer, login: &Login, password: &str) -> reqwest::Response {
    cookie_post(server, login, "/v1/reauthenticate")
        .json(&json!({"password": password}))
        .sent()
        .await
}

/// Every credential form of the user's other sessions ends; the caller's session continues
/// under a new id with a new cookie; only the new password logs in.
#[tokio::test]
async fn a_password_change_ends_every_other_session_and_renames_the_current_one() {
    let server = server().await;
    let current = server.user_session("alice").await;
    let other_cookie = server.login("alice", PASSWORD).await;
    let bearer = server.login("alice", PASSWORD).await;
    let (jwt, refresh_token) = token_login(&server, PASSWORD).await;
    let bystander = server.user_session("bob").await;
    server.advance(Duration::from_secs(5));

    let response = change_with_cookie(&server, &current, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let renamed = Login::from_response(response).await;
    assert_ne!(renamed.session_id(), current.session_id());
    assert_ne!(renamed.token, current.token);
    assert_ne!(renamed.csrf, current.csrf);
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            renamed.set_cookie.contains(attribute),
            "{}",
            renamed.set_cookie
        );
    }
    assert_eq!(
        renamed.body["session"]["expires_at"], current.body["session"]["expires_at"],
        "the session keeps its absolute expiry"
    );
    assert_ne!(
        renamed.body["session"]["auth_time"],
        current.body["session"]["auth_time"]
    );

    assert_eq!(
        status_with_cookie(&server, &current).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with_cookie(&server, &other_cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with_bearer(&server, &bearer.token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with_bearer(&server, &jwt).await,
        StatusCode::UNAUTHORIZED
    );
    let refused = refresh(&server, &refresh_token).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    assert_eq!(status_with_cookie(&server, &renamed).await, StatusCode::OK);
    assert_eq!(
        status_with_cookie(&server, &bystander).await,
        StatusCode::OK
    );
    let listed: Value = server
        .get("/v1/sessions")
        .header("cookie", renamed.cookie())
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listed}");
    assert_eq!(sessions[0]["id"], renamed.session_id());

    assert_eq!(
        server.login_response("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    server.login("alice", NEW_PASSWORD).await;
}

/// With a JWT the answer is a new token pair; with a bearer session token, a new session
/// token. The old credential dies either way.
#[tokio::test]
async fn the_new_session_comes_back_in_the_form_the_credential_came_in() {
    let server = server().await;
    server.user_session("alice").await;
    let (jwt, old_refresh) = token_login(&server, PASSWORD).await;
    assert!(claims(&jwt)["auth_time"].is_i64(), "{}", claims(&jwt));

    let response = server
        .post("/v1/password")
        .bearer_auth(&jwt)
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(session_set_cookie(response.headers()).is_none());
    let body: Value = response.json().await.unwrap();
    let new_jwt = body["access_token"].as_str().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_ne!(claims(new_jwt)["sid"], claims(&jwt)["sid"]);
    assert_eq!(claims(new_jwt)["sid"], body["session"]["id"]);
    assert_eq!(
        status_with_bearer(&server, &jwt).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_with_bearer(&server, new_jwt).await, StatusCode::OK);
    assert_eq!(
        refresh(&server, &old_refresh).await.status(),
        StatusCode::BAD_REQUEST
    );
    let rotated = refresh(&server, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rotated.status(), StatusCode::OK);

    let bearer = server.login("alice", NEW_PASSWORD).await;
    let response = server
        .post("/v1/password")
        .bearer_auth(&bearer.token)
        .json(&json!({"current_password": NEW_PASSWORD, "new_password": PASSWORD}))
        .sent()
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(session_set_cookie(response.headers()).is_none());
    let body: Value = response.json().await.unwrap();
    let token = body["session_token"].as_str().unwrap();
    assert_ne!(body["session"]["id"], bearer.session_id());
    assert_eq!(
        status_with_bearer(&server, &bearer.token).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_with_bearer(&server, token).await, StatusCode::OK);
    assert!(!body.to_string().contains(PASSWORD));

    // The refresh cookie is for JWT clients only.
    let refused = server
        .post("/v1/password")
        .bearer_auth(token)
        .json(&json!({
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "refresh_cookie": true
        }))
        .sent()
        .await;
    problem(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(status_with_bearer(&server, token).await, StatusCode::OK);
}

/// Past the window the sensitive actions are refused with a stable code and change nothing;
/// a re-authentication (a wrong password does not count) lets the same request through.
#[tokio::test]
async fn without_a_recent_authentication_sensitive_actions_are_refused_until_reauthentication() {
    let server = server().await;
    let current = server.user_session("alice").await;
    let other = server.login("alice", PASSWORD).await;
    let (jwt, _) = token_login(&server, PASSWORD).await;
    server.advance(WINDOW + Duration::from_secs(1));

    let refused = change_with_cookie(&server, &current, PASSWORD).await;
    problem(refused, StatusCode::FORBIDDEN, "reauthentication_required").await;
    let refused = server
        .delete("/v1/account")
        .bearer_auth(&jwt)
        .json(&json!({"password": PASSWORD}))
        .sent()
        .await;
    problem(refused, StatusCode::FORBIDDEN, "reauthentication_required").await;
    let refused = server
        .delete("/v1/sessions?scope=others")
        .header("cookie", current.cookie())
        .header("x-csrf-token", &current.csrf)
        .sent()
        .await;
    problem(refused, StatusCode::FORBIDDEN, "reauthentication_required").await;
    for login in [&current, &other] {
        assert_eq!(status_with_cookie(&server, login).await, StatusCode::OK);
    }
    assert_eq!(status_with_bearer(&server, &jwt).await, StatusCode::OK);
    server.login("alice", PASSWORD).await;

    let wrong = reauthenticate(&server, &current, "not the password").await;
    problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let refused = change_with_cookie(&server, &current, PASSWORD).await;
    problem(refused, StatusCode::FORBIDDEN, "reauthentication_required").await;

    let before: Value = server
        .get("/v1/session")
        .header("cookie", current.cookie())
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let proven = reauthenticate(&server, &current, PASSWORD).await;
    assert_eq!(proven.status(), StatusCode::OK);
    let proven: Value = proven.json().await.unwrap();
    let after: Value = server
        .get("/v1/session")
        .header("cookie", current.cookie())
        .sent()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["session"]["auth_time"], proven["auth_time"]);
    assert_ne!(
        after["session"]["auth_time"],
        before["session"]["auth_time"]
    );

    let changed = change_with_cookie(&server, &current, PASSWORD).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(
        status_with_cookie(&server, &other).await,
        StatusCode::UNAUTHORIZED
    );
}

/// A re-authenticated token-transport session's next refresh carries the new `auth_time`.
#[tokio::test]
async fn a_refresh_after_reauthentication_carries_the_new_auth_time() {
    let server = server().await;
    server.user_session("alice").await;
    let (jwt, refresh_token) = token_login(&server, PASSWORD).await;
    let before = claims(&jwt)["auth_time"].as_i64().unwrap();
    server.advance(Duration::from_secs(30));
    let proven = server
        .post("/v1/reauthenticate")
        .bearer_auth(&jwt)
        .json(&json!({"password": PASSWORD}))
        .sent()
        .await;
    assert_eq!(proven.status(), StatusCode::OK);
    let body: Value = refresh(&server, &refresh_token).await.json().await.unwrap();
    let after = claims(body["access_token"].as_str().unwrap())["auth_time"]
        .as_i64()
        .unwrap();
    assert_eq!(after - before, 30);
}

/// Wrong passwords, refused new passwords and missing CSRF tokens change nothing.
#[tokio::test]
async fn a_refused_password_change_changes_nothing() {
    let server = server().await;
    let current = server.user_session("alice").await;
    let other = server.login("alice", PASSWORD).await;

    let wrong = change_with_cookie(&server, &current, "not the password").await;
    problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let weak = cookie_post(&server, &current, "/v1/password")
        .json(&json!({"current_password": PASSWORD, "new_password": "password"}))
        .sent()
        .await;
    problem(weak, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let no_csrf = server
        .post("/v1/password")
        .header("cookie", current.cookie())
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .sent()
        .await;
    problem(no_csrf, StatusCode::FORBIDDEN, "csrf_failed").await;
    let unknown_field = cookie_post(&server, &current, "/v1/password")
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "x": 1}))
        .sent()
        .await;
    problem(
        unknown_field,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let not_json = cookie_post(&server, &current, "/v1/password")
        .body("current_password=x")
        .sent()
        .await;
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let anonymous = server
        .post("/v1/password")
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .sent()
        .await;
    problem(anonymous, StatusCode::UNAUTHORIZED, "unauthenticated").await;

    for login in [&current, &other] {
        assert_eq!(status_with_cookie(&server, login).await, StatusCode::OK);
    }
    server.login("alice", PASSWORD).await;
    assert_eq!(
        server.login_response("alice", NEW_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Wrong passwords at re-authentication count toward the same throttle as logins.
#[tokio::test]
async fn wrong_reauthentications_are_throttled_like_logins() {
    let server = server().await;
    let current = server.user_session("alice").await;
    for _ in 0..10 {
        let wrong = reauthenticate(&server, &current, "not the password").await;
        problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let throttled = reauthenticate(&server, &current, PASSWORD).await;
    assert!(throttled.headers().contains_key("retry-after"));
    problem(throttled, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let login = server.login_response("alice", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Deletion needs the password and a recent authentication; then the account and every
/// session of it are gone, and the name is free again.
#[tokio::test]
async fn deleting_the_account_ends_everything_and_frees_the_name() {
    let server = server().await;
    let current = server.user_session("alice").await;
    let other = server.login("alice", PASSWORD).await;
    let (jwt, refresh_token) = token_login(&server, PASSWORD).await;
    let delete = |password: &str| {
        server
            .delete("/v1/account")
            .header("cookie", current.cookie())
            .header("x-csrf-token", &current.csrf)
            .json(&json!({"password": password}))
    };

    problem(
        delete("not the password").sent().await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let no_body = server
        .delete("/v1/account")
        .header("cookie", current.cookie())
        .header("x-csrf-token", &current.csrf)
        .sent()
        .await;
    assert!(no_body.status().is_client_error(), "{}", no_body.status());
    server.advance(WINDOW + Duration::from_secs(1));
    problem(
        delete(PASSWORD).sent().await,
        StatusCode::FORBIDDEN,
        "reauthentication_required",
    )
    .await;
    assert_eq!(status_with_cookie(&server, &other).await, StatusCode::OK);
    assert_eq!(status_with_bearer(&server, &jwt).await, StatusCode::OK);

    assert_eq!(
        reauthenticate(&server, &current, PASSWORD).await.status(),
        StatusCode::OK
    );
    let deleted = delete(PASSWORD).sent().await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let cleared: Vec<_> = deleted
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|cookie| cookie.starts_with(&format!("{COOKIE_NAME}="))
                && cookie.contains("Max-Age=0")),
        "{cleared:?}"
    );

    for login in [&current, &other] {
        assert_eq!(
            status_with_cookie(&server, login).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        status_with_bearer(&server, &jwt).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&server, &refresh_token).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.login_response("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.register("alice", NEW_PASSWORD).await.status(),
        StatusCode::CREATED
    );
}
