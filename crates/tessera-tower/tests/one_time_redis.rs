//! The Redis replay guard, for a service running several replicas: two layer instances (two
//! replicas of billing, each its own `TesseraAuth`, its own socket) sharing one Redis accept
//! one of twenty concurrent presentations of a one-time token; Redis down or hung is `503`
//! with `Retry-After`, never an acceptance; the guard recovers when Redis is back.
//!
//! Needs the Redis at `TESSERA_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`) and
//! `redis-server` on `PATH` (the outage tests start their own, to kill and stop it). Every
//! test works under its own key prefix and deletes its keys when it ends.
//!
//! Run: `cargo test -p tessera-tower --features redis --test one_time_redis`

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Test code: a panic is a failed test.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::*;
use tessera_tower::{
    GuardError, Presentation, Principal, RedisReplayGuard, ReplayGuard, TesseraAuth,
    require_operation,
};

fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A replica of billing: `POST /refunds` wants a one-time `refund` token.
async fn billing_replica(auth: TesseraAuth) -> String {
    let app = Router::new()
        .route(
            "/refunds",
            post(|caller: Principal| async move { Json(describe(&caller)) })
                .route_layer(require_operation("refund")),
        )
        .route(
            "/invoices",
            get(|caller: Principal| async move { Json(describe(&caller)) }),
        )
        .layer(auth);
    serve(app).await
}

/// Deletes every key under `prefix` when dropped.
struct Prefix(String);

impl Prefix {
    fn new() -> Prefix {
        Prefix(format!("{}:", unique("tessera-tower-test")))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(redis_url()) else {
            return;
        };
        let Ok(mut connection) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

#[tokio::test]
async fn two_replicas_sharing_redis_accept_exactly_one_of_twenty_concurrent_presentations() {
    let issuer = Issuer::start().await;
    let prefix = Prefix::new();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let guard = RedisReplayGuard::connect(&redis_url(), prefix.0.clone())
            .await
            .unwrap();
        let auth = issuer
            .auth("billing")
            .replay_guard(guard)
            .build()
            .await
            .unwrap();
        replicas.push(billing_replica(auth).await);
    }
    assert_ne!(replicas[0], replicas[1]);

    let claims = issuer.one_time_claims("ivan", "session-i", "billing", "refund");
    let token = issuer.sign_one_time(&claims);
    let presentations: Vec<_> = (0..20)
        .map(|index| {
            let url = format!("{}/refunds", replicas[index % 2]);
            let token = token.clone();
            tokio::spawn(async move {
                let response = send("POST", &url, Some(&token)).await;
                (response.status(), challenge(&response))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for presentation in presentations {
        answers.push(presentation.await.unwrap());
    }
    let accepted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .count();
    let replays = answers
        .iter()
        .filter(|(status, challenge)| {
            *status == StatusCode::UNAUTHORIZED && challenge.as_deref() == Some(INVALID_TOKEN)
        })
        .count();
    assert_eq!((accepted, replays), (1, 19), "{answers:?}");

    // One key, expiring by itself around the token's exp + leeway (30 s + 30 s, + 1 s).
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}{}", prefix.0, claims.jti);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!((50_000..=62_000).contains(&ttl), "PTTL {ttl}");

    // A later presentation at either replica is a replay too.
    for replica in &replicas {
        let replay = send("POST", &format!("{replica}/refunds"), Some(&token)).await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_guard_itself_answers_first_then_replay_under_its_prefix_only() {
    let prefix = Prefix::new();
    let guard = RedisReplayGuard::connect(&redis_url(), prefix.0.clone())
        .await
        .unwrap();
    let other_prefix = Prefix::new();
    let other = RedisReplayGuard::connect(&redis_url(), other_prefix.0.clone())
        .await
        .unwrap();
    let until = now() + 30;
    assert_eq!(
        guard.consume("t-1", until).await.unwrap(),
        Presentation::First
    );
    assert_eq!(
        guard.consume("t-1", until).await.unwrap(),
        Presentation::Replay
    );
    assert_eq!(
        guard.consume("t-2", until).await.unwrap(),
        Presentation::First
    );
    assert_eq!(
        other.consume("t-1", until).await.unwrap(),
        Presentation::First,
        "another prefix is another guard"
    );
    // An id whose time has passed is still recorded for a moment (at least one second),
    // never for nothing.
    assert_eq!(
        guard.consume("t-3", now() - 100).await.unwrap(),
        Presentation::First
    );
    assert_eq!(
        guard.consume("t-3", now() - 100).await.unwrap(),
        Presentation::Replay
    );
}

#[tokio::test]
async fn connecting_to_a_redis_that_is_not_there_fails_at_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let refused = RedisReplayGuard::connect(&format!("redis://127.0.0.1:{port}"), "x:").await;
    assert!(
        matches!(
            refused,
            Err(GuardError::Backend(_) | GuardError::TimedOut(_))
        ),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A `redis-server` of the test's own on a free port, to kill, stop and restart; killed when
/// dropped.
struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    async fn start_on(port: u16) -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("these tests start their own redis-server, which must be on PATH");
        let own = OwnRedis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(client) = redis::Client::open(own.url())
                && let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return own;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {port} did not start");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert_eq!(response.headers()["retry-after"], "2", "{what}");
    assert_eq!(
        response.headers().get("www-authenticate"),
        None,
        "{what}: not the token's fault"
    );
}

#[tokio::test]
async fn redis_down_or_hung_is_503_never_an_acceptance_and_the_guard_recovers() {
    let issuer = Issuer::start().await;
    let port = free_port();
    let mut redis = OwnRedis::start_on(port).await;
    let guard = RedisReplayGuard::connect(&redis.url(), "billing:used:")
        .await
        .unwrap()
        .command_timeout(Duration::from_millis(300));
    let auth = issuer
        .auth("billing")
        .replay_guard(guard)
        .build()
        .await
        .unwrap();
    let replica = billing_replica(auth).await;
    let refunds = format!("{replica}/refunds");
    let token =
        issuer.sign_one_time(&issuer.one_time_claims("judy", "session-j", "billing", "refund"));

    // Hung: the command times out.
    redis.signal("STOP");
    let started = Instant::now();
    assert_unavailable(send("POST", &refunds, Some(&token)).await, "Redis stopped").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the command timeout"
    );
    redis.signal("CONT");

    // Down: refused, reset or reconnecting — every presentation is 503.
    redis.kill();
    for attempt in 0..3 {
        assert_unavailable(
            send("POST", &refunds, Some(&token)).await,
            &format!("Redis down, attempt {attempt}"),
        )
        .await;
    }
    // Access tokens do not need the guard: the rest of the service keeps working.
    let access = issuer.sign_access(&issuer.access_claims("judy", "session-j", "billing"));
    assert_eq!(
        send("GET", &format!("{replica}/invoices"), Some(&access))
            .await
            .status(),
        StatusCode::OK
    );

    // Back (empty: the hung attempt may or may not have been recorded by the old server,
    // whose data is gone). The token was never accepted, so once the guard has reconnected
    // it is accepted exactly once.
    let _redis = OwnRedis::start_on(port).await;
    let started = Instant::now();
    loop {
        let response = send("POST", &refunds, Some(&token)).await;
        match response.status() {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the guard did not reconnect"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other} while Redis came back"),
        }
    }
    let replay = send("POST", &refunds, Some(&token)).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
}
