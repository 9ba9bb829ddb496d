//! The seeds' microservice story end to end, from outside: a real `tessera serve` process,
//! the example's billing service (two replicas sharing a Redis replay guard) and cart service
//! (`examples/story`) on loopback sockets, and plain HTTP between them.
//!
//! Log in with a cookie → exchange it for a one-time `refund` token → billing accepts it
//! once, refuses the replay, refuses it on another operation → exchange for a cart token and
//! that for the cart's own session cookie → the cart works on that cookie alone → logout at
//! Tessera → the cart session and every unexpired exchanged token are refused within the
//! propagation bound.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use story_example::{Settings, billing, cart};
use tessera_tower::RedisReplayGuard;

use common::{COOKIE_NAME, PASSWORD, tessera_command};

/// How fast a logout at Tessera must reach the services (by the revocation stream).
const PROPAGATION_BOUND: Duration = Duration::from_secs(2);
const BILLING: &str = "https://billing.example";
const CART: &str = "https://cart.example";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const COOKIE_SUBJECT: &str = "urn:tessera:params:oauth:token-type:session_cookie";
const TXN: &str = "urn:ietf:params:oauth:token-type:txn_token";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let output = tessera_command(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `tessera client add NAME`: its id and secret.
fn client(dir: &std::path::Path, name: &str) -> (String, String) {
    let added = cli(dir, &["client", "add", name]);
    let field = |prefix: &str| {
        added
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    (field("client_id:"), field("client_secret:"))
}

struct Tessera {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Tessera {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn spawn(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Waits until `request()` answers `status`, within the propagation bound.
async fn until_status<F, Fut>(what: &str, status: StatusCode, request: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let started = Instant::now();
    loop {
        let seen = request().await.status();
        if seen == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PROPAGATION_BOUND,
            "{what}: still {seen} after {PROPAGATION_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_story_runs_from_login_to_logout() {
    // Tessera, with billing and cart registered, each with its client.
    let dir = tempfile::tempdir().unwrap();
    cli(dir.path(), &["init"]);
    cli(
        dir.path(),
        &[
            "service",
            "add",
            "billing",
            "--audience",
            BILLING,
            "--scope",
            "invoices:read",
            "--scope",
            "refund",
            "--scope",
            "void_invoice",
            "--max-ttl",
            "2m",
        ],
    );
    cli(
        dir.path(),
        &[
            "service",
            "add",
            "cart",
            "--audience",
            CART,
            "--scope",
            "cart",
            "--sessions",
        ],
    );
    let (billing_id, billing_secret) = client(dir.path(), "billing");
    let (cart_id, cart_secret) = client(dir.path(), "cart");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = tessera_command(dir.path())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        // Only the stream's push can meet the bound below.
        .env("TESSERA__SESSIONS__REVOCATION_POLL", "5s")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let tessera = Tessera {
        child,
        base: base.clone(),
        _dir: dir,
    };
    let started = Instant::now();
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tessera did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Billing: two replicas sharing one Redis replay guard (this test's own key prefix).
    let redis_url = std::env::var("TESSERA_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("tessera-story-{}:", std::process::id());
    let billing_settings = Settings {
        tessera: tessera.base.clone(),
        audience: BILLING.to_owned(),
        client_id: billing_id,
        client_secret: billing_secret,
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let guard = RedisReplayGuard::connect(&redis_url, prefix.clone())
            .await
            .unwrap_or_else(|error| panic!("Redis at {redis_url}: {error}"));
        let auth = billing_settings
            .auth(|builder| builder.replay_guard(guard))
            .await
            .unwrap();
        replicas.push(spawn(billing::app(auth)).await);
    }
    let cart_settings = Settings {
        tessera: tessera.base.clone(),
        audience: CART.to_owned(),
        client_id: cart_id,
        client_secret: cart_secret,
    };
    let cart_auth = cart_settings
        .auth(|builder| builder.accept_session_cookie(cart::COOKIE))
        .await
        .unwrap();
    let cart_base = spawn(cart::app(cart_settings, cart_auth)).await;
    let http = http();

    // Log in with the cookie transport, as a browser app does.
    let registered = http
        .post(format!("{base}/v1/users"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login = http
        .post(format!("{base}/v1/login"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = common::session_set_cookie(login.headers())
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with(COOKIE_NAME));
    let login: Value = login.json().await.unwrap();
    let csrf = login["csrf_token"].as_str().unwrap().to_owned();
    let exchange = |form: Vec<(&'static str, &'static str)>| {
        let mut form = form;
        form.push(("grant_type", EXCHANGE));
        form.push(("subject_token_type", COOKIE_SUBJECT));
        http.post(format!("{base}/v1/token"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .form(&form)
            .send()
    };
    let token_of = |body: Value| body["access_token"].as_str().unwrap().to_owned();

    // A one-time refund token: refused on another operation (and not used up), accepted
    // once on refunds, refused again.
    let refund_token = exchange(vec![
        ("audience", BILLING),
        ("requested_token_type", TXN),
        ("scope", "refund"),
    ]);
    let refund_token = token_of(refund_token.await.unwrap().json().await.unwrap());
    let present = |replica: &str, path: &str, token: &str| {
        http.post(format!("{replica}{path}"))
            .bearer_auth(token)
            .send()
    };
    let other = present(&replicas[0], "/invoices/void", &refund_token)
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let first = present(&replicas[0], "/refunds", &refund_token)
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let refunded: Value = first.json().await.unwrap();
    assert_eq!(refunded["refunded_for"], login["session"]["user"]["id"]);
    for replica in &replicas {
        let replay = present(replica, "/refunds", &refund_token).await.unwrap();
        assert_eq!(
            replay.status(),
            StatusCode::UNAUTHORIZED,
            "replay at {replica}"
        );
    }

    // Twenty concurrent presentations of one fresh token to both replicas: exactly one wins.
    let contested = exchange(vec![
        ("audience", BILLING),
        ("requested_token_type", TXN),
        ("scope", "refund"),
    ]);
    let contested = token_of(contested.await.unwrap().json().await.unwrap());
    let mut attempts = Vec::new();
    for attempt in 0..20 {
        let request = http
            .post(format!("{}/refunds", replicas[attempt % 2]))
            .bearer_auth(&contested);
        attempts.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut accepted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            StatusCode::OK => accepted += 1,
            status => assert_eq!(status, StatusCode::UNAUTHORIZED),
        }
    }
    assert_eq!(accepted, 1, "one one-time token, one refund");

    // Tokens still unused or unexpired at logout: one more one-time token, and an access
    // token for billing's invoices.
    let unused_refund = exchange(vec![
        ("audience", BILLING),
        ("requested_token_type", TXN),
        ("scope", "refund"),
    ]);
    let unused_refund = token_of(unused_refund.await.unwrap().json().await.unwrap());
    let invoices_token = exchange(vec![("audience", BILLING), ("scope", "invoices:read")]);
    let invoices_token = token_of(invoices_token.await.unwrap().json().await.unwrap());
    let invoices = || {
        http.get(format!("{}/invoices", replicas[1]))
            .bearer_auth(&invoices_token)
            .send()
    };
    assert_eq!(invoices().await.unwrap().status(), StatusCode::OK);

    // The cart: an access token for it, exchanged by the cart for its own session cookie.
    let cart_token = exchange(vec![("audience", CART)]);
    let cart_token = token_of(cart_token.await.unwrap().json().await.unwrap());
    let session = http
        .post(format!("{cart_base}/session"))
        .bearer_auth(&cart_token)
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), StatusCode::OK);
    let set_cookie = session.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("__Host-cart_session="),
        "{set_cookie}"
    );
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cart_cookie = set_cookie.split(';').next().unwrap().to_owned();
    let cart_csrf = session.json::<Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The cookie alone opens the cart: no Tessera cookie, no bearer token.
    let show = || {
        http.get(format!("{cart_base}/cart"))
            .header("cookie", &cart_cookie)
            .send()
    };
    assert_eq!(show().await.unwrap().status(), StatusCode::OK);
    let add = |csrf: Option<&str>| {
        let request = http
            .post(format!("{cart_base}/cart/items"))
            .header("cookie", &cart_cookie)
            .json(&json!({"item": "tea"}));
        match csrf {
            Some(csrf) => request.header("x-csrf-token", csrf),
            None => request,
        }
        .send()
    };
    assert_eq!(add(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        add(Some(&cart_csrf)).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let shown: Value = show().await.unwrap().json().await.unwrap();
    assert_eq!(shown["items"], json!(["tea"]));
    // The cart's cookie is not a Tessera credential.
    let at_tessera = http
        .get(format!("{base}/v1/session"))
        .bearer_auth(cart_cookie.split_once('=').unwrap().1)
        .send()
        .await
        .unwrap();
    assert_eq!(at_tessera.status(), StatusCode::UNAUTHORIZED);
    // Nor does the cart cookie open billing, nor a cart token billing.
    let cart_token_at_billing = http
        .get(format!("{}/invoices", replicas[0]))
        .bearer_auth(&cart_token)
        .send()
        .await
        .unwrap();
    assert_eq!(cart_token_at_billing.status(), StatusCode::UNAUTHORIZED);

    // Logout at Tessera: everything exchanged from the session ends.
    let logout = http
        .post(format!("{base}/v1/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let cart_took = until_status("the cart cookie", StatusCode::UNAUTHORIZED, || async {
        show().await.unwrap()
    })
    .await;
    let invoices_took = until_status(
        "the billing access token",
        StatusCode::UNAUTHORIZED,
        || async { invoices().await.unwrap() },
    )
    .await;
    let refund_after = present(&replicas[0], "/refunds", &unused_refund)
        .await
        .unwrap();
    assert_eq!(refund_after.status(), StatusCode::UNAUTHORIZED);
    eprintln!(
        "after logout: cart session refused in {cart_took:?}, billing token in {invoices_took:?}"
    );
}
