//! Memory of `tessera-tower`'s revocation set and verified-token cache: the process's
//! resident set size (Linux `VmRSS`) before the layer starts, once it holds every live
//! revocation Tessera lists, and once it has verified (and cached) every token of a file.
//!
//! Run against a Tessera whose revocation feed holds the revocations to measure (bench/tower.sh
//! makes 100,000), with tokens for AUDIENCE (one per line, e.g. from `mint_tokens`):
//!
//! ```text
//! cargo run --release -p tessera-bench-tower --bin tower-memory -- \
//!     TESSERA_URL AUDIENCE CLIENT_ID CLIENT_SECRET TOKENS_FILE
//! ```

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, Method};
use tessera_tower::TesseraAuth;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tessera, audience, client_id, client_secret, tokens] = args.as_slice() else {
        return Err(
            "usage: tower-memory TESSERA_URL AUDIENCE CLIENT_ID CLIENT_SECRET TOKENS_FILE".into(),
        );
    };
    let tokens = std::fs::read_to_string(tokens)?;
    let tokens: Vec<&str> = tokens.lines().filter(|line| !line.is_empty()).collect();
    let before = resident_kib()?;
    let started = Instant::now();
    let auth = TesseraAuth::builder(tessera.as_str(), audience.as_str())
        .client_credentials(client_id.as_str(), client_secret.as_str())
        .verified_cache_capacity(tokens.len().max(1))
        .build()
        .await?;
    let health = auth.health();
    let loaded = started.elapsed();
    // Let the stream connect and settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_revocations = resident_kib()?;
    let revoked = health.revoked_sessions();

    let mut headers = HeaderMap::new();
    let mut accepted = 0usize;
    for token in &tokens {
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        if matches!(auth.authenticate(&Method::GET, &headers).await, Ok(Some(_))) {
            accepted += 1;
        }
    }
    let with_cache = resident_kib()?;
    let cached = health.cached_tokens();
    println!(
        "revoked_sessions={revoked} loaded_in={:.2}s rss_before={before}KiB \
         rss_with_revocations={with_revocations}KiB (+{}KiB, {:.0} B/entry) \
         tokens_accepted={accepted} cached_tokens={cached} rss_with_cache={with_cache}KiB \
         (+{}KiB, {:.0} B/token)",
        loaded.as_secs_f64(),
        with_revocations.saturating_sub(before),
        per_entry(with_revocations.saturating_sub(before), revoked),
        with_cache.saturating_sub(with_revocations),
        per_entry(with_cache.saturating_sub(with_revocations), cached),
    );
    Ok(())
}

/// Resident set size of this process, KiB.
fn resident_kib() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed VmRSS")?
        .parse()?)
}

fn per_entry(kib: u64, entries: usize) -> f64 {
    if entries == 0 {
        return 0.0;
    }
    // Display only: KiB and counts far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let bytes = (kib * 1024) as f64 / entries as f64;
    bytes
}
