//! `GET /metrics` through a real socket: off by default, behind a bearer token or on its own
//! address, parsed with a Prometheus text parser, and counting what the test does.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{PASSWORD, Sent, TestServer, client, problem};
use prometheus_parse::{Scrape, Value};
use reqwest::StatusCode;
use serde_json::json;
use tessera_server::Config;
use tessera_server::config::Secret;

const TOKEN: &str = "metrics-token-0123456789abcdefghijklmnopqrstuv";

fn with_token(config: &mut Config) {
    config.metrics.bearer_token = Some(serde_json::from_value::<Secret>(json!(TOKEN)).unwrap());
}

/// The parse of `text`, after holding every line to the text exposition format's grammar:
/// the parser skips what it cannot read (prometheus-parse 0.2 also skips a sample whose label
/// value holds `}`, such as the route `/v1/sessions/{id}`), so the grammar is checked here.
fn parse(text: &str) -> Scrape {
    let name = r"[a-zA-Z_:][a-zA-Z0-9_:]*";
    let label = r#"[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*""#;
    let number = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+|Inf|NaN)";
    let grammar = regex::Regex::new(&format!(
        r"^(?:# HELP {name} .*|# TYPE {name} (?:counter|gauge|histogram|summary|untyped)|{name}(?:\{{{label}(?:,{label})*\}})? {number})$"
    ))
    .unwrap();
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        assert!(grammar.is_match(line), "not Prometheus text: {line:?}");
    }
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).unwrap()
}

/// `GET /metrics` with `Authorization: {authorization}`, if given.
async fn get_metrics(server: &TestServer, authorization: Option<&str>) -> reqwest::Response {
    let mut request = server.get("/metrics");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.sent().await
}

/// The scrape's text and its parse.
async fn scrape(server: &TestServer) -> (String, Scrape) {
    let response = get_metrics(server, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4"
    );
    let text = response.text().await.unwrap();
    let parsed = parse(&text);
    (text, parsed)
}

