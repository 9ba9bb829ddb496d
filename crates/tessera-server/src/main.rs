//! `tessera`: run the server, and administer users and sessions.

#![forbid(unsafe_code)]

use std::io::{BufRead as _, IsTerminal as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tessera_core::{
    AuditContext, AuditFilter, AuditKind, Engine, Error, NewService, Role, SessionId, Timestamp,
    UserId,
};
use tessera_server::body::rfc3339;
use tessera_server::config::{Database, LogFormat, SessionBackend};
use tessera_server::{Config, Services, open, server};
use tessera_store::sqlite::SqliteStore;

/// Run the Tessera session and token server, and administer its users, sessions, signing keys
/// and API clients.
#[derive(Debug, Parser)]
#[command(name = "tessera", version)]
struct Cli {
    /// Configuration file. Defaults to ./tessera.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server until SIGINT or SIGTERM.
    Serve {
        /// Address to listen on (overrides server.bind).
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Database URL, e.g. sqlite://tessera-data/tessera.db (overrides database.url).
        #[arg(long)]
        database_url: Option<Database>,
    },
    /// Create the database (with its first signing key) if it does not exist yet. Only this
    /// and `serve` create one; every other command needs it to exist.
    Init,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect and revoke sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage the access-token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage API clients (resource servers that introspect tokens or follow revocations, and
    /// admin clients for the admin API).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage downstream services: the audiences token exchange issues tokens for.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Write a consistent copy of the SQLite database to PATH while the server runs (a plain
    /// file copy is unsafe: it misses what the write-ahead log holds). The copy holds the
    /// signing keys, so it is created readable by its owner only. PostgreSQL: use pg_dump.
    Backup {
        /// Where to write the copy; must not exist.
        path: PathBuf,
    },
    /// Read the audit trail, oldest first: logins, logouts, revocations, account, client and
    /// key changes.
    Audit(AuditArgs),
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    /// Only events about this account: a username, or the user id of a deleted one.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Only events of this type: login_succeeded, login_failed, login_throttled, logout,
    /// session_revoked, sessions_revoked, refresh_reuse_detected, user_created,
    /// user_deleted, key_rotated, client_created, client_deleted, …
    #[arg(long = "type", value_name = "TYPE", value_parser = str::parse::<AuditKind>)]
    kind: Option<AuditKind>,
    /// Only events at or after this time (RFC 3339, UTC: 2026-01-31T12:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = tessera_server::audit::parse_rfc3339)]
    since: Option<Timestamp>,
    /// Only events before this time (RFC 3339, UTC).
    #[arg(long, value_name = "TIME", value_parser = tessera_server::audit::parse_rfc3339)]
    until: Option<Timestamp>,
    /// At most this many events.
    #[arg(long, value_name = "N", default_value_t = 100)]
    limit: usize,
    /// Only events after this id: the last id of the previous page.
    #[arg(long, value_name = "CURSOR", default_value_t = 0)]
    after: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a client; its id and secret are printed once, and only a hash is kept.
    Add {
        /// A name for people, unique.
        name: String,
        /// Give it the admin scope: its credentials also open the admin API (/v1/admin/…).
        #[arg(long)]
        admin: bool,
    },
    /// List clients (never their secrets).
    List,
    /// Remove a client by name.
    Remove {
        /// The name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Register a service: token exchange (RFC 8693) issues access tokens, one-time
    /// operation tokens and (with --sessions) child sessions for its audience only.
    Add {
        /// A name for people, unique: 1-64 of A-Z a-z 0-9 . _ -
        name: String,
        /// What its tokens carry in `aud` (unique), usually its base URL; the audience its
        /// verifier (tessera-tower) is configured with.
        #[arg(long)]
        audience: String,
        /// A scope (operation) it understands, repeatable: NAME for every user, or
        /// NAME=ROLE|ROLE for users holding one of those roles.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// The longest lifetime of a token issued for it (capped by token.access_ttl, and
        /// for one-time tokens by token.one_time_ttl), e.g. 2m.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
        max_ttl: std::time::Duration,
        /// Let it exchange an access token for a child session (a stateful service).
        #[arg(long)]
        sessions: bool,
    },
    /// List services.
    List,
    /// Remove a service by name (tokens issued for it stay valid until they expire).
    Remove {
        /// The name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new signing key: published at once, signing after `token.key_publish_lead`;
    /// the old key stays published until every token it signed has expired. Running servers
    /// pick it up within `token.key_reload`.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add an account. The password is read from standard input (first line) when it is not
    /// a terminal, otherwise prompted for twice; never from the command line.
    Add {
        /// The username.
        username: String,
    },
    /// List accounts.
    List,
    /// Remove an account and end all its sessions.
    Remove {
        /// The username.
        username: String,
    },
    /// Set a new password for an account (checked like a registration's) and end all its
    /// sessions. The password is read as for `user add`.
    ResetPassword {
        /// The username.
        username: String,
    },
    /// List a user's roles, or add or remove one. A change makes the user's access tokens
    /// stale everywhere; their next refresh carries the new roles.
    Roles {
        /// The username.
        username: String,
        #[command(subcommand)]
        change: Option<RoleChange>,
    },
    /// Show a user's custom access-token claims (JSON), or set or unset one. A change makes
    /// the user's access tokens stale everywhere.
    Claims {
        /// The username.
        username: String,
        #[command(subcommand)]
        change: Option<ClaimChange>,
    },
    /// Disable an account: end every session, refuse its logins (like a wrong password) and
    /// refreshes, and make its access tokens stale everywhere.
    Disable {
        /// The username.
        username: String,
    },
    /// Enable a disabled account: its password works again.
    Enable {
        /// The username.
        username: String,
    },
}

#[derive(Debug, Subcommand)]
enum RoleChange {
    /// Add a role (1-64 characters of A-Z a-z 0-9 . _ : -).
    Add { role: String },
    /// Remove a role.
    Remove { role: String },
}

#[derive(Debug, Subcommand)]
enum ClaimChange {
    /// Set a claim to a JSON value, e.g. `set tenant '"acme"'` or `set seats 5`.
    Set { name: String, json: String },
    /// Remove a claim.
    Unset { name: String },
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// List live sessions, of one user or of everyone.
    List {
        /// Only this user's sessions.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke one session by id, or every session of a user.
    Revoke {
        /// The session id.
        // Ids are base64url, so one in 64 starts with `-`: never read it as a flag.
        #[arg(
            required_unless_present = "user",
            conflicts_with = "user",
            allow_hyphen_values = true
        )]
        id: Option<String>,
        /// Revoke all of this user's sessions instead.
        #[arg(long)]
        user: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    // The flags arrive parsed and no check relates them to another key, so they simply win.
    if let Command::Serve { bind, database_url } = &cli.command {
        if let Some(bind) = bind {
            config.server.bind = *bind;
        }
        if let Some(url) = database_url {
            config.database.url.clone_from(url);
        }
    }
    init_logging(&config)?;
    let creates_database = matches!(cli.command, Command::Serve { .. } | Command::Init);
    if !matches!(cli.command, Command::Serve { .. })
        && config.sessions.store == SessionBackend::Memory
    {
        bail!(
            "sessions.store is \"memory\": there is no durable store for this command to administer"
        );
    }
    if matches!(cli.command, Command::Serve { .. }) {
        // Before any store is opened: nothing is created for a deployment that cannot work.
        config.check_serving()?;
    }
    // Run from the wrong directory, a command would otherwise administer a fresh, empty
    // database with a signing key of its own, and say nothing.
    if let Database::Sqlite(path) = &config.database.url
        && !creates_database
        && !path.exists()
    {
        bail!(
            "no database at {}: run this command where `tessera serve` runs, point \
             database.url (or --config) at its database, or create one with `tessera init`",
            std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
        );
    }
    if let Command::Backup { path } = &cli.command {
        return backup(&config, path).await;
    }
    let services = open(&config).await.context("could not open the store")?;
    // Every change an administrative command makes is recorded as the CLI's.
    let engine = services.engine.with_context(AuditContext::cli());
    match cli.command {
        Command::Serve { .. } => serve(config, services).await,
        Command::Init => {
            match &config.database.url {
                Database::Sqlite(path) => println!("database ready: {}", path.display()),
                // The URL may carry a password.
                Database::Postgres(_) => println!("database ready"),
            }
            Ok(())
        }
        Command::User(command) => user(&engine, command).await,
        Command::Session(command) => session(&engine, command).await,
        Command::Client(command) => client(&engine, command).await,
        Command::Service(command) => service(&engine, command).await,
        Command::Audit(args) => audit(&engine, args).await,
        // Answered above, before any service starts.
        Command::Backup { .. } => Ok(()),
        Command::Keys(KeysCommand::Rotate) => {
            let rotated = services
                .tokens
                .rotate_in(AuditContext::cli())
                .await
                .context("could not rotate the signing key")?;
            println!(
                "added signing key {}; published now, signing from {}",
                rotated.kid,
                rfc3339(rotated.activates_at)
            );
            Ok(())
        }
    }
}

/// `tessera backup PATH`: an online, consistent copy of the SQLite database.
async fn backup(config: &Config, destination: &Path) -> anyhow::Result<()> {
    let Database::Sqlite(source) = &config.database.url else {
        bail!(
            "database.url is PostgreSQL: back it up with pg_dump --format=custom \
             (docs/operations.md, \"Backing up and restoring\")"
        );
    };
    create_owner_only(destination).with_context(|| {
        format!(
            "could not create {} (a backup never overwrites: choose a new path)",
            destination.display()
        )
    })?;
    let copied = async {
        let store = SqliteStore::open(source)
            .await
            .context("could not open the database")?;
        let copied = store
            .backup_into(destination)
            .await
            .context("could not copy the database");
        store.close().await;
        copied
    }
    .await;
    if let Err(error) = copied {
        // Half a copy must not pass for a backup.
        std::fs::remove_file(destination).ok();
        return Err(error);
    }
    let size = std::fs::metadata(destination)
        .map(|metadata| metadata.len())
        .unwrap_or(0);
    println!(
        "backed up {} to {} ({size} bytes)",
        source.display(),
        destination.display()
    );
    Ok(())
}

/// Creates an empty file that only its owner can read, failing if anything is at `path`.
fn create_owner_only(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

async fn serve(config: Config, services: Services) -> anyhow::Result<()> {
    if config.danger.insecure_cookies {
        tracing::warn!("danger.insecure_cookies is on: session cookies are sent over plain HTTP");
    }
    let listener = tokio::net::TcpListener::bind(config.server.bind)
        .await
        .with_context(|| format!("could not listen on {}", config.server.bind))?;
    server::serve(listener, &config, services, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                interrupt.await.ok();
            }
        }
    }
    #[cfg(not(unix))]
    {
        interrupt.await.ok();
    }
}

async fn user(engine: &Engine, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { username } => {
            let password = read_password()?;
            match engine.create_user(&username, &password).await {
                Ok(user) => println!("created user {} ({})", user.username, user.id),
                Err(Error::UsernameTaken) => bail!("a user named {username:?} exists already"),
                Err(error) => return Err(error).context("could not create the user"),
            }
        }
        UserCommand::List => {
            let rows = engine
                .users()
                .await?
                .into_iter()
                .map(|user| [user.id.to_string(), user.username, rfc3339(user.created_at)]);
            print_table(["ID", "USERNAME", "CREATED"], rows);
        }
        UserCommand::Remove { username } => {
            let user = find_user(engine, &username).await?;
            engine.delete_user(&user.id).await?;
            println!("removed user {} and ended their sessions", user.username);
        }
        UserCommand::ResetPassword { username } => {
            let user = find_user(engine, &username).await?;
            let password = read_password()?;
            let ended = engine
                .reset_password(&user.id, &password)
                .await
                .context("could not reset the password")?;
            println!(
                "reset the password of {} and ended {ended} session(s)",
                user.username
            );
        }
        command => standing(engine, command).await?,
    }
    Ok(())
}

/// `user roles`, `user claims`, `user disable`, `user enable`.
async fn standing(engine: &Engine, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Roles { username, change } => {
            let user = find_user(engine, &username).await?;
            let changed = match change {
                None => None,
                Some(RoleChange::Add { role }) => {
                    Some(engine.add_role(&user.id, Role::parse(&role)?).await?)
                }
                Some(RoleChange::Remove { role }) => {
                    Some(engine.remove_role(&user.id, &Role::parse(&role)?).await?)
                }
            };
            if changed == Some(false) {
                println!("nothing to change");
            }
            for role in engine.standing_of(&user.id).await?.roles.iter() {
                println!("{role}");
            }
        }
        UserCommand::Claims { username, change } => {
            let user = find_user(engine, &username).await?;
            match change {
                None => {}
                Some(ClaimChange::Set { name, json }) => {
                    let value = serde_json::from_str(&json)
                        .context("the value must be JSON (quote strings: '\"text\"')")?;
                    engine.set_claim(&user.id, &name, value).await?;
                }
                Some(ClaimChange::Unset { name }) => {
                    let removed = engine.unset_claim(&user.id, &name).await?;
                    if !removed {
                        println!("nothing to change");
                    }
                }
            }
            println!("{}", engine.standing_of(&user.id).await?.claims.to_json());
        }
        UserCommand::Disable { username } => {
            let user = find_user(engine, &username).await?;
            let ended = engine.disable_user(&user.id).await?;
            println!("disabled user {} and ended {ended} sessions", user.username);
        }
        UserCommand::Enable { username } => {
            let user = find_user(engine, &username).await?;
            engine.enable_user(&user.id).await?;
            println!("enabled user {}", user.username);
        }
        UserCommand::Add { .. }
        | UserCommand::List
        | UserCommand::Remove { .. }
        | UserCommand::ResetPassword { .. } => {}
    }
    Ok(())
}

async fn session(engine: &Engine, command: SessionCommand) -> anyhow::Result<()> {
    match command {
        SessionCommand::List { user } => {
            let users = match user {
                Some(name) => vec![find_user(engine, &name).await?],
                None => engine.users().await?,
            };
            let mut rows = Vec::new();
            for user in users {
                for session in engine.sessions_of(&user.id).await? {
                    rows.push([
                        session.id.to_string(),
                        user.username.clone(),
                        session.transport.as_str().to_owned(),
                        rfc3339(session.last_seen_at),
                        rfc3339(session.expires_at),
                        session.ip.unwrap_or_else(|| "-".to_owned()),
                    ]);
                }
            }
            print_table(
                ["SESSION", "USER", "VIA", "LAST SEEN", "EXPIRES", "IP"],
                rows,
            );
        }
        SessionCommand::Revoke { id: Some(id), .. } => {
            let id =
                SessionId::parse(&id).map_err(|_| anyhow::anyhow!("{id:?} is not a session id"))?;
            match engine.revoke_session(&id).await {
                Ok(()) => println!("revoked session {id}"),
                Err(Error::SessionNotFound) => bail!("no live session with id {id}"),
                Err(error) => return Err(error.into()),
            }
        }
        SessionCommand::Revoke {
            user: Some(name), ..
        } => {
            let user = find_user(engine, &name).await?;
            let count = engine.revoke_user_sessions(&user.id).await?;
            println!("revoked {count} session(s) of {}", user.username);
        }
        SessionCommand::Revoke { .. } => bail!("give a session id or --user NAME"),
    }
    Ok(())
}

async fn client(engine: &Engine, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Add { name, admin } => match if admin {
            engine.create_admin_client(&name).await
        } else {
            engine.create_client(&name).await
        } {
            Ok(client) => {
                println!("client_id:     {}", client.record.id);
                println!("client_secret: {}", client.secret.encode());
                println!("Store the secret now: it is not shown again.");
            }
            Err(Error::ClientNameTaken) => bail!("a client named {name:?} exists already"),
            Err(error) => return Err(error).context("could not create the client"),
        },
        ClientCommand::List => {
            let rows = engine.clients().await?.into_iter().map(|client| {
                let scope = if client.admin { "admin" } else { "-" };
                [
                    client.id,
                    client.name,
                    rfc3339(client.created_at),
                    scope.to_owned(),
                ]
            });
            print_table(["ID", "NAME", "CREATED", "SCOPE"], rows);
        }
        ClientCommand::Remove { name } => match engine.delete_client(&name).await {
            Ok(()) => println!("removed client {name}"),
            Err(Error::ClientNotFound) => bail!("no client named {name:?}"),
            Err(error) => return Err(error.into()),
        },
    }
    Ok(())
}

