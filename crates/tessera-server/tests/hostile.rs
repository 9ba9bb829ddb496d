//! Clients that try to tie the server up: trickled and stopped bodies, oversized declared
//! bodies, idle connections, floods of slow clients, and running out of file descriptors.
//! Raw sockets throughout, since an ordinary HTTP client will not misbehave on purpose.
//!
//! The flood tests print what they measured. With more clients and another descriptor limit:
//! `TESSERA_HOSTILE_CLIENTS=300 TESSERA_HOSTILE_NOFILE=256 cargo test -p tessera-server
//! --test hostile -- --nocapture flood`.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The head of a login whose body will never arrive in full.
const SLOW_LOGIN: &str = "POST /v1/login HTTP/1.1\r\nHost: localhost\r\n\
    Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n{";

/// A server with one-second header and body timeouts, so the tests are quick.
async fn quick_server(configure: impl FnOnce(&mut tessera_server::Config)) -> TestServer {
    TestServer::start(|config| {
        config.server.header_timeout = Duration::from_secs(1);
        config.server.body_timeout = Duration::from_secs(1);
        configure(config);
    })
    .await
}

/// Reads until the server closes the connection or `within` passes. Returns what arrived
/// and, if it closed, after how long.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return (String::from_utf8_lossy(&received).into(), None),
            Ok(Ok(0) | Err(_)) => {
                return (
                    String::from_utf8_lossy(&received).into(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// The problem+json `code` of a raw response.
fn problem_code(response: &str) -> String {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let problem: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    problem["code"].as_str().unwrap_or_default().to_owned()
}

/// Whether the server closed `stream` (reads end, or fail) within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    read_until_closed(stream, within).await.1.is_some()
}

/// Sends `GET /healthz` on fresh connections until one answers `200` or `within` passes;
/// returns how long that took.
async fn healthz(addr: SocketAddr, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        let attempt = async {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let (response, _) = read_until_closed(&mut stream, Duration::from_secs(1)).await;
            response.starts_with("HTTP/1.1 200").then_some(())
        };
        if tokio::time::timeout(Duration::from_secs(1), attempt)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Opens `count` connections that each send [`SLOW_LOGIN`] and then nothing. Connections
/// the server refuses outright are skipped.
async fn slow_clients(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        if let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
            && stream.write_all(SLOW_LOGIN.as_bytes()).await.is_ok()
        {
            clients.push(stream);
        }
    }
    clients
}

#[tokio::test]
async fn a_trickled_body_is_answered_408_and_its_connection_freed() {
    let server = quick_server(|_| {}).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(SLOW_LOGIN.as_bytes()).await.unwrap();
    // One byte every 100 ms: never a gap long enough for a per-read timeout.
    let trickle = tokio::spawn(async move {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(6) {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let mut received = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut received))
        .await
        .is_ok();
    let elapsed = started.elapsed();
    trickle.abort();
    let response = String::from_utf8_lossy(&received);
    assert!(closed, "still open after {elapsed:?}: {response}");
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
    assert_eq!(problem_code(&response), "request_timeout");
}

#[tokio::test]
async fn a_stopped_body_is_answered_408_and_its_connection_freed() {
    let server = quick_server(|_| {}).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(SLOW_LOGIN.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let closed = closed.unwrap_or_else(|| panic!("still open after 5 s: {response}"));
    assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert_eq!(problem_code(&response), "request_timeout");
    // The server is no worse for it.
    assert!(healthz(server.addr, Duration::from_secs(2)).await.is_some());
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_100_continue() {
    let server = quick_server(|_| {}).await;
    for path in ["/v1/login", "/v1/users", "/healthz"] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Expect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (response, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(
            response.starts_with("HTTP/1.1 413"),
            "{path}: the first bytes back must be the refusal: {response}"
        );
        assert!(!response.contains("100 Continue"), "{response}");
        assert!(response.contains("application/problem+json"), "{response}");
        assert!(
            response.contains("cache-control: no-store"),
            "security headers: {response}"
        );
        assert_eq!(problem_code(&response), "payload_too_large");
        assert!(closed.is_some(), "{path}: the connection stays open");
    }
    // At the limit is fine: the body is read (after 100 Continue) and judged on its merits.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /v1/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Expect: 100-continue\r\nContent-Length: 16384\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut first = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[tokio::test]
async fn idle_and_silent_connections_are_closed_after_the_header_timeout() {
    let server = quick_server(|_| {}).await;
    // Connected, never a byte.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Half a request head, then nothing.
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: local")
        .await
        .unwrap();
    // One request answered, then idle on keep-alive.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 15];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200 OK");

    let started = Instant::now();
    for (name, stream) in [
        ("silent", &mut silent),
        ("partial head", &mut partial),
        ("idle keep-alive", &mut idle),
    ] {
        let left = Duration::from_secs(5).saturating_sub(started.elapsed());
        assert!(
            closed_by_server(stream, left).await,
            "{name} connection still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn at_the_connection_cap_slow_clients_give_way_and_healthz_answers_while_they_hold_on() {
    // Long timeouts: only the cap can make room here.
    let server = TestServer::start(|config| {
        config.server.max_connections = Some(20);
        config.server.body_timeout = Duration::from_secs(60);
        config.server.header_timeout = Duration::from_secs(60);
    })
    .await;
    let mut clients = slow_clients(server.addr, 40).await;
    let answered = healthz(server.addr, Duration::from_secs(3)).await;
    let mut shed = 0;
    for client in &mut clients {
        if closed_by_server(client, Duration::from_millis(20)).await {
            shed += 1;
        }
    }
    let answered = answered.expect("/healthz did not answer while 40 slow clients held on");
    assert!(
        answered < Duration::from_secs(1),
        "answered after {answered:?}"
    );
    // 40 slow clients and a prober over 20 places: at least 21 slow ones gave way.
    assert!(shed >= 21, "only {shed} of 40 slow clients were shed");
    drop(clients);
}

// --- The real binary under a low descriptor limit ---

/// `tessera serve` on a free port in `dir`, under `ulimit -n nofile` (soft and hard, so the
/// server cannot raise it), with its log (warnings and up) in `dir/stderr.log`.
struct LimitedServer {
    child: Child,
    addr: SocketAddr,
}

impl LimitedServer {
    async fn start(dir: &Path, nofile: u64, env: &[(&str, &str)]) -> LimitedServer {
        let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let mut command = Command::new("sh");
        command
            .args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--bind", &addr.to_string()])
            .current_dir(dir)
            .env("TESSERA__LOG__LEVEL", "warn");
        for (name, _) in std::env::vars() {
            if name.starts_with("TESSERA__") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut server = LimitedServer { child, addr };
        if healthz(addr, Duration::from_secs(30)).await.is_none() {
            server.child.kill().ok();
            panic!("the server did not come up: {}", server.log(dir));
        }
        server
    }

    fn log(&self, dir: &Path) -> String {
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::test]
async fn a_flood_of_slow_clients_under_a_low_descriptor_limit_leaves_healthz_answering() {
    let clients = from_env("TESSERA_HOSTILE_CLIENTS", 150);
    let nofile = from_env("TESSERA_HOSTILE_NOFILE", 128) as u64;
    let dir = tempfile::tempdir().unwrap();
    // The default cap, derived from the descriptor limit; timeouts long enough that only the
    // cap makes room while the flood holds on.
    let server = LimitedServer::start(
        dir.path(),
        nofile,
        &[
            ("TESSERA__SERVER__BODY_TIMEOUT", "60s"),
            ("TESSERA__SERVER__HEADER_TIMEOUT", "60s"),
        ],
    )
    .await;
    let flood = slow_clients(server.addr, clients).await;
    let during = healthz(server.addr, Duration::from_secs(5)).await;
    eprintln!(
        "{clients} slow clients, descriptor limit {nofile}: /healthz answered after {during:?} \
         while they held on"
    );
    drop(flood);
    let after = healthz(server.addr, Duration::from_secs(5)).await;
    eprintln!("… and after {after:?} once they let go");
    let during = during.unwrap_or_else(|| {
        panic!(
            "/healthz did not answer while the flood held on: {}",
            server.log(dir.path())
        )
    });
    assert!(during < Duration::from_secs(2), "answered after {during:?}");
    assert!(after.is_some_and(|after| after < Duration::from_secs(2)));
}

#[tokio::test]
async fn running_out_of_descriptors_backs_off_and_warns_at_a_bounded_rate() {
    let dir = tempfile::tempdir().unwrap();
    // A cap far above the descriptor limit, so accepting itself fails.
    let server = LimitedServer::start(
        dir.path(),
        64,
        &[
            ("TESSERA__SERVER__MAX_CONNECTIONS", "10000"),
            ("TESSERA__SERVER__HEADER_TIMEOUT", "60s"),
        ],
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..100 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(server.addr)).await
        {
            idle.push(stream);
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(idle);
    let recovered = healthz(server.addr, Duration::from_secs(5)).await;
    let log = server.log(dir.path());
    let warnings = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("accept") && line.contains("fail"))
        .count();
    eprintln!(
        "{warnings} accept warnings in 3 s out of descriptors; recovered after {recovered:?}"
    );
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} accept warnings:\n{log}"
    );
    let recovered = recovered.expect("/healthz did not answer after the clients let go");
    // The longest pause between accept attempts is 1 s.
    assert!(recovered < Duration::from_secs(2), "after {recovered:?}");
}
