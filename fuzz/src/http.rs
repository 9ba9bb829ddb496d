//! A real Tessera server in process, for the targets that send it requests.
//!
//! `tessera_server::server::app` is the service `tessera serve` runs for every connection,
//! with every layer (metrics, panic catching, security headers): a request goes through the
//! real router, extractors and handlers to the engine and an SQLite store in a temporary
//! directory. There is no socket; the HTTP parsing is hyper's, not Tessera's.
//!
//! Inputs may name live credentials with placeholders that are replaced before sending:
//! `$REFRESH`, `$ACCESS`, `$SESSION`, `$CSRF`, `$CLIENT_ID`, `$CLIENT_SECRET`, `$PASSWORD`.
//! They are renewed by logging in again every [`RENEW_EVERY`] requests, so the fuzzer keeps
//! reaching a live refresh token, not only spent ones.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine as _;
use serde_json::Value;
use tessera_server::Config;
use tessera_server::server::App;
use tower::ServiceExt as _;

/// The public URL the server is configured with; its origin is the same-site one.
pub const PUBLIC_URL: &str = "https://tessera.test";
/// The fuzz user's name.
pub const USERNAME: &str = "fuzz-user";
/// The fuzz user's password.
pub const PASSWORD: &str = "fuzz password 3.14 correct horse";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-tessera_session";
/// The refresh cookie's name.
pub const REFRESH_COOKIE: &str = "__Secure-tessera_refresh";
/// Live credentials are renewed after this many requests.
pub const RENEW_EVERY: u64 = 5_000;

/// Credentials of a live session of the fuzz user.
#[derive(Clone, Default)]
pub struct Live {
    /// A refresh token (spent as soon as the fuzzer uses it).
    pub refresh: String,
    /// A JWT access token.
    pub access: String,
    /// A session token (cookie transport).
    pub session: String,
    /// That session's CSRF token.
    pub csrf: String,
}

/// The server and what the targets need to talk to it.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    app: App,
    live: Mutex<Live>,
    client_id: String,
    client_secret: String,
    requests: AtomicU64,
    _directory: tempfile::TempDir,
}

/// A response, read whole.
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

/// The server, started once per process.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

impl Server {
    fn start() -> Server {
        let directory = tempfile::tempdir().expect("a temporary directory");
        let config = Config::from_toml_str(&format!(
            "[server]\npublic_url = \"{PUBLIC_URL}\"\n[database]\nurl = \"sqlite://{}\"\n",
            directory.path().join("tessera.db").display()
        ))
        .expect("the fuzz configuration");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let services = runtime
            .block_on(tessera_server::open(&config))
            .expect("the services");
        let engine = services.engine.clone();
        runtime
            .block_on(engine.create_user(USERNAME, PASSWORD))
            .expect("the fuzz user");
        let client = runtime
            .block_on(engine.create_client("fuzz-client"))
            .expect("the fuzz client");
        let app = tessera_server::server::app(&config, services);
        let server = Server {
            runtime,
            app,
            live: Mutex::new(Live::default()),
            client_id: client.record.id.clone(),
            client_secret: client.secret.encode(),
            requests: AtomicU64::new(0),
            _directory: directory,
        };
        let live = server.log_in().expect("the first login");
        *server.live.lock().expect("not poisoned") = live;
        server
    }

    /// Logs the fuzz user in twice through the API (token and cookie transports).
    fn log_in(&self) -> Option<Live> {
        let login = |transport: &str| {
            let body = serde_json::json!({
                "username": USERNAME, "password": PASSWORD, "transport": transport,
            });
            let request = Request::post("/v1/login")
                .header(CONTENT_TYPE, "application/json")
                .header(ORIGIN, PUBLIC_URL)
                .body(Body::from(body.to_string()))
                .expect("a request");
            let answer = self.send(request);
            if answer.status != StatusCode::OK {
                return None;
            }
            let json: Value = serde_json::from_slice(&answer.body).ok()?;
            Some((json, answer.headers))
        };
        let (tokens, _) = login("token")?;
        let (cookie_login, headers) = login("cookie")?;
        let cookie = headers.get(SET_COOKIE)?.to_str().ok()?;
        let session = cookie
            .strip_prefix(&format!("{SESSION_COOKIE}="))?
            .split(';')
            .next()?;
        Some(Live {
            refresh: tokens["refresh_token"].as_str()?.to_owned(),
            access: tokens["access_token"].as_str()?.to_owned(),
            session: session.to_owned(),
            csrf: cookie_login["csrf_token"].as_str()?.to_owned(),
        })
    }

    /// The live credentials, renewed every [`RENEW_EVERY`] requests (kept if the fuzz
    /// user is throttled at that moment).
    pub fn live(&self) -> Live {
        let count = self.requests.load(Ordering::Relaxed);
        if count > 0 && count % RENEW_EVERY == 0 {
            self.requests.fetch_add(1, Ordering::Relaxed);
            if let Some(live) = self.log_in() {
                *self.live.lock().expect("not poisoned") = live;
            }
        }
        self.live.lock().expect("not poisoned").clone()
    }