async fn service(engine: &Engine, command: ServiceCommand) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Add {
            name,
            audience,
            scopes,
            max_ttl,
            sessions,
        } => {
            let new = NewService {
                name: name.clone(),
                audience,
                scopes,
                max_ttl,
                sessions,
            };
            match engine.register_service(new).await {
                Ok(service) => println!(
                    "registered service {} for audience {}",
                    service.name, service.audience
                ),
                Err(Error::ServiceTaken) => {
                    bail!("a service with the name {name:?} or that audience exists already")
                }
                Err(Error::InvalidService(rejection)) => bail!("{rejection}"),
                Err(error) => return Err(error).context("could not register the service"),
            }
        }
        ServiceCommand::List => {
            let rows = engine.services().await?.into_iter().map(|service| {
                let scopes = service
                    .scopes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ");
                [
                    service.name,
                    service.audience,
                    if scopes.is_empty() {
                        "-".to_owned()
                    } else {
                        scopes
                    },
                    humantime::format_duration(service.max_ttl).to_string(),
                    if service.sessions { "yes" } else { "no" }.to_owned(),
                    rfc3339(service.created_at),
                ]
            });
            print_table(
                [
                    "NAME", "AUDIENCE", "SCOPES", "MAX TTL", "SESSIONS", "CREATED",
                ],
                rows,
            );
        }
        ServiceCommand::Remove { name } => match engine.remove_service(&name).await {
            Ok(()) => println!("removed service {name}"),
            Err(Error::ServiceNotFound) => bail!("no service named {name:?}"),
            Err(error) => return Err(error.into()),
        },
    }
    Ok(())
}

