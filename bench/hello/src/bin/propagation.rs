//! Revocation propagation between two Tessera instances: log in on A, use the session on B
//! (so B has it cached), log out on A, then ask B until it refuses. The time from A's
//! acknowledgement of the logout to B's first refusal is one sample.
//!
//! With `--roles TESSERA_BIN`, a change of roles instead: log in on A with the token
//! transport, use the JWT on B, run `TESSERA_BIN user roles propagation add|remove …` (the
//! offline CLI, with this program's environment: set the same `TESSERA__DATABASE__*` as the
//! instances), then ask B until it refuses the JWT as stale. The time from the CLI's exit to
//! B's first refusal is one sample.
//!
//! Run (both instances sharing one PostgreSQL, and Redis if configured):
//!
//! ```text
//! cargo run --release -p tessera-bench-hello --bin propagation -- http://A http://B [SAMPLES] [--roles TESSERA_BIN]
//! ```
//!
//! Prints p50, p90, p99 and max in milliseconds.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(a), Some(b)) = (args.next(), args.next()) else {
        return Err("usage: propagation http://A http://B [SAMPLES]".into());
    };
    let samples: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    let roles_cli = match (args.next().as_deref(), args.next()) {
        (Some("--roles"), Some(binary)) => Some(binary),
        (None, _) => None,
        _ => {
            return Err(
                "usage: propagation http://A http://B [SAMPLES] [--roles TESSERA_BIN]".into(),
            );
        }
    };
    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{a}/v1/users"))
        .json(&json!({"username": "propagation", "password": PASSWORD}))
        .send()
        .await?
        .status();
    if registered != StatusCode::CREATED && registered != StatusCode::CONFLICT {
        return Err(format!("registration answered {registered}").into());
    }
    if let Some(binary) = roles_cli {
        let latencies = role_changes(&client, &a, &b, samples, &binary).await?;
        report(latencies);
        return Ok(());
    }
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let login = client
            .post(format!("{a}/v1/login"))
            .json(&json!({"username": "propagation", "password": PASSWORD}))
            .send()
            .await?;
        if login.status() != StatusCode::OK {
            return Err(format!("login answered {}", login.status()).into());
        }
        let token = login
            .headers()
            .get("set-cookie")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .and_then(|pair| pair.split_once('='))
            .map(|(_, token)| token.to_owned())
            .ok_or("no session cookie")?;
        let session = |base: &str| {
            client
                .get(format!("{base}/v1/session"))
                .bearer_auth(&token)
                .send()
        };
        if session(&b).await?.status() != StatusCode::OK {
            return Err("the other instance did not accept the session".into());
        }
        let logout = client
            .post(format!("{a}/v1/logout"))
            .bearer_auth(&token)
            .send()
            .await?;
        if logout.status() != StatusCode::NO_CONTENT {
            return Err(format!("logout answered {}", logout.status()).into());
        }
        let acknowledged = Instant::now();
        loop {
            match session(&b).await?.status() {
                StatusCode::UNAUTHORIZED => break,
                StatusCode::OK => {}
                other => return Err(format!("the other instance answered {other}").into()),
            }
            if acknowledged.elapsed() > Duration::from_secs(10) {
                return Err("the revocation did not arrive within 10 s".into());
            }
        }
        latencies.push(acknowledged.elapsed());
    }
    report(latencies);
    Ok(())
}

/// Samples of a role change reaching B: from the CLI's exit to B's first refusal of a JWT
/// issued before it.
async fn role_changes(
    client: &reqwest::Client,
    a: &str,
    b: &str,
    samples: usize,
    binary: &str,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut latencies = Vec::with_capacity(samples);
    for sample in 0..samples {
        let login = client
            .post(format!("{a}/v1/login"))
            .json(&json!({"username": "propagation", "password": PASSWORD, "transport": "token"}))
            .send()
            .await?;
        if login.status() != StatusCode::OK {
            return Err(format!("login answered {}", login.status()).into());
        }
        let body: serde_json::Value = login.json().await?;
        let jwt = body["access_token"]
            .as_str()
            .ok_or("no access token")?
            .to_owned();
        let session = |base: &str| {
            client
                .get(format!("{base}/v1/session"))
                .bearer_auth(&jwt)
                .send()
        };
        if session(b).await?.status() != StatusCode::OK {
            return Err("the other instance did not accept the token".into());
        }
        let change = if sample % 2 == 0 { "add" } else { "remove" };
        // Blocking is fine: nothing else runs on this client's runtime meanwhile.
        let status = std::process::Command::new(binary)
            .args(["user", "roles", "propagation", change, "bench"])
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("tessera user roles exited with {status}").into());
        }
        let acknowledged = Instant::now();
        loop {
            match session(b).await?.status() {
                StatusCode::UNAUTHORIZED => break,
                StatusCode::OK => {}
                other => return Err(format!("the other instance answered {other}").into()),
            }
            if acknowledged.elapsed() > Duration::from_secs(10) {
                return Err("the role change did not arrive within 10 s".into());
            }
        }
        latencies.push(acknowledged.elapsed());
    }
    Ok(latencies)
}

fn report(mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |quantile: f64| {
        let index = ((latencies.len() as f64 - 1.0) * quantile).round() as usize;
        latencies[index].as_secs_f64() * 1000.0
    };
    println!(
        "samples={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}
