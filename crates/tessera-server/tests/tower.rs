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
use tessera_tower::{
    Principal, TesseraAuth, TesseraAuthBuilder, require_authenticated, require_role,
};
use tower::{Service as _, ServiceBuilder, ServiceExt as _};

mod common;

use common::{COOKIE_NAME, PASSWORD, tessera_command as tessera};

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

impl Tessera {
    /// Registers `username` and logs in with the cookie transport: (session token — the
    /// cookie's value, also usable as a bearer session token —, CSRF token, session id).
    async fn cookie_login(&self, username: &str) -> (String, String, String) {
        let http = reqwest::Client::new();
        http.post(self.url("/v1/users"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let login = http
            .post(self.url("/v1/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::OK);
        let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
        let token = cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix(&format!("{COOKIE_NAME}="))
            .unwrap()
            .to_owned();
        let body: Value = login.json().await.unwrap();
        (
            token,
            body["csrf_token"].as_str().unwrap().to_owned(),
            body["session"]["id"].as_str().unwrap().to_owned(),
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
                        "username": caller.username(),
                    }))
                })
                .post(|caller: Principal| async move {
                    (
                        StatusCode::CREATED,
                        Json(json!({"placed_by": caller.session_id()})),
                    )
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

/// A request to the service carried by the session cookie (and, for unsafe methods, the
/// headers a same-origin browser page would send).
fn with_cookie(request: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    request.header("cookie", format!("theme=dark; {COOKIE_NAME}={token}"))
}

/// Polls `request` until it answers `401`, within `PUSH_BOUND`; every answer before is `200`.
async fn refused_within_push_bound(what: &str, request: impl Fn() -> reqwest::RequestBuilder) {
    let started = Instant::now();
    loop {
        let status = request().send().await.unwrap().status();
        if status == StatusCode::UNAUTHORIZED {
            eprintln!("{what}: refused {:?} after the logout", started.elapsed());
            return;
        }
        assert_eq!(status, StatusCode::OK, "{what}");
        assert!(
            started.elapsed() < PUSH_BOUND,
            "{what}: the logout did not reach the service within {PUSH_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cookie_session_works_at_a_same_origin_service_until_logout_and_needs_csrf_to_write() {
    let tessera = Tessera::start(&[]).await;
    // Snapshots every 10 minutes: only the stream can deliver the logout in time.
    let auth = tessera
        .auth("orders")
        .accept_session_cookie(COOKIE_NAME)
        .poll_interval(Duration::from_secs(600))
        .max_staleness(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let health = auth.health();
    let orders = orders_service(auth).await;
    let (token, csrf, session) = tessera.cookie_login("heidi").await;
    let http = reqwest::Client::new();
    let url = format!("{orders}/orders");

    let read = with_cookie(http.get(&url), &token).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["sid"], session.as_str());
    assert_eq!(body["username"], "heidi");
    assert!(body["jti"].is_null(), "a session, not a JWT");
    // Asked once, then answered from the cache.
    for _ in 0..5 {
        let again = with_cookie(http.get(&url), &token).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }
    assert_eq!(tessera.proxy.count("/v1/introspect"), 1);
    assert_eq!(health.cached_sessions(), 1);

    // Writes need the session's CSRF token, and a browser's headers naming Tessera's origin.
    let no_csrf = with_cookie(http.post(&url), &token).send().await.unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let wrong_csrf = with_cookie(http.post(&url), &token)
        .header("x-csrf-token", format!("{}A", &csrf[..csrf.len() - 1]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_csrf.status(), StatusCode::FORBIDDEN);
    let cross_site = with_cookie(http.post(&url), &token)
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let written = with_cookie(http.post(&url), &token)
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "same-origin")
        .header("origin", &tessera.proxy.base)
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), StatusCode::CREATED);
    // The cookie is a credential only where accepted: a bearer JWT service ignores it.
    let (jwt, _) = tessera.login("heidi").await;
    let bearer_wins = with_cookie(http.get(&url), "garbage")
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(
        bearer_wins.status(),
        StatusCode::OK,
        "the bearer header wins"
    );

    // Garbage and repeated cookies are refused without asking Tessera.
    let asked = tessera.proxy.count("/v1/introspect");
    for garbage in [
        "garbage",
        &"A".repeat(64),
        &format!("{token}; {COOKIE_NAME}={token}"),
    ] {
        let refused = with_cookie(http.get(&url), garbage).send().await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{garbage}");
        assert_eq!(challenge(&refused), Some(r#"Bearer error="invalid_token""#));
    }
    // Only the well-formed (but unknown) one was worth a question, and only once.
    let refused = with_cookie(http.get(&url), &"A".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(tessera.proxy.count("/v1/introspect"), asked + 1);

    let snapshots_before = tessera.proxy.count("/v1/revocations");
    let logout = http
        .post(tessera.url("/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    refused_within_push_bound("cookie session", || with_cookie(http.get(&url), &token)).await;
    assert_eq!(
        tessera.proxy.count("/v1/revocations"),
        snapshots_before,
        "no snapshot was read: the push did it"
    );
}

#[tokio::test]
async fn a_bearer_session_token_works_until_logout_and_other_opaque_tokens_do_not() {
    let tessera = Tessera::start(&[]).await;
    let auth = tessera
        .auth("orders")
        .accept_session_tokens()
        .poll_interval(Duration::from_secs(600))
        .max_staleness(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let orders = orders_service(auth).await;
    let (token, _, session) = tessera.cookie_login("ivan").await;
    let http = reqwest::Client::new();
    let url = format!("{orders}/orders");

    let read = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let body: Value = read.json().await.unwrap();
    assert_eq!(body["sid"], session.as_str());
    // No CSRF for a bearer credential: nothing ambient carries it.
    let written = http.post(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(written.status(), StatusCode::CREATED);
    // Cookies are not accepted by this layer: a cookie alone is no credential.
    let cookie_only = with_cookie(http.get(&url), &token).send().await.unwrap();
    assert_eq!(cookie_only.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&cookie_only), Some("Bearer"));
    // JWTs still work beside session tokens.
    let (jwt, _) = tessera.login("ivan").await;
    assert_eq!(
        get_with(&url, Some(&jwt)).await.status(),
        StatusCode::OK,
        "a JWT beside session tokens"
    );
    // A refresh token is opaque too, but proves no session here; garbage neither.
    let login: Value = http
        .post(tessera.url("/v1/login"))
        .json(&json!({"username": "ivan", "password": PASSWORD, "transport": "token"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    for refused in [refresh, "not-a-session-token", &"A".repeat(64)] {
        let answer = get_with(&url, Some(refused)).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{refused}");
        assert_eq!(challenge(&answer), Some(r#"Bearer error="invalid_token""#));
    }

    let logout = http
        .post(tessera.url("/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    refused_within_push_bound("bearer session token", || {
        http.get(&url).bearer_auth(&token)
    })
    .await;
}

#[tokio::test]
async fn with_tessera_down_a_cached_session_answers_within_the_bound_and_a_new_one_gets_503() {
    let mut tessera = Tessera::start(&[]).await;
    let bound = Duration::from_secs(3);
    let auth = tessera
        .auth("orders")
        .accept_session_cookie(COOKIE_NAME)
        .max_staleness(bound)
        .poll_interval(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let orders = orders_service(auth).await;
    let (seen, _, _) = tessera.cookie_login("judy").await;
    let (unseen, _, _) = tessera.cookie_login("judy").await;
    let http = reqwest::Client::new();
    let url = format!("{orders}/orders");
    let status = |token: String| {
        let request = with_cookie(http.get(&url), &token);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(seen.clone()).await, StatusCode::OK);

    tessera.kill();
    let stopped = Instant::now();
    assert_eq!(
        status(seen.clone()).await,
        StatusCode::OK,
        "cached: answered from memory"
    );
    let uncached = with_cookie(http.get(&url), &unseen).send().await.unwrap();
    assert_eq!(
        uncached.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "nobody to ask: no guess"
    );
    assert!(uncached.headers().contains_key("retry-after"));
    loop {
        let answer = status(seen.clone()).await;
        if answer == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert_eq!(answer, StatusCode::OK);
        assert!(
            stopped.elapsed() < bound + Duration::from_secs(2),
            "still answering 200 long past the bound"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let closed_after = stopped.elapsed();
    assert!(
        closed_after >= bound - Duration::from_millis(600),
        "{closed_after:?}"
    );

    tessera.launch().await;
    let restarted = Instant::now();
    while status(unseen.clone()).await != StatusCode::OK {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the layer did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(seen).await, StatusCode::OK);
}

#[tokio::test]
async fn the_metadata_names_the_feed_and_its_keep_alive_stays_below_the_layer_s_bound() {
    let tessera = Tessera::start(&[]).await;
    let metadata: Value = reqwest::get(tessera.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = &tessera.proxy.base;
    assert_eq!(
        metadata["tessera_revocations_endpoint"],
        format!("{issuer}/v1/revocations")
    );
    assert_eq!(
        metadata["tessera_revocation_stream_endpoint"],
        format!("{issuer}/v1/revocations/stream")
    );
    // A quiet stream must never look stale to a layer with the default bound.
    let keep_alive = tessera_server::routes::oauth::FEED_KEEP_ALIVE;
    assert!(keep_alive * 2 <= TesseraAuthBuilder::DEFAULT_MAX_STALENESS);
    // And the layer, following that stream with no snapshots, stays ready past the bound.
    let auth = tessera
        .auth("orders")
        .poll_interval(Duration::from_secs(600))
        .build()
        .await
        .unwrap();
    let health = auth.health();
    tokio::time::sleep(TesseraAuthBuilder::DEFAULT_MAX_STALENESS + Duration::from_secs(2)).await;
    assert!(
        health.is_ready(),
        "stale after {:?} on keep-alives alone",
        health.staleness()
    );
    assert_eq!(
        tessera.proxy.count("/v1/revocations"),
        2,
        "only the snapshots at start and at the stream's connect: keep-alives did the rest"
    );
}

#[tokio::test]
async fn a_tonic_grpc_service_behind_the_layer_answers_unauthenticated_without_a_valid_token() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let tessera = Tessera::start(&[]).await;
    let auth = tessera.auth("orders").build().await.unwrap();
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    // The layer proves who calls; the guard refuses calls that prove nobody.
    let guarded = tower::ServiceBuilder::new()
        .layer(auth)
        .layer(require_authenticated())
        .into_inner();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(guarded)
            .add_service(health_service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let check = |bearer: Option<String>| {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: "orders".to_owned(),
        });
        if let Some(bearer) = bearer {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        }
        request
    };
    let (token, _) = tessera.login("mallory").await;

    let served = client.check(check(Some(token.clone()))).await.unwrap();
    assert_eq!(served.into_inner().status(), ServingStatus::Serving);
    for (what, bearer) in [
        ("no token", None),
        ("forged token", Some(format!("{token}x"))),
        ("garbage", Some("garbage".to_owned())),
    ] {
        let refused = client.check(check(bearer)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{what}");
        // The layer's own grpc-status, not one a client inferred from an HTTP status.
        assert!(
            ["missing credential", "invalid token"].contains(&refused.message()),
            "{what}: {refused:?}"
        );
    }
}
