//! The billing service of the story (see the `story_example` crate docs).
//!
//! Environment: `TESSERA_URL` (default `http://127.0.0.1:8080`), `BILLING_AUDIENCE` (default
//! `https://billing.example`), `BILLING_CLIENT_ID`, `BILLING_CLIENT_SECRET` (required),
//! `BILLING_BIND` (default `127.0.0.1:3001`), and `BILLING_REDIS_URL` to share the one-time
//! tokens' replay guard between replicas (default: in memory, one process).

use std::process::ExitCode;

use story_example::{Settings, billing, serve};
use tessera_tower::RedisReplayGuard;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let settings = match Settings::from_env("BILLING", "https://billing.example") {
        Ok(settings) => settings,
        Err(missing) => {
            eprintln!("{missing} (tessera client add billing)");
            return ExitCode::FAILURE;
        }
    };
    let guard = match std::env::var("BILLING_REDIS_URL") {
        Ok(url) => match RedisReplayGuard::connect(&url, "billing:used:").await {
            Ok(guard) => Some(guard),
            Err(error) => {
                eprintln!("could not reach Redis at {url}: {error}");
                return ExitCode::FAILURE;
            }
        },
        Err(_) => None,
    };
    let auth = settings
        .auth(|builder| match guard {
            Some(guard) => builder.replay_guard(guard),
            None => builder,
        })
        .await;
    let auth = match auth {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("could not start against {}: {error}", settings.tessera);
            return ExitCode::FAILURE;
        }
    };
    let bind = std::env::var("BILLING_BIND").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    match serve(&bind, billing::app(auth)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("billing on {bind}: {error}");
            ExitCode::FAILURE
        }
    }
}
