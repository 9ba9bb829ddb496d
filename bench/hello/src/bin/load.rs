//! The load client behind `bench/soak.sh`, `bench/faults.sh` and `bench/login-flood.sh`.
//!
//! ```text
//! load run    --target URL [--target URL2] --duration 10m [--rate R] [--workers N] ...
//! load verify --target URL --journal FILE
//! load faults --events FILE --faults FILE
//! load flood  --target URL --logins 128 --duration 30s
//! ```
//!
//! - `run` plays a fixed mix (per 100 requests: 60 cookie checks, 25 JWT checks, 8 refreshes,
//!   3 logins, 3 logouts, 1 registration) from `--workers` users at `--rate` requests/s in all
//!   (0 = as fast as the server answers). Every answer's status is checked; every
//!   acknowledged write (a 201 registration, a 200 login or refresh, a 204 logout) goes to the
//!   journal with the credentials it produced; every request goes to the events file. Every
//!   `--interval` it prints a line and runs `--probe` (a shell command printing the server's
//!   memory, descriptors and store connections); at the end, a table per minute.
//! - `verify` replays the journal against a server: every acknowledged user can still log in,
//!   every acknowledged live session (cookie or token) still works, every acknowledged logout
//!   still refuses, every signing key that signed an acknowledged token is still published.
//! - `faults` reads the events file and a list of faults (label, start, end in Unix ms) and
//!   prints, per fault, the time to the first 503, what was answered meanwhile, and the time
//!   to recovery.
//! - `flood` measures `GET /v1/session` latency alone, then while `--logins` clients log in
//!   back to back (half with a wrong password), and prints the login answers by status.
//!
//! Run with `cargo run --release -p tessera-bench-hello --bin load -- <command> ...`.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt as _;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "Load, verification and fault timing for Tessera's soak and fault runs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play the mix against one or more instances.
    Run(RunArgs),
    /// Check a journal's acknowledged writes against a server.
    Verify(VerifyArgs),
    /// Time to 503 and to recovery for each fault.
    Faults(FaultsArgs),
    /// Session-check latency while logins flood the password hasher.
    Flood(FloodArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of an instance; repeat for several (requests go round robin).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Concurrent users, each with its own sessions.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Requests per second in all; 0 = closed loop, as fast as answered.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How often to print a line and run the probe.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// A shell command printing whitespace-separated figures (e.g. RSS, descriptors, store
    /// connections), run every interval.
    #[arg(long)]
    probe: Option<String>,
    /// Comma-separated names of the probe's figures, for the table.
    #[arg(long, default_value = "")]
    probe_columns: String,
    /// Where acknowledged writes go (JSON lines).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Where every request goes (CSV: end ms since start, kind, target, status, latency µs).
    #[arg(long)]
    events: Option<PathBuf>,
    /// Where the per-minute Markdown table goes (also printed).
    #[arg(long)]
    table: Option<PathBuf>,
    /// Prefix of the usernames this run registers (unique per run).
    #[arg(long, default_value = "load")]
    prefix: String,
}

#[derive(Args)]
struct VerifyArgs {
    #[arg(long)]
    target: String,
    #[arg(long)]
    journal: PathBuf,
    /// Parallel checks.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[derive(Args)]
struct FaultsArgs {
    #[arg(long)]
    events: PathBuf,
    /// Tab-separated lines: label, start Unix ms, end Unix ms (the store back, the signal sent).
    #[arg(long)]
    faults: PathBuf,
}

#[derive(Args)]
struct FloodArgs {
    #[arg(long)]
    target: String,
    /// Concurrent login clients during the flood.
    #[arg(long, default_value_t = 128)]
    logins: usize,
    /// Session-check clients, each sending one request every `--check-every`.
    #[arg(long, default_value_t = 4)]
    checkers: usize,
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    check_every: Duration,
    /// Length of the quiet baseline and of the flood each.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "flood")]
    username: String,
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Verify(args) => verify(args).await,
        Command::Faults(args) => faults(&args),
        Command::Flood(args) => flood(args).await,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn password_of(username: &str) -> String {
    format!("{username} rides a battery staple")
}

fn client(connections: usize) -> Result<Client, Failure> {
    Ok(Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(10))
        .build()?)
}

// ---------------------------------------------------------------------------------------
// run

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    CookieCheck,
    JwtCheck,
    Refresh,
    LoginCookie,
    LoginToken,
    LogoutCookie,
    LogoutToken,
    Register,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::CookieCheck,
        Kind::JwtCheck,
        Kind::Refresh,
        Kind::LoginCookie,
        Kind::LoginToken,
        Kind::LogoutCookie,
        Kind::LogoutToken,
        Kind::Register,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::CookieCheck => "cookie-check",
            Kind::JwtCheck => "jwt-check",
            Kind::Refresh => "refresh",
            Kind::LoginCookie => "login-cookie",
            Kind::LoginToken => "login-token",
            Kind::LogoutCookie => "logout-cookie",
            Kind::LogoutToken => "logout-token",
            Kind::Register => "register",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn expected(self) -> StatusCode {
        match self {
            Kind::LogoutCookie | Kind::LogoutToken => StatusCode::NO_CONTENT,
            Kind::Register => StatusCode::CREATED,
            _ => StatusCode::OK,
        }
    }
}