    /// `Basic` credentials of the registered API client.
    pub fn client_basic(&self) -> String {
        let pair = format!("{}:{}", self.client_id, self.client_secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// Replaces the placeholders in `input` with `live`'s credentials.
    pub fn substitute(&self, input: &[u8], live: &Live) -> Vec<u8> {
        let mut output = input.to_vec();
        for (placeholder, value) in [
            ("$REFRESH", live.refresh.as_str()),
            ("$ACCESS", live.access.as_str()),
            ("$SESSION", live.session.as_str()),
            ("$CSRF", live.csrf.as_str()),
            ("$CLIENT_ID", self.client_id.as_str()),
            ("$CLIENT_SECRET", self.client_secret.as_str()),
            ("$PASSWORD", PASSWORD),
        ] {
            output = replace(&output, placeholder.as_bytes(), value.as_bytes());
        }
        output
    }

    /// Sends `request` through the whole application and reads the answer.
    pub fn send(&self, request: Request<Body>) -> Answer {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.runtime.block_on(async {
            let response = match self.app.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let body = axum::body::to_bytes(Body::new(body), usize::MAX)
                .await
                .expect("a response body");
            Answer {
                status: parts.status,
                headers: parts.headers,
                body: body.to_vec(),
            }
        })
    }

    /// What every answer must be, whatever was sent: never a 5xx (a caught panic is a
    /// `500`); errors as JSON; cookies `HttpOnly` without `Domain`; and no live secret
    /// (session token, refresh token, access token, client secret, password) echoed back.
    pub fn check(&self, answer: &Answer, live: &Live) {
        let body = String::from_utf8_lossy(&answer.body);
        assert!(
            !answer.status.is_server_error(),
            "answered {}: {body}",
            answer.status
        );
        if answer.status.is_client_error() {
            let media = answer
                .headers
                .get(CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("");
            assert!(
                media == "application/problem+json" || media.starts_with("application/json"),
                "a {} answered as {media:?}",
                answer.status
            );
            let json: Value = serde_json::from_slice(&answer.body)
                .unwrap_or_else(|_| panic!("a {} whose body is not JSON: {body}", answer.status));
            assert!(
                json.is_object(),
                "a {} whose body is not an object",
                answer.status
            );
        }
        for cookie in answer.headers.get_all(SET_COOKIE) {
            let text = cookie.to_str().unwrap_or("");
            assert!(
                text.contains("HttpOnly"),
                "a cookie without HttpOnly: {text}"
            );
            assert!(
                !text.to_ascii_lowercase().contains("domain="),
                "a cookie with a Domain: {text}"
            );
        }
        for (name, secret) in [
            ("session token", live.session.as_str()),
            ("refresh token", live.refresh.as_str()),
            ("access token", live.access.as_str()),
            ("client secret", self.client_secret.as_str()),
            ("password", PASSWORD),
        ] {
            assert!(
                !body.contains(secret),
                "the {name} came back in a {} answer",
                answer.status
            );
        }
    }
}

/// Request bodies' routes, in selector order.
pub const ROUTES: [&str; 5] = [
    "/v1/login",
    "/v1/users",
    "/v1/token",
    "/v1/introspect",
    "/v1/revoke",
];

/// Content types, in selector order.
pub const CONTENT_TYPES: [Option<&str>; 8] = [
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("application/json; charset=utf-8"),
    Some("application/x-www-form-urlencoded; charset=UTF-8"),
    Some("application/merge-patch+json"),
    Some("text/plain"),
    Some("multipart/form-data; boundary=x"),
    None,
];

/// A `POST` built from a fuzz input: `route` byte (route and content type), `flags` byte
/// (which headers), then the body. Flags: 1 same-site `Origin`, 2 foreign `Origin`,
/// 4 `Sec-Fetch-Site: same-origin`, 8 `Sec-Fetch-Site: cross-site`, 16 the client's `Basic`
/// credentials, 32 `Bearer $ACCESS`, 64 the refresh cookie, 128 the session cookie with
/// its CSRF token.
pub fn request(route: u8, flags: u8, body: Vec<u8>, live: &Live) -> Request<Body> {
    let server = server();
    let path = ROUTES[usize::from(route) % ROUTES.len()];
    let content_type = CONTENT_TYPES[usize::from(route) / ROUTES.len() % CONTENT_TYPES.len()];
    let mut builder = Request::builder().method(Method::POST).uri(path);
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    if flags & 1 != 0 {
        builder = builder.header(ORIGIN, PUBLIC_URL);
    }
    if flags & 2 != 0 {
        builder = builder.header(ORIGIN, "https://evil.example");
    }
    if flags & 4 != 0 {
        builder = builder.header("sec-fetch-site", "same-origin");
    }
    if flags & 8 != 0 {
        builder = builder.header("sec-fetch-site", "cross-site");
    }
    if flags & 16 != 0 {
        builder = builder.header("authorization", server.client_basic());
    } else if flags & 32 != 0 {
        builder = builder.header("authorization", format!("Bearer {}", live.access));
    }
    let mut cookies = Vec::new();
    if flags & 64 != 0 {
        cookies.push(format!("{REFRESH_COOKIE}={}", live.refresh));
    }
    if flags & 128 != 0 {
        cookies.push(format!("{SESSION_COOKIE}={}", live.session));
        builder = builder.header("x-csrf-token", live.csrf.as_str());
    }
    if !cookies.is_empty() {
        builder = builder.header("cookie", cookies.join("; "));
    }
    builder.body(Body::from(body)).expect("a request")
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest
        .windows(needle.len())
        .position(|window| window == needle)
    {
        output.extend_from_slice(&rest[..at]);
        output.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    output.extend_from_slice(rest);
    output
}
