//! `tessera-tower` against real `tessera serve` processes: a real axum service (and a plain
//! tower service) behind the layer, on loopback. Tessera is reached through a small counting
//! proxy (its issuer URL), so the tests can count what the layer fetches at Tessera.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tessera_tower::{Principal, TesseraAuth, TesseraAuthBuilder, require_role};
use tower::{Service as _, ServiceBuilder, ServiceExt as _};

mod common;

use common::{PASSWORD, tessera_command as tessera};

/// How fast a logout must reach the service by push (the feed's poll is set far above it).
const PUSH_BOUND: Duration = Duration::from_secs(2);

fn run(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let output = tessera(dir)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tessera serve` process on a fixed port and data directory, restartable.
struct Tessera {
    dir: tempfile::TempDir,
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Where the service reaches Tessera: the counting proxy, also the tokens' issuer.
    proxy: Proxy,
    client_id: String,
    client_secret: String,
}

impl Tessera {
    async fn start(extra: &[(&str, &str)]) -> Tessera {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let proxy = Proxy::start(format!("http://127.0.0.1:{port}")).await;
        let mut env: Vec<(String, String)> = [
            ("TESSERA__TOKEN__ISSUER", proxy.base.as_str()),
            ("TESSERA__TOKEN__AUDIENCE", r#"["tessera", "orders"]"#),
            ("TESSERA__SESSIONS__REVOCATION_POLL", "100ms"),
            ("TESSERA__TOKEN__KEY_RELOAD", "200ms"),
            ("TESSERA__TOKEN__KEY_PUBLISH_LEAD", "1s"),
        ]
        .iter()
        .chain(extra)
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        env.dedup_by(|later, earlier| later.0 == earlier.0);
        // Only `serve` and `init` create a database; the client is registered before serving.
        run(dir.path(), &env, &["init"]);
        let added = run(dir.path(), &env, &["client", "add", "orders"]);
        let added = String::from_utf8(added.stdout).unwrap();
        let field = |name: &str| {
            added
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap()
                .trim()
                .to_owned()
        };
        let mut tessera = Tessera {
            client_id: field("client_id:"),
            client_secret: field("client_secret:"),
            dir,
            port,
            env,
            child: None,
            proxy,
        };
        tessera.launch().await;
        tessera
    }

    async fn launch(&mut self) {
        let mut command = tessera(self.dir.path());
        command.args(["serve", "--bind", &format!("127.0.0.1:{}", self.port)]);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        self.child = Some(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(response) = reqwest::get(self.url("/healthz")).await
                && response.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tessera serve did not come up");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The layer for `audience`, configured for this Tessera (through the proxy).
    fn auth(&self, audience: &str) -> TesseraAuthBuilder {
        TesseraAuth::builder(&self.proxy.base, audience)
            .client_credentials(&self.client_id, &self.client_secret)
    }

    /// Registers `username` and logs in with the token transport: (access token, session id).
    async fn login(&self, username: &str) -> (String, String) {
        let http = reqwest::Client::new();
        let created = http
            .post(self.url("/v1/users"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(
            [StatusCode::CREATED, StatusCode::CONFLICT].contains(&created.status()),
            "{}",
            created.status()
        );
        let login: Value = http
            .post(self.url("/v1/login"))
            .json(&json!({"username": username, "password": PASSWORD, "transport": "token"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            login["access_token"].as_str().unwrap().to_owned(),
            login["session"]["id"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A reverse proxy in front of Tessera that counts requests by path and streams answers
/// through (the revocation feed included). When Tessera is down it answers `502`.
#[derive(Clone)]
struct Proxy {
    base: String,
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
    counts: Arc<Mutex<HashMap<String, u64>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let state = Upstream {
            base: upstream,
            http: reqwest::Client::new(),
            counts: Arc::clone(&counts),
        };
        let app = Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy { base, counts }
    }

    fn count(&self, path: &str) -> u64 {
        self.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn forward(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    *upstream
        .counts
        .lock()
        .unwrap()
        .entry(parts.uri.path().to_owned())
        .or_default() += 1;
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let mut outgoing = upstream
        .http
        .request(parts.method, format!("{}{path}", upstream.base));
    for (name, value) in &parts.headers {
        if name != "host" {
            outgoing = outgoing.header(name, value);
        }
    }
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    match outgoing.body(body).send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != "transfer-encoding" && name != "content-length" {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// An axum service protected by `auth`, on a loopback socket: its base URL.
async fn orders_service(auth: TesseraAuth) -> String {
    let app =
        Router::new()
            .route(
                "/orders",
                get(|caller: Principal| async move {
                    Json(json!({
                        "sub": caller.subject(),
                        "sid": caller.session_id(),
                        "jti": caller.token_id(),
                        "aud": caller.audience(),
                        "exp": caller.expires_at(),
                    }))
                }),
            )
            .route(
                "/catalog",
                get(|caller: Option<Principal>| async move {
                    Json(json!({"signed_in": caller.is_some()}))
                }),
            )
            .route(
                "/orders/all",
                get(|| async { "everyone's orders" }).route_layer(require_role("admin")),
            )
            .layer(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn get_with(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

fn challenge(response: &reqwest::Response) -> Option<&str> {
    response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decoded(segment: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

/// Forged variants of an honest Tessera token, after `tessera-jose`'s attack corpus: each
/// differs from `honest` in the attacked place. `public_key` is the signing key's JWK `x`.
fn forged_shapes(honest: &str, public_key: &[u8]) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = honest.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let header_json = decoded(header);
    let kid = header_json["kid"].as_str().unwrap().to_owned();
    let with_header = |value: Value| b64(value.to_string().as_bytes());
    let header_with = |member: &str, value: Value| {
        let mut changed = header_json.clone();
        changed[member] = value;
        with_header(changed)
    };
    let mut claims = decoded(payload);
    claims["sub"] = json!("someone-else");
    let other_subject = b64(claims.to_string().as_bytes());
    let hmac_with_public_key = {
        use hmac::{Hmac, Mac};
        let header = header_with("alg", json!("HS256"));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(public_key).unwrap();
        mac.update(format!("{header}.{payload}").as_bytes());
        format!("{header}.{payload}.{}", b64(&mac.finalize().into_bytes()))
    };
    let mut flipped = signature.as_bytes().to_vec();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let mut shapes = vec![
        (
            "alg none, unsigned",
            format!("{}.{payload}.", header_with("alg", json!("none"))),
        ),
        (
            "alg None, signature kept",
            format!(
                "{}.{payload}.{signature}",
                header_with("alg", json!("None"))
            ),
        ),
        ("HS256 keyed with the public key", hmac_with_public_key),
        (
            "alg of another family",
            format!(
                "{}.{payload}.{signature}",
                header_with("alg", json!("ES256"))
            ),
        ),
        (
            "kid injection",
            format!(
                "{}.{payload}.{signature}",
                header_with("kid", json!("../../../dev/null"))
            ),
        ),
        ("no kid", {
            let mut without = header_json.clone();
            without.as_object_mut().unwrap().remove("kid");
            format!("{}.{payload}.{signature}", with_header(without))
        }),
        (
            "embedded jwk",
            format!(
                "{}.{payload}.{signature}",
                header_with(
                    "jwk",
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(public_key)})
                )
            ),
        ),
        (
            "jku",
            format!(
                "{}.{payload}.{signature}",
                header_with("jku", json!("http://127.0.0.1:1/keys"))
            ),
        ),
        (
            "crit",
            format!(
                "{}.{payload}.{signature}",
                header_with("crit", json!(["exp"]))
            ),
        ),
        (
            "typ JWT",
            format!("{}.{payload}.{signature}", header_with("typ", json!("JWT"))),
        ),
        (
            "duplicate kid member",
            format!(
                "{}.{payload}.{signature}",
                b64(
                    format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","kid":"{kid}"}}"#)
                        .as_bytes()
                )
            ),
        ),
        (
            "claims changed under the signature",
            format!("{header}.{other_subject}.{signature}"),
        ),
        (
            "one flipped signature character",
            format!("{header}.{payload}.{}", String::from_utf8(flipped).unwrap()),
        ),
        ("two segments", format!("{header}.{payload}")),
        ("four segments", format!("{honest}.{signature}")),
        ("empty signature", format!("{header}.{payload}.")),
        (
            "standard base64 with padding",
            format!(
                "{header}.{payload}.{}",
                STANDARD.encode(URL_SAFE_NO_PAD.decode(signature).unwrap())
            ),
        ),
        (
            "oversized",
            format!("{header}.{}.{signature}", "A".repeat(9000)),
        ),
        ("garbage", "not-a-token".to_owned()),
    ];
    shapes.retain(|(_, token)| token != honest);
    shapes
}

#[tokio::test]
async fn a_token_for_this_audience_passes_and_every_other_gets_401() {
    let tessera = Tessera::start(&[]).await;
    let orders = orders_service(tessera.auth("orders").build().await.unwrap()).await;
    let billing = orders_service(tessera.auth("billing").build().await.unwrap()).await;
    let (token, session) = tessera.login("alice").await;

    let accepted = get_with(&format!("{orders}/orders"), Some(&token)).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["sid"], session.as_str());
    assert!(body["aud"].as_array().unwrap().contains(&json!("orders")));
    assert!(body["jti"].is_string() && body["exp"].is_i64());

    let other_audience = get_with(&format!("{billing}/orders"), Some(&token)).await;
    assert_eq!(other_audience.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&other_audience),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert!(
        other_audience.text().await.unwrap().is_empty(),
        "no reason given"
    );

    let jwks: Value = reqwest::get(tessera.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    for (shape, forged) in forged_shapes(&token, &x) {
        let refused = get_with(&format!("{orders}/orders"), Some(&forged)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{shape}");
        assert_eq!(
            challenge(&refused),
            Some(r#"Bearer error="invalid_token""#),
            "{shape}"
        );
        assert!(refused.text().await.unwrap().is_empty(), "{shape}");
    }

    let anonymous = get_with(&format!("{orders}/orders"), None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&anonymous), Some("Bearer"));
    let catalog: Value = get_with(&format!("{orders}/catalog"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["signed_in"], false);
    let catalog: Value = get_with(&format!("{orders}/catalog"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(catalog["signed_in"], true);

    // Tessera's tokens carry no roles yet, so an admin-only route says insufficient_scope.
    let forbidden = get_with(&format!("{orders}/orders/all"), Some(&token)).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&forbidden),
        Some(r#"Bearer error="insufficient_scope", scope="admin""#)
    );
    let unauthenticated = get_with(&format!("{orders}/orders/all"), None).await;
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_layer_guards_a_plain_tower_service_as_it_would_a_grpc_one() {
    let tessera = Tessera::start(&[]).await;
    let auth = tessera.auth("orders").build().await.unwrap();
    let (token, session) = tessera.login("grace").await;
    // What tonic hands a layer: `http::Request<B>` in, `http::Response<B>` out, no axum.
    let inner = tower::service_fn(|request: axum::http::Request<String>| async move {
        let caller = request.extensions().get::<Principal>().cloned();
        let body = caller.map_or_else(String::new, |caller| caller.session_id().to_owned());
        Ok::<_, Infallible>(axum::http::Response::new(body))
    });
    let mut service = ServiceBuilder::new().layer(auth).service(inner);
    let call = |bearer: Option<String>| {
        let mut request = axum::http::Request::new(String::new());
        if let Some(bearer) = bearer {
            request.headers_mut().insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {bearer}")).unwrap(),
            );
        }
        request
    };
    let ok = service
        .ready()
        .await
        .unwrap()
        .call(call(Some(token.clone())))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.body(), &session);
    let refused = service
        .ready()
        .await
        .unwrap()
        .call(call(Some(format!("{token}x"))))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let anonymous = service.oneshot(call(None)).await.unwrap();
    assert_eq!(anonymous.body(), "", "no principal without a credential");
}

#[tokio::test]
async fn a_logout_at_tessera_reaches_the_service_by_push_within_the_bound() {
    let tessera = Tessera::start(&[]).await;
    // Snapshots every 10 minutes: only the stream can deliver the logout in time.
    let auth = tessera
        .auth("orders")
        .poll_interval(Duration::from_secs(600))
        .max_staleness(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let orders = orders_service(auth).await;
    let (token, _) = tessera.login("bob").await;
    let (other, _) = tessera.login("bob").await;
    assert_eq!(
        get_with(&format!("{orders}/orders"), Some(&token))
            .await
            .status(),
        StatusCode::OK
    );
    let snapshots_before = tessera.proxy.count("/v1/revocations");

    let logout = reqwest::Client::new()
        .post(tessera.url("/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let started = Instant::now();
    loop {
        let status = get_with(&format!("{orders}/orders"), Some(&token))
            .await
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < PUSH_BOUND,
            "the logout did not reach the service within {PUSH_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("logout reached the service in {:?}", started.elapsed());
    assert_eq!(
        tessera.proxy.count("/v1/revocations"),
        snapshots_before,
        "no snapshot was read: the push did it"
    );
    assert_eq!(
        get_with(&format!("{orders}/orders"), Some(&other))
            .await
            .status(),
        StatusCode::OK,
        "the user's other session is untouched"
    );
}

#[tokio::test]
async fn a_role_change_at_tessera_makes_earlier_tokens_stale_at_the_service_by_push() {
    let tessera = Tessera::start(&[]).await;
    // Snapshots every 10 minutes: only the stream can deliver the change in time.
    let auth = tessera
        .auth("orders")
        .poll_interval(Duration::from_secs(600))
        .max_staleness(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let orders = orders_service(auth).await;
    tessera.login("carol").await;
    let http = reqwest::Client::new();
    let login: Value = http
        .post(tessera.url("/v1/login"))
        .json(&json!({"username": "carol", "password": PASSWORD, "transport": "token"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let admin_only = format!("{orders}/orders/all");
    assert_eq!(
        get_with(&admin_only, Some(token)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_with(&format!("{orders}/orders"), Some(token))
            .await
            .status(),
        StatusCode::OK
    );

    run(
        tessera.dir.path(),
        &tessera.env,
        &["user", "roles", "carol", "add", "admin"],
    );
    let started = Instant::now();
    loop {
        let status = get_with(&format!("{orders}/orders"), Some(token))
            .await
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < PUSH_BOUND,
            "the role change did not reach the service within {PUSH_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "a role change reached the service in {:?}",
        started.elapsed()
    );

    let refreshed: Value = http
        .post(tessera.url("/v1/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", login["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fresh = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        decoded(fresh.split('.').nth(1).unwrap())["roles"],
        json!(["admin"])
    );
    assert_eq!(
        get_with(&admin_only, Some(fresh)).await.status(),
        StatusCode::OK,
        "the refreshed token carries the new role"
    );
}

#[tokio::test]
async fn a_rotated_key_is_used_without_a_restart_and_random_kids_cost_a_few_fetches() {
    let tessera = Tessera::start(&[]).await;
    let auth = tessera.auth("orders").build().await.unwrap();
    let built = Instant::now();
    let health = auth.health();
    let orders = orders_service(auth).await;
    let (token, _) = tessera.login("carol").await;
    let kid_of = |token: &str| decoded(token.split('.').next().unwrap())["kid"].clone();
    let first_kid = kid_of(&token);
    assert_eq!(
        get_with(&format!("{orders}/orders"), Some(&token))
            .await
            .status(),
        StatusCode::OK
    );

    // The CLI against the same data directory, with the same configuration.
    run(tessera.dir.path(), &tessera.env, &["keys", "rotate"]);
    // The new key signs after the 1 s publish lead, once the server has reloaded it.
    let started = Instant::now();
    let rotated = loop {
        let (candidate, _) = tessera.login("carol").await;
        if kid_of(&candidate) != first_kid {
            break candidate;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no new key signed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The start-up fetch counts against the 5 s rate limit; a real rotation comes later.
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(built.elapsed())).await;
    let fetches_before = tessera.proxy.count("/.well-known/jwks.json");
    let accepted = get_with(&format!("{orders}/orders"), Some(&rotated)).await;
    assert_eq!(accepted.status(), StatusCode::OK, "a token of the new key");
    assert_eq!(
        tessera.proxy.count("/.well-known/jwks.json"),
        fetches_before + 1,
        "the unknown kid fetched the key set once"
    );

    // 1,000 tokens naming random kids, 50 at a time, once a fetch is due again: the
    // concurrent unknown kids share one fetch, and the rest are refused without one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let parts: Vec<&str> = rotated.split('.').collect();
    let mut header = decoded(parts[0]);
    let fetches_before = tessera.proxy.count("/.well-known/jwks.json");
    let started = Instant::now();
    let mut forged = Vec::with_capacity(1000);
    for index in 0..1000 {
        header["kid"] = json!(format!("random-{index}-{}", rand_suffix()));
        forged.push(format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            parts[1],
            parts[2]
        ));
    }
    for chunk in forged.chunks(50) {
        let answers = futures_util::future::join_all(
            chunk
                .iter()
                .map(|token| get_with_owned(format!("{orders}/orders"), token.clone())),
        )
        .await;
        assert!(
            answers
                .iter()
                .all(|status| *status == StatusCode::UNAUTHORIZED)
        );
    }
    let fetched = tessera.proxy.count("/.well-known/jwks.json") - fetches_before;
    eprintln!(
        "1000 random kids in {:?}: {fetched} key-set fetches at Tessera (layer counted {})",
        started.elapsed(),
        health.key_fetches()
    );
    // One fetch per 5 s rate-limit window at most.
    let allowed = started.elapsed().as_secs() / 5 + 1;
    assert!(
        (1..=allowed.min(3)).contains(&fetched),
        "{fetched} fetches for 1000 random kids"
    );
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn get_with_owned(url: String, token: String) -> StatusCode {
    get_with(&url, Some(&token)).await.status()
}

#[tokio::test]
async fn with_tessera_down_the_service_answers_within_the_bound_then_503_then_recovers() {
    let mut tessera = Tessera::start(&[]).await;
    let bound = Duration::from_secs(3);
    let auth = tessera
        .auth("orders")
        .max_staleness(bound)
        .poll_interval(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let health = auth.health();
    let orders = orders_service(auth).await;
    let (kept, _) = tessera.login("dave").await;
    let (revoked, revoked_session) = tessera.login("erin").await;
    for token in [&kept, &revoked] {
        assert_eq!(
            get_with(&format!("{orders}/orders"), Some(token))
                .await
                .status(),
            StatusCode::OK
        );
    }

    tessera.kill();
    let stopped = Instant::now();
    // Within the bound the service keeps answering from memory.
    assert_eq!(
        get_with(&format!("{orders}/orders"), Some(&kept))
            .await
            .status(),
        StatusCode::OK
    );
    // A revocation made while Tessera (the server) is down: straight into its database.
    run(
        tessera.dir.path(),
        &tessera.env,
        &["session", "revoke", &revoked_session],
    );

    let failed_closed = loop {
        let response = get_with(&format!("{orders}/orders"), Some(&kept)).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            stopped.elapsed() < bound + Duration::from_secs(2),
            "still answering 200 long past the bound"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let closed_after = stopped.elapsed();
    assert!(
        closed_after >= bound - Duration::from_millis(600),
        "{closed_after:?}"
    );
    assert!(failed_closed.headers().contains_key("retry-after"));
    assert!(!health.is_ready());
    // Anonymous routes still work: nothing is decided on the stale set there.
    assert_eq!(
        get_with(&format!("{orders}/catalog"), None).await.status(),
        StatusCode::OK
    );

    tessera.launch().await;
    let restarted = Instant::now();
    loop {
        let status = get_with(&format!("{orders}/orders"), Some(&kept))
            .await
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the layer did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "failed closed {closed_after:?} after the stop; recovered {:?} after the restart",
        restarted.elapsed()
    );
    assert!(health.is_ready());
    assert_eq!(
        get_with(&format!("{orders}/orders"), Some(&revoked))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the revocation made while Tessera was down is not missed"
    );
}