/// The mix, per 100 requests. Logins and logouts balance, so the live sessions stay level.
#[derive(Clone, Copy)]
enum Action {
    CookieCheck,
    JwtCheck,
    Refresh,
    Login,
    Logout,
    Register,
}

const MIX: [(Action, u32); 6] = [
    (Action::CookieCheck, 60),
    (Action::JwtCheck, 25),
    (Action::Refresh, 8),
    (Action::Login, 3),
    (Action::Logout, 3),
    (Action::Register, 1),
];

/// The mix as an evenly interleaved cycle of 100 actions (smooth weighted round robin), so
/// every worker plays the same sequence from its own offset and no randomness is needed.
fn mix_cycle() -> Vec<Action> {
    let mut credit = [0i64; MIX.len()];
    let total: i64 = MIX.iter().map(|(_, w)| i64::from(*w)).sum();
    (0..total)
        .map(|_| {
            for (slot, (_, weight)) in credit.iter_mut().zip(MIX) {
                *slot += i64::from(weight);
            }
            let (best, _) = credit
                .iter()
                .enumerate()
                .max_by_key(|(index, value)| (**value, std::cmp::Reverse(*index)))
                .unwrap_or((0, &0));
            credit[best] -= total;
            MIX[best].0
        })
        .collect()
}

/// Sessions a worker holds at most; beyond, a login becomes a logout.
const MAX_HELD: usize = 6;
/// How many times `verify` asks for a login answered `503` before reporting it.
const VERIFY_ATTEMPTS: usize = 5;

struct CookieSession {
    sid: String,
    cookie: String,
    csrf: String,
}

struct TokenSession {
    sid: String,
    access: String,
    refresh: String,
    access_expires: Instant,
}

#[derive(Clone, Copy)]
struct Event {
    end_ms: u32,
    kind: Kind,
    target: u8,
    /// 0 when no answer came (connection refused or reset, timeout).
    status: u16,
    latency_us: u32,
}

struct Shared {
    client: Client,
    targets: Vec<String>,
    /// Until when (ms since start) a target that refused a connection is skipped.
    down_until: Vec<AtomicU64>,
    started: Instant,
    events: Mutex<Vec<Event>>,
    journal: Mutex<Option<BufWriter<File>>>,
    stop: AtomicBool,
    prefix: String,
}

impl Shared {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn journal(&self, entry: Value) {
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(out) = journal.as_mut() {
            let _ = writeln!(out, "{entry}");
        }
    }

    /// The target for a worker's next request: round robin, skipping one that just refused.
    fn pick(&self, turn: usize) -> usize {
        let now = self.elapsed_ms();
        let n = self.targets.len();
        (0..n)
            .map(|offset| (turn + offset) % n)
            .find(|&index| self.down_until[index].load(Ordering::Relaxed) <= now)
            .unwrap_or(turn % n)
    }

    /// Sends one request and records it. `None` status means no answer came.
    async fn send(
        &self,
        kind: Kind,
        target: usize,
        build: impl FnOnce(&Client, &str) -> RequestBuilder,
    ) -> (Option<StatusCode>, Option<reqwest::Response>) {
        let begun = Instant::now();
        let result = build(&self.client, &self.targets[target]).send().await;
        let latency_us = u32::try_from(begun.elapsed().as_micros()).unwrap_or(u32::MAX);
        let (status, response) = match result {
            Ok(response) => (Some(response.status()), Some(response)),
            Err(error) => {
                if error.is_connect() {
                    self.down_until[target].store(self.elapsed_ms() + 1000, Ordering::Relaxed);
                }
                (None, None)
            }
        };
        let event = Event {
            end_ms: u32::try_from(self.elapsed_ms()).unwrap_or(u32::MAX),
            kind,
            target: u8::try_from(target).unwrap_or(u8::MAX),
            status: status.map_or(0, |s| s.as_u16()),
            latency_us,
        };
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
        (status, response)
    }
}

struct Worker {
    id: usize,
    shared: Arc<Shared>,
    users: Vec<String>,
    next_user: usize,
    registered: usize,
    cookies: Vec<CookieSession>,
    tokens: Vec<TokenSession>,
    turn: usize,
    logins: usize,
    logouts: usize,
}

impl Worker {
    fn held(&self) -> usize {
        self.cookies.len() + self.tokens.len()
    }

    async fn step(&mut self, action: Action) {
        self.turn += 1;
        let mut action = action;
        if matches!(action, Action::Login) && self.held() >= MAX_HELD {
            action = Action::Logout;
        }
        if matches!(action, Action::Logout) && self.held() <= 1 {
            action = Action::Login;
        }
        match action {
            Action::CookieCheck if self.cookies.is_empty() => self.login(false).await,
            Action::CookieCheck => self.cookie_check().await,
            Action::JwtCheck | Action::Refresh if self.tokens.is_empty() => self.login(true).await,
            Action::JwtCheck => {
                // A token about to expire is refreshed instead of checked, as a client would.
                let index = self.turn % self.tokens.len();
                if self.tokens[index].access_expires <= Instant::now() + Duration::from_secs(30) {
                    self.refresh(index).await;
                } else {
                    self.jwt_check(index).await;
                }
            }
            Action::Refresh => {
                let index = self.turn % self.tokens.len();
                self.refresh(index).await;
            }
            Action::Login => {
                self.logins += 1;
                self.login(self.logins.is_multiple_of(2)).await;
            }
            Action::Logout => {
                self.logouts += 1;
                let token = (self.logouts.is_multiple_of(2) && !self.tokens.is_empty())
                    || self.cookies.is_empty();
                if token {
                    self.logout_token().await;
                } else {
                    self.logout_cookie().await;
                }
            }
            Action::Register => self.register().await,
        }
    }

