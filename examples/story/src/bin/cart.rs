//! The cart service of the story (see the `story_example` crate docs).
//!
//! Environment: `TESSERA_URL` (default `http://127.0.0.1:8080`), `CART_AUDIENCE` (default
//! `https://cart.example`), `CART_CLIENT_ID`, `CART_CLIENT_SECRET` (required), `CART_BIND`
//! (default `127.0.0.1:3002`).

use std::process::ExitCode;

use story_example::{Settings, cart, serve};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let settings = match Settings::from_env("CART", "https://cart.example") {
        Ok(settings) => settings,
        Err(missing) => {
            eprintln!("{missing} (tessera client add cart)");
            return ExitCode::FAILURE;
        }
    };
    let auth = match settings
        .auth(|builder| builder.accept_session_cookie(cart::COOKIE))
        .await
    {
        Ok(auth) => auth,
        Err(error) => {
            eprintln!("could not start against {}: {error}", settings.tessera);
            return ExitCode::FAILURE;
        }
    };
    let bind = std::env::var("CART_BIND").unwrap_or_else(|_| "127.0.0.1:3002".to_owned());
    match serve(&bind, cart::app(settings, auth)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cart on {bind}: {error}");
            ExitCode::FAILURE
        }
    }
}
