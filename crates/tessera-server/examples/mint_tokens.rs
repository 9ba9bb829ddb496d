//! Mints many distinct access tokens for one session, for the never-seen-JWT benchmark
//! (`bench/jwt-fresh.sh`): every line of the output is a JWT the running server has never
//! verified, so each request pays for a full signature check.
//!
//! Run (against the data directory of a stopped or running `tessera serve` on SQLite):
//!
//! ```text
//! cargo run --release -p tessera-server --example mint_tokens -- DATA_DIR COUNT > tokens.txt
//! ```
//!
//! It reads the same configuration as `tessera serve` in that directory (`tessera.toml`,
//! `TESSERA__…`), creates the user `bench` if missing, logs it in with the token transport
//! and signs COUNT access grants of that session, each with its own `jti`.

#![forbid(unsafe_code)]

use std::io::{BufWriter, Write as _};

use tessera_core::{Error, LoginAttempt, TokenId, Transport};
use tessera_server::config::Config;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(count)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: mint_tokens DATA_DIR COUNT");
    };
    let count: usize = count.parse()?;
    std::env::set_current_dir(&dir)?;
    let config = Config::load(None)?;
    let services = tessera_server::open(&config).await?;
    let engine = &services.engine;
    match engine.create_user("bench", PASSWORD).await {
        Ok(_) | Err(Error::UsernameTaken) => {}
        Err(error) => return Err(error.into()),
    }
    let login = engine
        .login(LoginAttempt {
            username: "bench",
            password: PASSWORD,
            transport: Transport::Token,
            ip: None,
            user_agent: None,
        })
        .await?;
    let mut grant = engine.issue_tokens(&login.session).await?.access;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        grant.token_id = TokenId::generate()?.as_str().to_owned();
        writeln!(out, "{}", services.tokens.sign_access(&grant)?)?;
    }
    out.flush()?;
    Ok(())
}