    async fn register(&mut self) {
        let username = format!("{}-w{}-{}", self.shared.prefix, self.id, self.registered);
        self.registered += 1;
        let target = self.shared.pick(self.turn);
        let body = json!({"username": username, "password": password_of(&username)});
        let (status, _) = self
            .shared
            .send(Kind::Register, target, |c, base| {
                c.post(format!("{base}/v1/users")).json(&body)
            })
            .await;
        if status == Some(StatusCode::CREATED) {
            self.shared
                .journal(json!({"user": username, "at": unix_ms()}));
            self.users.push(username);
        }
    }

    async fn login(&mut self, token: bool) {
        if self.users.is_empty() {
            return self.register().await;
        }
        let username = self.users[self.next_user % self.users.len()].clone();
        self.next_user += 1;
        let target = self.shared.pick(self.turn);
        let kind = if token {
            Kind::LoginToken
        } else {
            Kind::LoginCookie
        };
        let body = json!({
            "username": username,
            "password": password_of(&username),
            "transport": if token { "token" } else { "cookie" },
        });
        let (status, response) = self
            .shared
            .send(kind, target, |c, base| {
                c.post(format!("{base}/v1/login")).json(&body)
            })
            .await;
        let (Some(StatusCode::OK), Some(response)) = (status, response) else {
            return;
        };
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.contains("tessera_session="))
            .and_then(|value| value.split(';').next())
            .map(str::to_owned);
        let Ok(body) = response.json::<Value>().await else {
            return;
        };
        let sid = body["session"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token {
            let (Some(access), Some(refresh)) = (
                body["access_token"].as_str(),
                body["refresh_token"].as_str(),
            ) else {
                return;
            };
            let expires_in = body["expires_in"].as_u64().unwrap_or(60);
            self.shared.journal(json!({
                "login": sid, "transport": "token", "user": username,
                "access": access, "refresh": refresh, "at": unix_ms(),
            }));
            self.tokens.push(TokenSession {
                sid,
                access: access.to_owned(),
                refresh: refresh.to_owned(),
                access_expires: Instant::now() + Duration::from_secs(expires_in),
            });
        } else {
            let (Some(cookie), Some(csrf)) = (cookie, body["csrf_token"].as_str()) else {
                return;
            };
            self.shared.journal(json!({
                "login": sid, "transport": "cookie", "user": username,
                "cookie": cookie, "csrf": csrf, "at": unix_ms(),
            }));
            self.cookies.push(CookieSession {
                sid,
                cookie,
                csrf: csrf.to_owned(),
            });
        }
    }

    async fn cookie_check(&mut self) {
        let index = self.turn % self.cookies.len();
        let target = self.shared.pick(self.turn);
        let cookie = self.cookies[index].cookie.clone();
        let (status, _) = self
            .shared
            .send(Kind::CookieCheck, target, |c, base| {
                c.get(format!("{base}/v1/session"))
                    .header("cookie", &cookie)
            })
            .await;
        if status == Some(StatusCode::UNAUTHORIZED) {
            // The session is gone: note it, forget it, and log in again as a user would.
            let lost = self.cookies.swap_remove(index);
            self.shared
                .journal(json!({"lost": lost.sid, "at": unix_ms()}));
        }
    }

    async fn jwt_check(&mut self, index: usize) {
        let target = self.shared.pick(self.turn);
        let access = self.tokens[index].access.clone();
        let (status, _) = self
            .shared
            .send(Kind::JwtCheck, target, |c, base| {
                c.get(format!("{base}/v1/session")).bearer_auth(&access)
            })
            .await;
        if status == Some(StatusCode::UNAUTHORIZED) {
            let lost = self.tokens.swap_remove(index);
            self.shared
                .journal(json!({"lost": lost.sid, "at": unix_ms()}));
        }
    }

