//! CORS for cross-origin apps on the token transport (`server.cors_origins`), over a real
//! socket: a listed origin's preflight and requests succeed, an unlisted origin gets no CORS
//! headers, nothing is ever in credentials mode, and with no origins configured nothing
//! changes. These check the headers a browser acts on; `tests/cors_browser.rs` drives a real
//! headless Chromium from another origin.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{PASSWORD, Sent, TestServer, client};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

const LISTED: &str = "https://app.example";
const UNLISTED: &str = "https://evil.example";

async fn server(origins: &[&str]) -> TestServer {
    let origins: Vec<_> = origins
        .iter()
        .map(|origin| origin.parse().unwrap())
        .collect();
    let server = TestServer::start(|config| config.server.cors_origins = origins).await;
    assert_eq!(
        server.register("alice", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    server
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

fn never_credentials(response: &Response) {
    assert_eq!(
        header(response, "access-control-allow-credentials"),
        None,
        "{}",
        response.url()
    );
}

async fn preflight(server: &TestServer, origin: &str, path: &str, method: &str) -> Response {
    client()
        .request(Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .sent()
        .await
}

async fn token_login(server: &TestServer, origin: &str) -> Response {
    server
        .post("/v1/login")
        .header("origin", origin)
        .json(&json!({"username": "alice", "password": PASSWORD, "transport": "token"}))
        .sent()
        .await
}

#[tokio::test]
async fn a_listed_origin_gets_preflight_answers_and_can_use_the_token_transport() {
    let server = server(&[LISTED]).await;
    for (path, method) in [
        ("/v1/login", "POST"),
        ("/v1/session", "GET"),
        ("/v1/sessions", "DELETE"),
        ("/v1/token", "POST"),
    ] {
        let answer = preflight(&server, LISTED, path, method).await;
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        assert_eq!(header(&answer, "access-control-allow-origin"), Some(LISTED));
        let methods = header(&answer, "access-control-allow-methods").unwrap();
        assert!(methods.contains(method), "{methods}");
        let headers = header(&answer, "access-control-allow-headers").unwrap();
        assert!(headers.contains("authorization") && headers.contains("content-type"));
        assert_eq!(header(&answer, "access-control-max-age"), Some("600"));
        assert!(header(&answer, "vary").unwrap().contains("origin"));
        never_credentials(&answer);
    }

    let login = token_login(&server, LISTED).await;
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(header(&login, "access-control-allow-origin"), Some(LISTED));
    assert!(header(&login, "vary").unwrap().contains("origin"));
    never_credentials(&login);
    let tokens: Value = login.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let session = server
        .get("/v1/session")
        .header("origin", LISTED)
        .bearer_auth(access)
        .sent()
        .await;
    assert_eq!(session.status(), StatusCode::OK);
    assert_eq!(
        header(&session, "access-control-allow-origin"),
        Some(LISTED)
    );
    never_credentials(&session);

    let refreshed = server
        .post("/v1/token")
        .header("origin", LISTED)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .sent()
        .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(
        header(&refreshed, "access-control-allow-origin"),
        Some(LISTED)
    );
    never_credentials(&refreshed);

    let jwks = server
        .get("/.well-known/jwks.json")
        .header("origin", LISTED)
        .sent()
        .await;
    assert_eq!(header(&jwks, "access-control-allow-origin"), Some(LISTED));

    // The cookie transport stays same-site: a listed CORS origin is no CSRF-allowed origin.
    let cookie_login = server
        .post("/v1/login")
        .header("origin", LISTED)
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .sent()
        .await;
    assert_eq!(cookie_login.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_unlisted_origin_gets_no_cors_headers() {
    let server = server(&[LISTED]).await;
    // tower-http still lists the methods and headers in a preflight answer; without
    // `Access-Control-Allow-Origin` the browser refuses the request all the same.
    let answer = preflight(&server, UNLISTED, "/v1/session", "GET").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    never_credentials(&answer);
    let session = server
        .get("/v1/session")
        .header("origin", UNLISTED)
        .sent()
        .await;
    assert_eq!(header(&session, "access-control-allow-origin"), None);
    never_credentials(&session);
    let login = token_login(&server, UNLISTED).await;
    assert_eq!(
        login.status(),
        StatusCode::FORBIDDEN,
        "csrf_failed as before"
    );
    assert_eq!(header(&login, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn without_cors_origins_nothing_changes() {
    let server = server(&[]).await;
    let answer = preflight(&server, LISTED, "/v1/session", "GET").await;
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-max-age",
        "vary",
    ] {
        assert_eq!(header(&answer, name), None, "{name}");
    }
    let login = token_login(&server, LISTED).await;
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&login, "access-control-allow-origin"), None);
    assert_eq!(header(&login, "vary"), None);
}
