//! One-time operation tokens and child sessions through the real layer, over real sockets,
//! against the stand-in issuer of `common` (real keys, real JWKS, the revocation feed and
//! introspection in Tessera's shapes): a token opens its own operation once and nothing else,
//! access and one-time tokens are never taken for each other, revocation and expiry apply,
//! and a child session opens only its own service.
//!
//! The Redis replay guard shared by replicas is in `one_time_redis.rs`.
//!
//! Run: `cargo test -p tessera-tower --test one_time`

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test code: a panic is a failed test.

mod common;

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::*;
use serde_json::{Value, json};
use tessera_tower::{MemoryReplayGuard, Principal, TesseraAuth, require_operation, require_scope};

/// The billing service of the story: `POST /refunds` wants a one-time `refund` token,
/// `POST /exports` an `export` one; the rest are ordinary routes.
async fn billing_service(auth: TesseraAuth) -> String {
    let app =
        Router::new()
            .route(
                "/refunds",
                post(|caller: Principal| async move { Json(describe(&caller)) })
                    .route_layer(require_operation("refund")),
            )
            .route(
                "/exports",
                post(|caller: Principal| async move { Json(describe(&caller)) })
                    .route_layer(require_operation("export")),
            )
            .route(
                "/invoices",
                get(|caller: Principal| async move { Json(describe(&caller)) }),
            )
            .route(
                "/catalog",
                get(|caller: Option<Principal>| async move {
                    Json(json!({"signed_in": caller.is_some()}))
                }),
            )
            .route("/status", get(|| async { "up" }))
            .route(
                "/refund-reports",
                get(|| async { "reports" }).route_layer(require_scope("refund")),
            )
            .layer(auth);
    serve(app).await
}

async fn billing(issuer: &Issuer) -> String {
    billing_service(issuer.auth("billing").build().await.unwrap()).await
}

async fn assert_invalid_token(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    assert_eq!(
        challenge(&response).as_deref(),
        Some(INVALID_TOKEN),
        "{what}"
    );
    assert!(
        response.text().await.unwrap().is_empty(),
        "{what}: no reason given"
    );
}