    async fn refresh(&mut self, index: usize) {
        let target = self.shared.pick(self.turn);
        let refresh = self.tokens[index].refresh.clone();
        let (status, response) = self
            .shared
            .send(Kind::Refresh, target, |c, base| {
                c.post(format!("{base}/v1/token")).form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                ])
            })
            .await;
        match (status, response) {
            (Some(StatusCode::OK), Some(response)) => {
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let (Some(access), Some(refresh)) = (
                    body["access_token"].as_str(),
                    body["refresh_token"].as_str(),
                ) else {
                    return;
                };
                let session = &mut self.tokens[index];
                session.access = access.to_owned();
                session.refresh = refresh.to_owned();
                session.access_expires =
                    Instant::now() + Duration::from_secs(body["expires_in"].as_u64().unwrap_or(60));
                self.shared.journal(json!({
                    "refresh": session.sid, "access": access, "refresh_token": refresh,
                    "at": unix_ms(),
                }));
            }
            (Some(StatusCode::BAD_REQUEST), _) => {
                // invalid_grant: the session ended (or a lost answer's retry came after the
                // grace window and was taken for theft). Either way this client lost it.
                let lost = self.tokens.swap_remove(index);
                self.shared
                    .journal(json!({"lost": lost.sid, "at": unix_ms(), "by": "refresh"}));
            }
            // No answer or 503: keep the token and retry later; within the grace window a
            // retry gets the same successor if the rotation did happen.
            _ => {}
        }
    }

    async fn logout_cookie(&mut self) {
        let session = self.cookies.remove(0);
        let target = self.shared.pick(self.turn);
        let (status, _) = self
            .shared
            .send(Kind::LogoutCookie, target, |c, base| {
                c.post(format!("{base}/v1/logout"))
                    .header("cookie", &session.cookie)
                    .header("x-csrf-token", &session.csrf)
            })
            .await;
        if status == Some(StatusCode::NO_CONTENT) {
            self.shared
                .journal(json!({"logout": session.sid, "at": unix_ms()}));
        } else {
            // Not acknowledged: the session's state is unknown; the client drops it.
            self.shared
                .journal(json!({"logout_unacknowledged": session.sid, "at": unix_ms()}));
        }
    }

    async fn logout_token(&mut self) {
        let session = self.tokens.remove(0);
        let target = self.shared.pick(self.turn);
        let (status, _) = self
            .shared
            .send(Kind::LogoutToken, target, |c, base| {
                c.post(format!("{base}/v1/logout"))
                    .bearer_auth(&session.access)
            })
            .await;
        if status == Some(StatusCode::NO_CONTENT) {
            self.shared
                .journal(json!({"logout": session.sid, "at": unix_ms()}));
        } else {
            self.shared
                .journal(json!({"logout_unacknowledged": session.sid, "at": unix_ms()}));
        }
    }
}