/// The value of the sample named `metric` whose labels include `labels` (0 when absent:
/// a labelled counter appears at its first increment).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == metric)
        .filter(|sample| {
            labels
                .iter()
                .all(|(name, value)| sample.labels.get(name) == Some(value))
        })
        .map(|sample| match &sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
            other => panic!("{metric} is not a number: {other:?}"),
        })
        .collect();
    assert!(found.len() <= 1, "{metric} {labels:?} matches {found:?}");
    found.first().copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_off_unless_configured() {
    let server = TestServer::start(|_| {}).await;
    let response = get_metrics(&server, Some(&format!("Bearer {TOKEN}"))).await;
    problem(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn the_scrape_needs_the_token_which_no_answer_shows() {
    let server = TestServer::start(with_token).await;
    let without = get_metrics(&server, None).await;
    let mut bodies = vec![problem(without, StatusCode::UNAUTHORIZED, "unauthenticated").await];
    let wrong = get_metrics(&server, Some(&format!("Bearer {TOKEN}x"))).await;
    bodies.push(problem(wrong, StatusCode::UNAUTHORIZED, "unauthenticated").await);
    let basic = get_metrics(&server, Some(&format!("Basic {TOKEN}"))).await;
    bodies.push(problem(basic, StatusCode::UNAUTHORIZED, "unauthenticated").await);
    for body in &bodies {
        assert!(!body.to_string().contains(TOKEN), "{body}");
    }

    let right = get_metrics(&server, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(right.status(), StatusCode::OK);
    let headers = format!("{:?}", right.headers());
    let text = right.text().await.unwrap();
    assert!(!headers.contains(TOKEN) && !text.contains(TOKEN));
    assert!(
        !format!("{:?}", server.config).contains(TOKEN),
        "Debug redacts it"
    );
    parse(&text);
}

#[tokio::test]
async fn counters_move_as_the_test_acts() {
    let server = TestServer::start(with_token).await;
    server.user_session("alice").await;
    let (before_text, before) = scrape(&server).await;

    let cookie = server.login("alice", PASSWORD).await;
    let failed = server.login_response("alice", "wrong password").await;
    problem(failed, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let checked = server
        .get("/v1/session")
        .header("cookie", cookie.cookie())
        .sent()
        .await;
    assert_eq!(checked.status(), StatusCode::OK);
    let token_login: serde_json::Value = server
        .post("/v1/login")
        .json(&json!({"username": "alice", "password": PASSWORD, "transport": "token"}))
        .sent()
        .await
        .json()
        .await
        .unwrap();
    let jwt = token_login["access_token"].as_str().unwrap();
    let checked = server.get("/v1/session").bearer_auth(jwt).sent().await;
    assert_eq!(checked.status(), StatusCode::OK);
    let refused = server.get("/v1/session").sent().await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let probe = "/no-such-path-7f3a9c";
    let missing = server.get(probe).sent().await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let unknown_session = "s_probe_7f3a9c";
    let revoked = server
        .delete(&format!("/v1/sessions/{unknown_session}"))
        .bearer_auth(jwt)
        .sent()
        .await;
    assert_eq!(revoked.status(), StatusCode::NOT_FOUND);

    let (after_text, after) = scrape(&server).await;
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    assert_eq!(moved("tessera_logins_total", &[("outcome", "ok")]), 2.0);
    assert_eq!(
        moved(
            "tessera_logins_total",
            &[("outcome", "invalid_credentials")]
        ),
        1.0
    );
    let checks = "tessera_session_checks_total";
    assert_eq!(
        moved(checks, &[("transport", "cookie"), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        moved(checks, &[("transport", "jwt"), ("outcome", "ok")]),
        2.0
    );
    assert_eq!(
        moved(
            checks,
            &[("transport", "none"), ("outcome", "unauthenticated")]
        ),
        1.0
    );
    let requests = "tessera_http_requests_total";
    let route = |route, status| [("route", route), ("status", status)];
    assert_eq!(moved(requests, &route("/v1/session", "200")), 2.0);
    assert_eq!(moved(requests, &route("/v1/session", "401")), 1.0);
    assert_eq!(moved(requests, &route("/v1/login", "200")), 2.0);
    assert_eq!(moved(requests, &route("/v1/login", "401")), 1.0);
    assert_eq!(moved(requests, &route("unmatched", "404")), 1.0);
    // The parser skips this sample (see `parse`): read from the text.
    let line = r#"tessera_http_requests_total{route="/v1/sessions/{id}",status="404"} "#;
    let count = |text: &str| {
        text.lines()
            .find_map(|sample| sample.strip_prefix(line))
            .map_or(0.0, |value| value.parse::<f64>().unwrap())
    };
    assert_eq!(count(&after_text) - count(&before_text), 1.0);
    assert_eq!(moved(requests, &route("/metrics", "200")), 1.0);
    assert_eq!(
        moved(
            "tessera_http_request_duration_seconds_count",
            &[("route", "/v1/session")]
        ),
        3.0
    );
    assert!(moved("tessera_session_cache_lookups_total", &[("result", "hit")]) >= 2.0);
    let store = |operation| [("backend", "sqlite"), ("operation", operation)];
    assert_eq!(
        moved(
            "tessera_store_operation_duration_seconds_count",
            &store("insert_session")
        ),
        2.0
    );
    assert!(
        moved(
            "tessera_store_operation_duration_seconds_count",
            &store("user_by_username")
        ) >= 3.0
    );
    assert_eq!(value(&after, "tessera_store_errors_total", &[]), 0.0);
    assert!(value(&after, "tessera_signing_keys_published", &[]) >= 1.0);
    assert!(value(&after, "tessera_session_cache_entries", &[]) >= 2.0);
    let age = value(&after, "tessera_revocation_feed_age_seconds", &[]);
    assert!((0.0..5.0).contains(&age), "feed age {age}");
    assert_eq!(
        value(&after, "tessera_revocation_feed_max_staleness_seconds", &[]),
        10.0
    );
    assert_eq!(value(&after, "tessera_password_hash_queued", &[]), 0.0);
    assert!(moved("tessera_password_hash_wait_seconds_count", &[]) >= 3.0);
    // Routes are labelled by template, never by the path a client chose.
    for sample in &after.samples {
        let labels = format!("{:?}", sample.labels);
        assert!(
            !labels.contains(probe) && !labels.contains(unknown_session),
            "{labels}"
        );
    }

    // A logout is remembered in process (until the revocation retention has passed).
    let remembered = |samples: &Scrape| {
        value(
            samples,
            "tessera_revocations_remembered",
            &[("kind", "session")],
        )
    };
    let logout = server
        .post("/v1/logout")
        .header("cookie", cookie.cookie())
        .header("x-csrf-token", &cookie.csrf)
        .sent()
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let (_, logged_out) = scrape(&server).await;
    assert_eq!(remembered(&logged_out) - remembered(&after), 1.0);
    assert_eq!(
        value(
            &logged_out,
            "tessera_revocations_remembered",
            &[("kind", "user")]
        ),
        0.0
    );
}

#[tokio::test]
async fn a_separate_bind_serves_metrics_there_only() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_address = free.local_addr().unwrap();
    drop(free);
    let server = TestServer::start(|config| config.metrics.bind = Some(metrics_address)).await;
    let main = get_metrics(&server, None).await;
    problem(main, StatusCode::NOT_FOUND, "not_found").await;
    let separate = format!("http://{metrics_address}");
    let mut scraped = None;
    // The listener is bound before the main one accepts; retry only for start-up order.
    for _ in 0..50 {
        match client().get(format!("{separate}/metrics")).send().await {
            Ok(response) => {
                scraped = Some(response);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let scraped = scraped.expect("the metrics listener answers");
    assert_eq!(scraped.status(), StatusCode::OK);
    let scrape = parse(&scraped.text().await.unwrap());
    assert!(value(&scrape, "tessera_signing_keys_published", &[]) >= 1.0);
    let other = client().get(format!("{separate}/v1/session")).sent().await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_short_token_or_a_shared_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    for (text, key) in [
        (
            "[metrics]\nbearer_token = \"short\"\n",
            "metrics.bearer_token",
        ),
        (
            "[server]\nbind = \"127.0.0.1:9100\"\n[metrics]\nbind = \"127.0.0.1:9100\"\n",
            "metrics.bind",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let error = Config::load(Some(&file)).unwrap_err();
        assert!(error.to_string().contains(key), "{error}");
    }
}
