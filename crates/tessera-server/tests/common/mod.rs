//! An in-process Tessera on a real loopback socket, and a plain HTTP client to poke it with.

// Each test binary uses a different part of this harness, through `mod common`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_core::{Clock, ManualClock, SystemClock, Timestamp};
use tessera_server::config::Database;
use tessera_server::{Config, open_with_clock, server};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const COOKIE_NAME: &str = "__Host-tessera_session";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub base: String,
    pub addr: SocketAddr,
    pub config: Config,
    pub dir: Arc<TempDir>,
    pub clock: Option<ManualClock>,
    /// The running server's engine, for set-up the API does not offer (API clients).
    pub engine: tessera_core::Engine,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// A server on SQLite in a fresh temporary directory, with the system clock.
    pub async fn start(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = Config::default();
        config.database.url = Database::Sqlite(dir.path().join("tessera.db"));
        config.server.bind = "127.0.0.1:0".parse().unwrap();
        configure(&mut config);
        Self::launch(config, dir, None).await
    }

    /// Like [`TestServer::start`] with a manual clock the test moves.
    pub async fn start_with_clock(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut config = Config::default();
        config.database.url = Database::Sqlite(dir.path().join("tessera.db"));
        configure(&mut config);
        let clock = ManualClock::new(SystemClock.now());
        Self::launch(config, dir, Some(clock)).await
    }

    async fn launch(config: Config, dir: Arc<TempDir>, clock: Option<ManualClock>) -> TestServer {
        let engine_clock: Arc<dyn Clock> = match &clock {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(SystemClock),
        };
        let services = open_with_clock(&config, engine_clock)
            .await
            .expect("services");
        let engine = services.engine.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let server_config = config.clone();
        let handle = tokio::spawn(async move {
            server::serve(listener, &server_config, services, async {
                rx.await.ok();
            })
            .await
        });
        TestServer {
            base: format!("http://{addr}"),
            addr,
            config,
            dir,
            clock,
            engine,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    pub async fn restart(mut self) -> TestServer {
        self.stop().await;
        let config = self.config.clone();
        let dir = Arc::clone(&self.dir);
        let clock = self.clock.clone();
        Self::launch(config, dir, clock).await
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
        if let Some(handle) = self.handle.take() {
            handle.await.expect("server task").expect("server result");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` on this server, from the suite's [`client`] (no redirects followed).
    pub fn get(&self, path: &str) -> RequestBuilder {
        client().get(self.url(path))
    }

    /// `POST path` on this server.
    pub fn post(&self, path: &str) -> RequestBuilder {
        client().post(self.url(path))
    }

    /// `DELETE path` on this server.
    pub fn delete(&self, path: &str) -> RequestBuilder {
        client().delete(self.url(path))
    }

    pub fn advance(&self, duration: std::time::Duration) {
        self.clock
            .as_ref()
            .expect("started with a manual clock")
            .advance(duration);
    }

    pub fn now(&self) -> Timestamp {
        self.clock
            .as_ref()
            .map_or_else(|| SystemClock.now(), |clock| clock.now())
    }

    pub async fn register(&self, username: &str, password: &str) -> Response {
        client()
            .post(self.url("/v1/users"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Registers `username` (with [`PASSWORD`]) and logs in with the cookie transport.
    pub async fn user_session(&self, username: &str) -> Login {
        assert_eq!(
            self.register(username, PASSWORD).await.status(),
            StatusCode::CREATED
        );
        self.login(username, PASSWORD).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Login {
        let response = self.login_response(username, password).await;
        assert_eq!(response.status(), StatusCode::OK, "login of {username}");
        Login::from_response(response).await
    }

    pub async fn login_response(&self, username: &str, password: &str) -> Response {
        client()
            .post(self.url("/v1/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).ok();
        }
    }
}

/// What a cookie login hands the client.
#[derive(Debug, Clone)]
pub struct Login {
    pub token: String,
    pub csrf: String,
    pub set_cookie: String,
    pub body: Value,
}

impl Login {
    pub async fn from_response(response: Response) -> Login {
        let set_cookie = session_set_cookie(response.headers()).expect("a session Set-Cookie");
        let token = set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix(&format!("{COOKIE_NAME}=")))
            .expect("cookie value")
            .to_owned();
        let body: Value = response.json().await.unwrap();
        let csrf = body["csrf_token"].as_str().expect("csrf_token").to_owned();
        Login {
            token,
            csrf,
            set_cookie,
            body,
        }
    }

    pub fn cookie(&self) -> String {
        format!("{COOKIE_NAME}={}", self.token)
    }

    pub fn session_id(&self) -> &str {
        self.body["session"]["id"].as_str().unwrap()
    }
}

pub fn session_set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{COOKIE_NAME}=")))
        .map(str::to_owned)
}

/// A client with no cookie jar and no redirects: every header is the test's own.
/// Sends a request built with [`client`] and fails the test if it never reaches the server;
/// what the server answered (any status) is for the test to judge.
pub trait Sent {
    /// `send().await`, unwrapped.
    fn sent(self) -> impl std::future::Future<Output = Response> + Send;
}

impl Sent for RequestBuilder {
    async fn sent(self) -> Response {
        self.send().await.expect("the request reaches the server")
    }
}

pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Reads a problem+json response, checking its shape, and returns it.
pub async fn problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "expected {status} {code}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(),
        "{body}"
    );
    body
}

/// The `tessera` binary, run in `dir` with quiet logs and none of the caller's
/// `TESSERA__*` configuration.
pub fn tessera_command(dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.current_dir(dir).env("TESSERA__LOG__LEVEL", "warn");
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA__") {
            command.env_remove(name);
        }
    }
    command
}