async fn run(args: RunArgs) -> Result<(), Failure> {
    let journal = match &args.journal {
        Some(path) => Some(BufWriter::new(File::create(path)?)),
        None => None,
    };
    let shared = Arc::new(Shared {
        client: client(args.workers * 2)?,
        down_until: args.targets.iter().map(|_| AtomicU64::new(0)).collect(),
        targets: args.targets.clone(),
        started: Instant::now(),
        events: Mutex::new(Vec::with_capacity(1 << 20)),
        journal: Mutex::new(journal),
        stop: AtomicBool::new(false),
        prefix: args.prefix.clone(),
    });
    let start_unix_ms = unix_ms() - shared.elapsed_ms();
    let cycle = Arc::new(mix_cycle());
    // Each worker's share of the rate, its start staggered across one period.
    let period =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.workers as f64 / args.rate));
    let mut tasks = Vec::new();
    for id in 0..args.workers {
        let shared = Arc::clone(&shared);
        let cycle = Arc::clone(&cycle);
        tasks.push(tokio::spawn(async move {
            let mut worker = Worker {
                id,
                shared: Arc::clone(&shared),
                users: Vec::new(),
                next_user: 0,
                registered: 0,
                cookies: Vec::new(),
                tokens: Vec::new(),
                turn: id,
                logins: id,
                logouts: id,
            };
            let mut due = tokio::time::Instant::now();
            if let Some(period) = period {
                due += period.mul_f64(id as f64 / 64.0 % 1.0);
            }
            let mut position = (id * 37) % cycle.len();
            while !shared.stop.load(Ordering::Relaxed) {
                if let Some(period) = period {
                    tokio::time::sleep_until(due).await;
                    // Behind schedule (the server is slower than the rate): skip, do not burst.
                    due = (due + period).max(tokio::time::Instant::now());
                }
                worker.step(cycle[position]).await;
                position = (position + 1) % cycle.len();
            }
        }));
    }

    let columns: Vec<String> = args
        .probe_columns
        .split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut samples: Vec<(u64, Vec<String>)> = Vec::new();
    let mut ticker = tokio::time::interval(args.interval);
    ticker.tick().await;
    let mut printed = 0usize;
    let deadline = Instant::now() + args.duration;
    let probe = |samples: &mut Vec<(u64, Vec<String>)>, at: u64| {
        if let Some(command) = &args.probe {
            let output = std::process::Command::new("bash")
                .arg("-c")
                .arg(command)
                .output();
            let figures = output
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            samples.push((at, figures));
        }
    };
    probe(&mut samples, 0);
    eprintln!("# start_unix_ms={start_unix_ms}");
    eprintln!(
        "# s\treq/s\terrors\tcookie p50 ms\tcookie p99 ms\t{}",
        columns.join("\t")
    );
    while Instant::now() < deadline {
        ticker.tick().await;
        let at = shared.elapsed_ms();
        probe(&mut samples, at);
        let events = shared.events.lock().unwrap_or_else(|e| e.into_inner());
        let recent = &events[printed..];
        let errors = recent
            .iter()
            .filter(|e| e.status != e.kind.expected().as_u16())
            .count();
        let mut cookie: Vec<u32> = recent
            .iter()
            .filter(|e| e.kind == Kind::CookieCheck)
            .map(|e| e.latency_us)
            .collect();
        cookie.sort_unstable();
        eprintln!(
            "{}\t{:.0}\t{}\t{}\t{}\t{}",
            at / 1000,
            recent.len() as f64 / args.interval.as_secs_f64(),
            errors,
            ms(percentile(&cookie, 0.5)),
            ms(percentile(&cookie, 0.99)),
            samples
                .last()
                .map(|(_, f)| f.join("\t"))
                .unwrap_or_default()
        );
        printed = events.len();
    }
    shared.stop.store(true, Ordering::Relaxed);
    let stopped_ms = shared.elapsed_ms();
    for task in tasks {
        task.await?;
    }
    let total_ms = shared.elapsed_ms();
    probe(&mut samples, total_ms);
    if let Some(out) = shared
        .journal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        out.flush()?;
    }
    let events = std::mem::take(&mut *shared.events.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(path) = &args.events {
        let mut out = BufWriter::new(File::create(path)?);
        writeln!(out, "# start_unix_ms={start_unix_ms}")?;
        for e in &events {
            writeln!(
                out,
                "{},{},{},{},{}",
                e.end_ms,
                e.kind.name(),
                e.target,
                e.status,
                e.latency_us
            )?;
        }
        out.flush()?;
    }
    let table = minute_table(&events, &samples, &columns, total_ms, stopped_ms);
    println!("{table}");
    if let Some(path) = &args.table {
        std::fs::write(path, &table)?;
    }
    Ok(())
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(us: u32) -> String {
    format!("{:.2}", f64::from(us) / 1000.0)
}

/// The run summed up per minute: requests, rate, errors by kind and status, cookie-check
/// latency, and the last probe of the minute.
fn minute_table(
    events: &[Event],
    samples: &[(u64, Vec<String>)],
    columns: &[String],
    total_ms: u64,
    stopped_ms: u64,
) -> String {
    let minutes = total_ms.div_ceil(60_000).max(1);
    let mut out = String::new();
    out.push_str("| minute | requests | req/s | errors | cookie check p50 / p99 ms | all p99 ms |");
    for column in columns {
        out.push_str(&format!(" {column} |"));
    }
    out.push_str("\n| ---: | ---: | ---: | ---: | ---: | ---: |");
    for _ in columns {
        out.push_str(" ---: |");
    }
    out.push('\n');
    let mut error_kinds: BTreeMap<(Kind, u16), usize> = BTreeMap::new();
    let mut totals = (0usize, 0usize);
    for minute in 0..minutes {
        let from = minute * 60_000;
        let to = ((minute + 1) * 60_000).min(total_ms);
        let inside: Vec<&Event> = events
            .iter()
            .filter(|e| u64::from(e.end_ms) >= from && u64::from(e.end_ms) < to.max(from + 1))
            .collect();
        let errors: Vec<&&Event> = inside
            .iter()
            .filter(|e| e.status != e.kind.expected().as_u16())
            .collect();
        for e in &errors {
            *error_kinds.entry((e.kind, e.status)).or_default() += 1;
        }
        totals.0 += inside.len();
        totals.1 += errors.len();
        let mut cookie: Vec<u32> = inside
            .iter()
            .filter(|e| e.kind == Kind::CookieCheck)
            .map(|e| e.latency_us)
            .collect();
        cookie.sort_unstable();
        let mut all: Vec<u32> = inside.iter().map(|e| e.latency_us).collect();
        all.sort_unstable();
        let seconds = (to.saturating_sub(from)).max(1) as f64 / 1000.0;
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} / {} | {} |",
            minute + 1,
            inside.len(),
            inside.len() as f64 / seconds,
            errors.len(),
            ms(percentile(&cookie, 0.5)),
            ms(percentile(&cookie, 0.99)),
            ms(percentile(&all, 0.99)),
        ));
        let last = samples
            .iter()
            .rev()
            .find(|(at, _)| *at <= to && *at > from)
            .map(|(_, figures)| figures.clone())
            .unwrap_or_default();
        for index in 0..columns.len() {
            out.push_str(&format!(
                " {} |",
                last.get(index).map_or("", String::as_str)
            ));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "\n{} requests, {} errors{}",
        totals.0,
        totals.1,
        if error_kinds.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                error_kinds
                    .iter()
                    .map(|((kind, status), n)| format!("{n} × {} → {}", kind.name(), status))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    let mut by_kind: BTreeMap<Kind, usize> = BTreeMap::new();
    for e in events {
        *by_kind.entry(e.kind).or_default() += 1;
    }
    out.push_str(&format!(
        "\noverall: {:.0} req/s over {:.0} s (the requests in flight at the end not counted)",
        events
            .iter()
            .filter(|e| u64::from(e.end_ms) <= stopped_ms)
            .count() as f64
            / (stopped_ms.max(1) as f64 / 1000.0),
        stopped_ms as f64 / 1000.0
    ));
    out.push_str(&format!(
        "\nby kind: {}\n",
        by_kind
            .iter()
            .map(|(kind, n)| format!("{} {n}", kind.name()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

// ---------------------------------------------------------------------------------------
// verify

#[derive(Default)]
struct Journaled {
    transport: String,
    cookie: String,
    access: String,
    refresh: String,
    login_at: u64,
    logout_at: u64,
    logged_out: bool,
    lost_in_run: bool,
    dropped: bool,
}

async fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let mut users = Vec::new();
    let mut sessions: HashMap<String, Journaled> = HashMap::new();
    let mut kids = HashSet::new();
    for line in BufReader::new(File::open(&args.journal)?).lines() {
        let entry: Value = serde_json::from_str(&line?)?;
        let at = entry["at"].as_u64().unwrap_or(0);
        let str_of = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
        if let Some(user) = entry["user"]
            .as_str()
            .filter(|_| entry.get("login").is_none())
        {
            users.push(user.to_owned());
        } else if let Some(sid) = entry["login"].as_str() {
            let session = Journaled {
                transport: str_of("transport"),
                cookie: str_of("cookie"),
                access: str_of("access"),
                refresh: str_of("refresh"),
                login_at: at,
                ..Journaled::default()
            };
            sessions.insert(sid.to_owned(), session);
        } else if let Some(sid) = entry["refresh"].as_str() {
            if let Some(session) = sessions.get_mut(sid) {
                session.access = str_of("access");
                session.refresh = str_of("refresh_token");
            }
        } else if let Some(sid) = entry["logout"].as_str() {
            if let Some(session) = sessions.get_mut(sid) {
                session.logged_out = true;
                session.logout_at = at;
            }
        } else if let Some(sid) = entry["logout_unacknowledged"].as_str() {
            if let Some(session) = sessions.get_mut(sid) {
                session.dropped = true;
            }
        } else if let Some(sid) = entry["lost"].as_str()
            && let Some(session) = sessions.get_mut(sid)
        {
            session.lost_in_run = true;
        }
        if let Some(access) = entry["access"].as_str()
            && let Some(kid) = kid_of(access)
        {
            kids.insert(kid);
        }
    }
    let client = client(args.concurrency)?;
    let base = args.target.clone();

    // Keys: every key that signed an acknowledged token is still published.
    let jwks: Value = client
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await?
        .json()
        .await?;
    let published: HashSet<String> = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|key| key["kid"].as_str().map(str::to_owned))
        .collect();
    let missing_keys = kids.difference(&published).count();

    // Sessions: live ones still work, logged-out ones still refuse.
    let checked: Vec<(&String, &Journaled, Option<StatusCode>, Option<StatusCode>)> =
        futures_util::stream::iter(sessions.iter().filter(|(_, s)| !s.dropped))
            .map(|(sid, session)| {
                let client = client.clone();
                let base = base.clone();
                async move {
                    let check = if session.transport == "cookie" {
                        client
                            .get(format!("{base}/v1/session"))
                            .header("cookie", &session.cookie)
                    } else {
                        client
                            .get(format!("{base}/v1/session"))
                            .bearer_auth(&session.access)
                    };
                    let check = check.send().await.ok().map(|r| r.status());
                    let refresh = if session.transport == "token" {
                        client
                            .post(format!("{base}/v1/token"))
                            .form(&[
                                ("grant_type", "refresh_token"),
                                ("refresh_token", session.refresh.as_str()),
                            ])
                            .send()
                            .await
                            .ok()
                            .map(|r| r.status())
                    } else {
                        None
                    };
                    (sid, session, check, refresh)
                }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
    let mut live = (0usize, 0usize, 0usize); // checked, still valid, lost
    let mut lost_in_run = 0usize;
    let mut refreshes = (0usize, 0usize); // checked, still valid
    let mut revoked = (0usize, 0usize); // checked, came back to life
    let mut unanswered = 0usize;
    let mut lost_login_times = Vec::new();
    for (sid, session, check, refresh) in &checked {
        if check.is_none() || (session.transport == "token" && refresh.is_none()) {
            unanswered += 1;
            continue;
        }
        if session.logged_out {
            revoked.0 += 1;
            let refresh_works = *refresh == Some(StatusCode::OK);
            if *check == Some(StatusCode::OK) || refresh_works {
                revoked.1 += 1;
                eprintln!(
                    "acknowledged logout came back: session {sid} ({}), logged in at {} ms, out at {} ms; check {:?}, refresh {:?}",
                    session.transport, session.login_at, session.logout_at, check, refresh
                );
            }
        } else if session.lost_in_run {
            lost_in_run += 1;
            lost_login_times.push(session.login_at);
        } else {
            live.0 += 1;
            if *check == Some(StatusCode::OK) {
                live.1 += 1;
            } else {
                live.2 += 1;
                lost_login_times.push(session.login_at);
            }
            if session.transport == "token" {
                refreshes.0 += 1;
                if *refresh == Some(StatusCode::OK) {
                    refreshes.1 += 1;
                }
            }
        }
    }
    // Users: each can still log in. After the sessions: thousands of password hashes take
    // minutes, longer than an access token lives, and a session's JWT must be checked while
    // it is still valid.
    // A `503` (busy, or the store failing closed) says nothing about the user: it is asked
    // again after its `Retry-After`, a few times, and what a user finally got is reported.
    let user_results: Vec<Option<StatusCode>> = futures_util::stream::iter(users.iter())
        .map(|user| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let body = json!({"username": user, "password": password_of(user)});
                let mut status = None;
                for _ in 0..VERIFY_ATTEMPTS {
                    let response = client
                        .post(format!("{base}/v1/login"))
                        .json(&body)
                        .send()
                        .await
                        .ok();
                    status = response.as_ref().map(|r| r.status());
                    if status != Some(StatusCode::SERVICE_UNAVAILABLE) {
                        break;
                    }
                    let wait = response
                        .as_ref()
                        .and_then(|r| r.headers().get("retry-after"))
                        .and_then(|value| value.to_str().ok()?.parse().ok())
                        .unwrap_or(1u64);
                    tokio::time::sleep(Duration::from_secs(wait.min(10))).await;
                }
                status
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let users_ok = user_results
        .iter()
        .filter(|s| **s == Some(StatusCode::OK))
        .count();
    let mut users_refused: BTreeMap<String, usize> = BTreeMap::new();
    for status in user_results.iter().filter(|s| **s != Some(StatusCode::OK)) {
        let name = status.map_or_else(|| "no answer".to_owned(), |s| s.as_u16().to_string());
        *users_refused.entry(name).or_default() += 1;
    }

    lost_login_times.sort_unstable();
    let summary = json!({
        "users": {"acknowledged": users.len(), "can_log_in": users_ok, "lost": users.len() - users_ok,
                  "refused_with": users_refused},
        "live_sessions": {"checked": live.0, "valid": live.1, "lost": live.2,
                          "lost_during_run": lost_in_run,
                          "lost_logged_in_between_unix_ms": [lost_login_times.first(), lost_login_times.last()]},
        "token_sessions_refreshable": {"checked": refreshes.0, "refreshed": refreshes.1},
        "revocations": {"acknowledged_logouts_checked": revoked.0, "came_back": revoked.1},
        "keys": {"seen": kids.len(), "missing_from_jwks": missing_keys},
        "unanswered_checks": unanswered,
    });
    println!("{summary}");
    Ok(())
}

fn kid_of(jwt: &str) -> Option<String> {
    let header = jwt.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header["kid"].as_str().map(str::to_owned)
}

// ---------------------------------------------------------------------------------------
// faults

struct Fault {
    label: String,
    start: u64,
    end: u64,
}

fn faults(args: &FaultsArgs) -> Result<(), Failure> {
    let mut start_unix_ms = 0u64;
    let mut events: Vec<(u64, Kind, u8, u16)> = Vec::new();
    for line in BufReader::new(File::open(&args.events)?).lines() {
        let line = line?;
        if let Some(value) = line.strip_prefix("# start_unix_ms=") {
            start_unix_ms = value.parse()?;
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 4 {
            continue;
        }
        let Some(kind) = Kind::from_name(fields[1]) else {
            continue;
        };
        events.push((
            start_unix_ms + fields[0].parse::<u64>()?,
            kind,
            fields[2].parse()?,
            fields[3].parse()?,
        ));
    }
    events.sort_by_key(|e| e.0);
    let mut list = Vec::new();
    for line in BufReader::new(File::open(&args.faults)?).lines() {
        let line = line?;
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() == 3 {
            list.push(Fault {
                label: fields[0].to_owned(),
                start: fields[1].parse()?,
                end: fields[2].parse()?,
            });
        }
    }
    println!(
        "| fault | fault lasted s | first 503 after s | answers from the fault's start to 5 s after its end | last failure after the end s |"
    );
    println!("| --- | ---: | ---: | --- | ---: |");
    for (index, fault) in list.iter().enumerate() {
        let window_end = list
            .get(index + 1)
            .map_or(u64::MAX, |next| next.start)
            .min(fault.end + 5_000);
        let window_end_all = list.get(index + 1).map_or(u64::MAX, |next| next.start);
        let inside: Vec<_> = events
            .iter()
            .filter(|e| e.0 >= fault.start && e.0 < window_end)
            .collect();
        let first_503 = inside
            .iter()
            .find(|e| e.3 == 503)
            .map(|e| secs(e.0 - fault.start));
        let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
        for e in &inside {
            let label = if e.3 == e.1.expected().as_u16() {
                "ok".to_owned()
            } else if e.3 == 0 {
                "no answer".to_owned()
            } else {
                format!("{} {}", e.1.name(), e.3)
            };
            *by_status.entry(label).or_default() += 1;
        }
        let last_failure = events
            .iter()
            .filter(|e| e.0 >= fault.start && e.0 < window_end_all)
            .filter(|e| e.3 != e.1.expected().as_u16())
            .map(|e| e.0)
            .max();
        let recovery = match last_failure {
            Some(at) if at > fault.end => secs(at - fault.end),
            Some(_) => "0 (none after)".to_owned(),
            None => "no failure".to_owned(),
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            fault.label,
            secs(fault.end.saturating_sub(fault.start)),
            first_503.unwrap_or_else(|| "none".to_owned()),
            by_status
                .iter()
                .map(|(label, n)| format!("{label}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            recovery,
        );
    }
    Ok(())
}

fn secs(ms: u64) -> String {
    format!("{:.2}", ms as f64 / 1000.0)
}

// ---------------------------------------------------------------------------------------
// flood

async fn flood(args: FloodArgs) -> Result<(), Failure> {
    let client = client(args.logins + args.checkers)?;
    let base = args.target.clone();
    let password = password_of(&args.username);
    let registered = client
        .post(format!("{base}/v1/users"))
        .json(&json!({"username": args.username, "password": password}))
        .send()
        .await?
        .status();
    if registered != StatusCode::CREATED && registered != StatusCode::CONFLICT {
        return Err(format!("registration answered {registered}").into());
    }
    let login = client
        .post(format!("{base}/v1/login"))
        .json(&json!({"username": args.username, "password": password}))
        .send()
        .await?;
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.contains("tessera_session="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
        .ok_or("no session cookie")?;

    println!("| phase | session checks | non-200 | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let quiet = checks(&client, &base, &cookie, &args).await;
    print_checks("session checks alone", &quiet);

    let stop = Arc::new(AtomicBool::new(false));
    let logins: Arc<Mutex<Vec<(u16, bool, u32)>>> = Arc::default();
    let mut flooders = Vec::new();
    for index in 0..args.logins {
        let client = client.clone();
        let base = base.clone();
        let username = args.username.clone();
        let right = password.clone();
        let stop = Arc::clone(&stop);
        let logins = Arc::clone(&logins);
        flooders.push(tokio::spawn(async move {
            let mut attempt = 0usize;
            while !stop.load(Ordering::Relaxed) {
                attempt += 1;
                let password = if (index + attempt).is_multiple_of(2) {
                    right.as_str()
                } else {
                    "a wrong password, tried anyway"
                };
                let begun = Instant::now();
                let answer = client
                    .post(format!("{base}/v1/login"))
                    .json(&json!({"username": username, "password": password}))
                    .send()
                    .await;
                let latency = u32::try_from(begun.elapsed().as_micros()).unwrap_or(u32::MAX);
                let (status, retry_after) = match answer {
                    Ok(r) => (r.status().as_u16(), r.headers().contains_key("retry-after")),
                    Err(_) => (0, false),
                };
                logins.lock().unwrap_or_else(|e| e.into_inner()).push((
                    status,
                    retry_after,
                    latency,
                ));
            }
        }));
    }
    // Let every login slot fill before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flooded = checks(&client, &base, &cookie, &args).await;
    stop.store(true, Ordering::Relaxed);
    for task in flooders {
        task.await?;
    }
    print_checks(
        &format!("session checks during {} concurrent logins", args.logins),
        &flooded,
    );

    let logins = std::mem::take(&mut *logins.lock().unwrap_or_else(|e| e.into_inner()));
    let mut by_status: BTreeMap<u16, (Vec<u32>, usize)> = BTreeMap::new();
    for (status, retry_after, latency) in logins {
        let entry = by_status.entry(status).or_default();
        entry.0.push(latency);
        entry.1 += usize::from(retry_after);
    }
    println!();
    println!("| login answer | count | with Retry-After | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (status, (mut latencies, retry_after)) in by_status {
        latencies.sort_unstable();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            if status == 0 {
                "no answer".to_owned()
            } else {
                status.to_string()
            },
            latencies.len(),
            retry_after,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(latencies.last().copied().unwrap_or(0)),
        );
    }
    Ok(())
}

struct CheckResult {
    latencies: Vec<u32>,
    failures: usize,
}

async fn checks(client: &Client, base: &str, cookie: &str, args: &FloodArgs) -> CheckResult {
    let deadline = tokio::time::Instant::now() + args.duration;
    let mut tasks = Vec::new();
    for index in 0..args.checkers {
        let client = client.clone();
        let url = format!("{base}/v1/session");
        let cookie = cookie.to_owned();
        let every = args.check_every;
        let offset = every.mul_f64(index as f64 / args.checkers as f64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            let mut due = tokio::time::Instant::now() + offset;
            while due < deadline {
                tokio::time::sleep_until(due).await;
                due = (due + every).max(tokio::time::Instant::now());
                let begun = Instant::now();
                let status = client
                    .get(&url)
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .map(|r| r.status());
                latencies.push(u32::try_from(begun.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !matches!(status, Ok(StatusCode::OK)) {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut result = CheckResult {
        latencies: Vec::new(),
        failures: 0,
    };
    for task in tasks {
        if let Ok((latencies, failures)) = task.await {
            result.latencies.extend(latencies);
            result.failures += failures;
        }
    }
    result.latencies.sort_unstable();
    result
}

fn print_checks(label: &str, result: &CheckResult) {
    println!(
        "| {label} | {} | {} | {} | {} | {} |",
        result.latencies.len(),
        result.failures,
        ms(percentile(&result.latencies, 0.5)),
        ms(percentile(&result.latencies, 0.99)),
        ms(result.latencies.last().copied().unwrap_or(0)),
    );
}