async fn audit(engine: &Engine, args: AuditArgs) -> anyhow::Result<()> {
    let user_id = match &args.user {
        None => None,
        Some(name) => match engine.user_by_username(name).await {
            Ok(user) => Some(user.id),
            // A deleted account's events stay; they are found by its id.
            Err(Error::UserNotFound) => match UserId::parse(name) {
                Ok(id) => Some(id),
                Err(_) => bail!("no user named {name:?} (give a user id for a deleted account)"),
            },
            Err(error) => return Err(error.into()),
        },
    };
    let filter = AuditFilter {
        user_id,
        kind: args.kind,
        since: args.since,
        until: args.until,
    };
    let records = engine
        .audit_events(&filter, args.after, args.limit)
        .await
        .context("could not read the audit trail")?;
    if args.json {
        for record in &records {
            println!("{}", tessera_server::audit::event_json(record));
        }
    } else {
        let rows = records.iter().map(|record| {
            let event = &record.event;
            let or_dash = |value: Option<&str>| value.unwrap_or("-").to_owned();
            let detail: Vec<String> = event
                .detail
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            [
                record.id.to_string(),
                rfc3339(event.at),
                event.kind.as_str().to_owned(),
                event.actor.to_string(),
                or_dash(event.user_id.as_ref().map(UserId::as_str)),
                or_dash(event.session_id.as_ref().map(SessionId::as_str)),
                or_dash(event.ip.as_deref()),
                event.outcome.as_str().to_owned(),
                detail.join(" "),
            ]
        });
        print_table(
            [
                "ID", "TIME", "TYPE", "ACTOR", "USER", "SESSION", "IP", "OUTCOME", "DETAIL",
            ],
            rows,
        );
    }
    if records.len() == args.limit
        && let Some(last) = records.last()
    {
        eprintln!("more events may follow: --after {}", last.id);
    }
    Ok(())
}

/// Prints `rows` under `header`, each column as wide as its widest cell, so ids and names of
/// any length stay in line.
fn print_table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = [String; N]>) {
    let rows: Vec<[String; N]> = rows.into_iter().collect();
    let mut widths = header.map(|title| title.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let print_row = |cells: [&str; N]| {
        let mut line = String::new();
        for (column, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if column + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{line}");
    };
    print_row(header);
    for row in &rows {
        print_row(row.each_ref().map(String::as_str));
    }
}

async fn find_user(engine: &Engine, username: &str) -> anyhow::Result<tessera_core::User> {
    match engine.user_by_username(username).await {
        Ok(user) => Ok(user),
        Err(Error::UserNotFound) => bail!("no user named {username:?}"),
        Err(error) => Err(error.into()),
    }
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("could not read the password from standard input")?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password);
        if password.is_empty() {
            bail!("no password on standard input");
        }
        Ok(password.to_owned())
    }
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .context("invalid log.level")?;
    // Colour codes are noise in a file or a log collector: only a terminal gets them.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|error| anyhow::anyhow!("could not start logging: {error}"))
}
