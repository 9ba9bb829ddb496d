//! CORS in a real browser: a page served from another origin (a second HTTP server on
//! another loopback port) uses Tessera's token transport from headless Chromium — login with
//! `transport: "token"`, `GET /v1/session` with the bearer token, a refresh at `/v1/token` —
//! and the same page served from an origin not in `server.cors_origins` is refused by the
//! browser itself (its `fetch` rejects). `tests/cors.rs` checks the headers; this checks
//! that a browser acts on them as intended.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/chromium.rs"]
mod chromium;
mod common;

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use chromium::Chromedriver;
use common::{PASSWORD, TestServer};
use reqwest::StatusCode;

/// Serves a blank page on a fresh loopback port: the app's origin, `http://127.0.0.1:PORT`.
async fn app_origin() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/",
        get(|| async { Html("<!doctype html><title>app</title><p>app</p>") }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

/// The single-page app's calls, run in the page: log in with the token transport, read the
/// session with the bearer token, refresh, and read the session with the new token.
fn token_transport_script(tessera: &str) -> String {
    format!(
        r#"
        const tessera = {tessera:?};
        const login = await fetch(tessera + "/v1/login", {{
            method: "POST",
            headers: {{ "content-type": "application/json" }},
            body: JSON.stringify({{ username: "alice", password: {PASSWORD:?}, transport: "token" }}),
        }});
        const tokens = await login.json();
        const session = await fetch(tessera + "/v1/session", {{
            headers: {{ authorization: "Bearer " + tokens.access_token }},
        }});
        const sessionBody = await session.json();
        const refresh = await fetch(tessera + "/v1/token", {{
            method: "POST",
            headers: {{ "content-type": "application/x-www-form-urlencoded" }},
            body: new URLSearchParams({{ grant_type: "refresh_token", refresh_token: tokens.refresh_token }}),
        }});
        const refreshed = await refresh.json();
        const again = await fetch(tessera + "/v1/session", {{
            headers: {{ authorization: "Bearer " + refreshed.access_token }},
        }});
        return {{
            login: login.status,
            session: session.status,
            session_id: sessionBody.session && sessionBody.session.id,
            login_session_id: tokens.session && tokens.session.id,
            refresh: refresh.status,
            new_access_differs: refreshed.access_token !== tokens.access_token,
            again: again.status,
            cookies: document.cookie,
        }};
        "#
    )
}

#[tokio::test]
async fn a_listed_origin_uses_the_token_transport_from_chromium_and_an_unlisted_one_is_refused() {
    let listed = app_origin().await;
    let unlisted = app_origin().await;
    let server =
        TestServer::start(|config| config.server.cors_origins = vec![listed.parse().unwrap()])
            .await;
    assert_eq!(
        server.register("alice", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;

    browser.goto(&format!("{listed}/")).await;
    let answer = browser.run(&token_transport_script(&server.base)).await;
    assert!(answer.get("error").is_none(), "{answer}");
    assert_eq!(answer["login"], 200, "{answer}");
    assert_eq!(answer["session"], 200, "{answer}");
    assert!(answer["session_id"].is_string(), "{answer}");
    assert_eq!(answer["session_id"], answer["login_session_id"], "{answer}");
    assert_eq!(answer["refresh"], 200, "{answer}");
    assert_eq!(answer["new_access_differs"], true, "{answer}");
    assert_eq!(answer["again"], 200, "{answer}");
    assert_eq!(answer["cookies"], "", "no cookie on the app's origin");

    // The same calls from an origin Tessera does not list: the browser refuses to let the
    // page read any answer — the very first fetch rejects.
    browser.goto(&format!("{unlisted}/")).await;
    let refused = browser.run(&token_transport_script(&server.base)).await;
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(error.contains("Failed to fetch"), "{refused}");
    // A simple GET without a credential is sent by the browser but still unreadable to it.
    let simple = browser
        .run(&format!(
            "const r = await fetch({:?}); return {{ status: r.status }};",
            server.url("/.well-known/jwks.json")
        ))
        .await;
    assert!(
        simple["error"]
            .as_str()
            .is_some_and(|error| error.contains("Failed to fetch")),
        "{simple}"
    );
    // And the listed origin still reads the same document.
    browser.goto(&format!("{listed}/")).await;
    let readable = browser
        .run(&format!(
            "const r = await fetch({:?}); const body = await r.json(); return {{ status: r.status, keys: body.keys.length }};",
            server.url("/.well-known/jwks.json")
        ))
        .await;
    assert_eq!(readable["status"], 200, "{readable}");
    assert!(readable["keys"].as_u64().unwrap() >= 1, "{readable}");
    browser.close().await;
}
