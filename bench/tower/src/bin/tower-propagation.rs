//! Revocation propagation from Tessera to a service behind `tessera-tower`: log in (token
//! transport), use the JWT at the service, log out at Tessera, then ask the service until it
//! refuses. The time from Tessera's acknowledgement of the logout to the service's first
//! `401` is one sample.
//!
//! Run (the service must accept Tessera's tokens for its audience, e.g. `examples/orders`):
//!
//! ```text
//! cargo run --release -p tessera-bench-tower --bin tower-propagation -- TESSERA_URL SERVICE_URL [SAMPLES]
//! ```
//!
//! Prints p50, p90, p99 and max in milliseconds.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(tessera), Some(service)) = (args.next(), args.next()) else {
        return Err("usage: tower-propagation TESSERA_URL SERVICE_URL [SAMPLES]".into());
    };
    let samples: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(200);
    let client = reqwest::Client::new();
    let registered = client
        .post(format!("{tessera}/v1/users"))
        .json(&json!({"username": "propagation", "password": PASSWORD}))
        .send()
        .await?
        .status();
    if registered != StatusCode::CREATED && registered != StatusCode::CONFLICT {
        return Err(format!("registration answered {registered}").into());
    }
    let orders = format!("{service}/orders");
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let login: Value = client
            .post(format!("{tessera}/v1/login"))
            .json(&json!({"username": "propagation", "password": PASSWORD, "transport": "token"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = login["access_token"]
            .as_str()
            .ok_or("no access token")?
            .to_owned();
        let status = || async {
            client
                .get(&orders)
                .bearer_auth(&token)
                .send()
                .await
                .map(|response| response.status())
        };
        if status().await? != StatusCode::OK {
            return Err("the service did not accept the token".into());
        }
        let logout = client
            .post(format!("{tessera}/v1/logout"))
            .bearer_auth(&token)
            .send()
            .await?;
        if logout.status() != StatusCode::NO_CONTENT {
            return Err(format!("logout answered {}", logout.status()).into());
        }
        let acknowledged = Instant::now();
        loop {
            match status().await? {
                StatusCode::UNAUTHORIZED => break,
                StatusCode::OK => {}
                other => return Err(format!("the service answered {other}").into()),
            }
            if acknowledged.elapsed() > Duration::from_secs(10) {
                return Err("the revocation did not arrive within 10 s".into());
            }
        }
        latencies.push(acknowledged.elapsed());
    }
    latencies.sort();
    let at = |quantile: f64| {
        let last = latencies.len().saturating_sub(1);
        // Nearest rank; the float only picks an index into a short list.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let index = ((last as f64) * quantile).round() as usize;
        latencies
            .get(index.min(last))
            .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
    };
    println!(
        "samples={} p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    Ok(())
}