#[tokio::test]
async fn a_one_time_token_is_accepted_once_on_its_operation_route() {
    let issuer = Issuer::start().await;
    let service = billing(&issuer).await;
    let claims = issuer.one_time_claims("alice", "session-a", "billing", "refund");
    let token = issuer.sign_one_time(&claims);

    let accepted = send("POST", &format!("{service}/refunds"), Some(&token)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let caller: Value = accepted.json().await.unwrap();
    assert_eq!(caller["sub"], "alice");
    assert_eq!(caller["sid"], "session-a");
    assert_eq!(caller["operation"], "refund");
    assert_eq!(caller["transaction_id"], claims.txn.unwrap().as_str());
    assert_eq!(caller["jti"], claims.jti.as_str());
    assert_eq!(caller["actor"], json!(["cart", "web"]));
    assert_eq!(caller["aud"], json!(["billing"]));
    assert_eq!(caller["one_time"], true);

    let replay = send("POST", &format!("{service}/refunds"), Some(&token)).await;
    assert_invalid_token(replay, "second presentation").await;

    let anonymous = send("POST", &format!("{service}/refunds"), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&anonymous).as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn elsewhere_a_one_time_token_is_refused_and_not_used_up() {
    let issuer = Issuer::start().await;
    let service = billing(&issuer).await;
    let token =
        issuer.sign_one_time(&issuer.one_time_claims("bob", "session-b", "billing", "refund"));

    for (method, path) in [
        ("GET", "/invoices"),
        ("GET", "/catalog"),
        ("GET", "/status"),
        ("GET", "/refund-reports"),
        ("GET", "/no-such-route"),
    ] {
        let refused = send(method, &format!("{service}{path}"), Some(&token)).await;
        assert_invalid_token(refused, path).await;
    }
    let other_operation = send("POST", &format!("{service}/exports"), Some(&token)).await;
    assert_eq!(other_operation.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&other_operation).as_deref(),
        Some(r#"Bearer error="insufficient_scope", scope="export""#)
    );

    // None of that used it up: it still works, once, where it belongs.
    let accepted = send("POST", &format!("{service}/refunds"), Some(&token)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let replay = send("POST", &format!("{service}/refunds"), Some(&token)).await;
    assert_invalid_token(replay, "after use").await;
    // And a used token is no better anywhere else.
    let afterwards = send("GET", &format!("{service}/invoices"), Some(&token)).await;
    assert_invalid_token(afterwards, "used token elsewhere").await;

    // Without the layer's extractors (a plain tower service), the API refuses it too.
    let auth = issuer.auth("billing").build().await.unwrap();
    let mut headers = axum::http::HeaderMap::new();
    let fresh =
        issuer.sign_one_time(&issuer.one_time_claims("bob", "session-b", "billing", "refund"));
    headers.insert("authorization", format!("Bearer {fresh}").parse().unwrap());
    assert_eq!(
        auth.authenticate(&axum::http::Method::GET, &headers).await,
        Err(tessera_tower::Rejection::InvalidToken)
    );
}

#[tokio::test]
async fn access_and_one_time_tokens_are_never_taken_for_each_other() {
    let issuer = Issuer::start().await;
    let service = billing(&issuer).await;

    // An access token, even one whose scope names the operation, is not a one-time token:
    // it could be replayed for its whole lifetime.
    let mut access = issuer.access_claims("carol", "session-c", "billing");
    access.scope = Some("refund".to_owned());
    access
        .extra
        .insert("txn".to_owned(), json!(access.jti.clone()));
    let access = issuer.sign_access(&access);
    for _ in 0..2 {
        let refused = send("POST", &format!("{service}/refunds"), Some(&access)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge(&refused).as_deref(),
            Some(r#"Bearer error="insufficient_scope", scope="refund""#)
        );
    }
    let ordinary = send("GET", &format!("{service}/invoices"), Some(&access)).await;
    assert_eq!(ordinary.status(), StatusCode::OK);
    let reports = send("GET", &format!("{service}/refund-reports"), Some(&access)).await;
    assert_eq!(
        reports.status(),
        StatusCode::OK,
        "require_scope still serves access tokens"
    );

    // A one-time token is not an access token (see the test above); its header cannot be
    // swapped for `at+jwt` without breaking the signature.
    let one_time =
        issuer.sign_one_time(&issuer.one_time_claims("carol", "session-c", "billing", "refund"));
    let mut parts: Vec<String> = one_time.split('.').map(str::to_owned).collect();
    let header = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &parts[0])
            .unwrap(),
    )
    .unwrap();
    assert!(header.contains(r#""typ":"txntoken+jwt""#), "{header}");
    parts[0] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        header.replace("txntoken+jwt", "at+jwt"),
    );
    let swapped = parts.join(".");
    assert_invalid_token(
        send("GET", &format!("{service}/invoices"), Some(&swapped)).await,
        "typ swapped to at+jwt",
    )
    .await;
    assert_invalid_token(
        send("POST", &format!("{service}/refunds"), Some(&swapped)).await,
        "typ swapped, on the operation route",
    )
    .await;
    // The honest one-time token is intact after all that.
    let accepted = send("POST", &format!("{service}/refunds"), Some(&one_time)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
}

#[tokio::test]
async fn expired_too_long_or_other_audience_one_time_tokens_are_refused() {
    let issuer = Issuer::start().await;
    let service = billing(&issuer).await;
    let refunds = format!("{service}/refunds");

    // Expired beyond the 30 s leeway.
    let mut expired = issuer.one_time_claims("dave", "session-d", "billing", "refund");
    expired.iat -= 100;
    expired.exp = expired.iat + 30;
    assert_invalid_token(
        send("POST", &refunds, Some(&issuer.sign_one_time(&expired))).await,
        "expired",
    )
    .await;

    // A lifetime beyond the layer's bound (5 min by default).
    let mut long = issuer.one_time_claims("dave", "session-d", "billing", "refund");
    long.exp = long.iat + 3600;
    assert_invalid_token(
        send("POST", &refunds, Some(&issuer.sign_one_time(&long))).await,
        "hour-long",
    )
    .await;

    // Minted for another service.
    let cart = issuer.one_time_claims("dave", "session-d", "cart", "refund");
    assert_invalid_token(
        send("POST", &refunds, Some(&issuer.sign_one_time(&cart))).await,
        "other audience",
    )
    .await;

    // A layer configured with a tighter bound refuses what the default accepts.
    let strict = billing_service(
        issuer
            .auth("billing")
            .max_operation_token_lifetime(Duration::from_secs(10))
            .build()
            .await
            .unwrap(),
    )
    .await;
    // 60 s is past 10 s + the 30 s leeway, well within the default 5 min + 30 s.
    let mut minute = issuer.one_time_claims("dave", "session-d", "billing", "refund");
    minute.exp = minute.iat + 60;
    let minute = issuer.sign_one_time(&minute);
    assert_invalid_token(
        send("POST", &format!("{strict}/refunds"), Some(&minute)).await,
        "longer than the configured bound",
    )
    .await;
    assert_eq!(
        send("POST", &refunds, Some(&minute)).await.status(),
        StatusCode::OK
    );
}

/// Waits until `probe` (an access token of the revoked session or stale user) is refused:
/// the feed has reached the layer. Two seconds at most.
async fn until_refused(url: &str, probe: &str) {
    let started = Instant::now();
    loop {
        let status = send("GET", url, Some(probe)).await.status();
        if status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the revocation did not reach the layer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_revoked_session_or_stale_user_refuses_its_one_time_tokens() {
    let issuer = Issuer::start().await;
    let service = billing(&issuer).await;
    let invoices = format!("{service}/invoices");
    let refunds = format!("{service}/refunds");

    let revoked =
        issuer.sign_one_time(&issuer.one_time_claims("erin", "session-e", "billing", "refund"));
    let probe = issuer.sign_access(&issuer.access_claims("erin", "session-e", "billing"));
    let unrelated =
        issuer.sign_one_time(&issuer.one_time_claims("erin", "session-e2", "billing", "refund"));
    issuer.revoke_session("erin", "session-e");
    until_refused(&invoices, &probe).await;
    assert_invalid_token(
        send("POST", &refunds, Some(&revoked)).await,
        "one-time token of a revoked session",
    )
    .await;
    assert_eq!(
        send("POST", &refunds, Some(&unrelated)).await.status(),
        StatusCode::OK,
        "another session of the same user is untouched"
    );

    // A change of the user's standing: tokens issued before it are stale.
    let mut earlier = issuer.one_time_claims("frank", "session-f", "billing", "refund");
    earlier.iat -= 5;
    let earlier = issuer.sign_one_time(&earlier);
    let mut probe = issuer.access_claims("frank", "session-f", "billing");
    probe.iat -= 5;
    let probe = issuer.sign_access(&probe);
    issuer.stale_user("frank", now() - 2);
    until_refused(&invoices, &probe).await;
    assert_invalid_token(
        send("POST", &refunds, Some(&earlier)).await,
        "one-time token issued before the user went stale",
    )
    .await;
    let fresh =
        issuer.sign_one_time(&issuer.one_time_claims("frank", "session-f", "billing", "refund"));
    assert_eq!(
        send("POST", &refunds, Some(&fresh)).await.status(),
        StatusCode::OK,
        "a token issued since is fine"
    );
}

#[tokio::test]
async fn twenty_concurrent_presentations_to_one_layer_accept_exactly_one() {
    let issuer = Issuer::start().await;
    let service = billing_service(
        issuer
            .auth("billing")
            .replay_guard(MemoryReplayGuard::new(1000))
            .build()
            .await
            .unwrap(),
    )
    .await;
    let token =
        issuer.sign_one_time(&issuer.one_time_claims("gina", "session-g", "billing", "refund"));
    let url = format!("{service}/refunds");
    let presentations: Vec<_> = (0..20)
        .map(|_| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move { send("POST", &url, Some(&token)).await.status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for presentation in presentations {
        statuses.push(presentation.await.unwrap());
    }
    let accepted = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    let replays = statuses
        .iter()
        .filter(|status| **status == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!((accepted, replays), (1, 19), "{statuses:?}");
}

#[tokio::test]
async fn a_child_session_opens_only_its_own_service() {
    let issuer = Issuer::start().await;
    let service = billing_service(
        issuer
            .auth("billing")
            .accept_session_tokens()
            .accept_session_cookie("__Host-tessera_session")
            .build()
            .await
            .unwrap(),
    )
    .await;
    let invoices = format!("{service}/invoices");

    let ordinary = issuer.session_token("hana", "session-h", None);
    let own_child = issuer.session_token("hana", "child-billing", Some("billing"));
    let cart_child = issuer.session_token("hana", "child-cart", Some("cart"));

    let answer = send("GET", &invoices, Some(&ordinary)).await;
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "same-origin sessions work as before"
    );
    let caller: Value = answer.json().await.unwrap();
    assert_eq!(caller["aud"], json!([]));

    let answer = send("GET", &invoices, Some(&own_child)).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let caller: Value = answer.json().await.unwrap();
    assert_eq!(caller["sid"], "child-billing");
    assert_eq!(caller["aud"], json!(["billing"]));

    assert_invalid_token(
        send("GET", &invoices, Some(&cart_child)).await,
        "a cart session at billing",
    )
    .await;
    let by_cookie = reqwest::Client::new()
        .get(&invoices)
        .header("cookie", format!("__Host-tessera_session={cart_child}"))
        .send()
        .await
        .unwrap();
    assert_invalid_token(by_cookie, "a cart session's cookie at billing").await;
    // Asked twice: the refusal is cached like any inactive answer, and still a refusal.
    assert_invalid_token(
        send("GET", &invoices, Some(&cart_child)).await,
        "a cart session at billing, cached",
    )
    .await;

    // A session is not a one-time token either.
    let refused = send("POST", &format!("{service}/refunds"), Some(&own_child)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}
