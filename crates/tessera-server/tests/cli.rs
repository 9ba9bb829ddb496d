//! The `tessera` binary from outside: the CLI, `serve` with environment configuration, and
//! graceful shutdown on SIGTERM.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn tessera(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.current_dir(dir).env("TESSERA__LOG__LEVEL", "warn");
    for (name, _) in std::env::vars() {
        if name.starts_with("TESSERA__") {
            command.env_remove(name);
        }
    }
    command
}

fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = tessera(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `table` is a header line over at least one row, and that every row's cells
/// start in the column where their header title does.
fn assert_aligned(table: &str, titles: &[&str]) {
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    let starts: Vec<usize> = titles
        .iter()
        .map(|title| {
            header
                .find(title)
                .unwrap_or_else(|| panic!("{title} in {header}"))
        })
        .collect();
    let mut rows = 0;
    for line in lines {
        rows += 1;
        for (&start, title) in starts.iter().zip(titles).skip(1) {
            let aligned = line
                .get(..start)
                .is_some_and(|before| before.ends_with("  "))
                && line.get(start..).is_some_and(|cell| !cell.starts_with(' '));
            assert!(
                aligned,
                "{title} does not start at column {start}:\n{table}"
            );
        }
    }
    assert!(rows > 0, "no rows:\n{table}");
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = tessera(dir);
        command.args(["serve", "--bind", &format!("127.0.0.1:{port}")]);
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(response) = reqwest::get(format!("{}/healthz", server.base)).await
                && response.status() == StatusCode::OK
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not come up");
    }

    async fn login(&self, username: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/login", self.base))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned()
    }

    async fn session(&self, token: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/session", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls until the session answers `status`, for up to five seconds.
    async fn wait_for_status(&self, token: &str, status: StatusCode) {
        let started = Instant::now();
        loop {
            if self.session(token).await.0 == status {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "session never became {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[tokio::test]
async fn the_cli_manages_users_and_sessions_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let init = run(dir.path(), &["init"], None);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let added = run(
        dir.path(),
        &["user", "add", "alice"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(text(&added.stdout).contains("created user alice"));
    assert!(
        dir.path().join("tessera-data/tessera.db").is_file(),
        "the default database lives under ./tessera-data"
    );

    let again = run(
        dir.path(),
        &["user", "add", "ALICE"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists already"),
        "{}",
        text(&again.stderr)
    );
    let weak = run(dir.path(), &["user", "add", "bob"], Some("password\n"));
    assert_eq!(weak.status.code(), Some(1));
    assert!(
        text(&weak.stderr).contains("too common"),
        "{}",
        text(&weak.stderr)
    );
    let empty = run(dir.path(), &["user", "add", "bob"], Some(""));
    assert_eq!(empty.status.code(), Some(1));
    let usage = run(dir.path(), &["user", "frobnicate"], None);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");

    let long_name = "a-username-longer-than-the-old-fixed-columns";
    let added = run(
        dir.path(),
        &["user", "add", long_name],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.status.success(), "{}", text(&added.stderr));

    let listed = run(dir.path(), &["user", "list"], None);
    assert!(listed.status.success());
    assert!(text(&listed.stdout).contains("alice"));
    assert!(!text(&listed.stdout).contains("bob"));
    assert_aligned(&text(&listed.stdout), &["ID", "USERNAME", "CREATED"]);

    let server = Server::start(dir.path(), &[]).await;
    let token = server.login("alice").await;
    let (status, body) = server.session(&token).await;
    assert_eq!(status, StatusCode::OK);
    let session_id = body["session"]["id"].as_str().unwrap().to_owned();

    let sessions = run(dir.path(), &["session", "list", "--user", "alice"], None);
    assert!(sessions.status.success(), "{}", text(&sessions.stderr));
    assert!(text(&sessions.stdout).contains(&session_id));
    assert_aligned(
        &text(&sessions.stdout),
        &["SESSION", "USER", "VIA", "LAST SEEN", "EXPIRES", "IP"],
    );
    assert!(
        !text(&sessions.stdout).contains(&token),
        "the CLI never shows a session token"
    );

    // A revocation by the CLI (another process) reaches the running server's cache.
    let revoked = run(dir.path(), &["session", "revoke", &session_id], None);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    server
        .wait_for_status(&token, StatusCode::UNAUTHORIZED)
        .await;
    let twice = run(dir.path(), &["session", "revoke", &session_id], None);
    assert_eq!(twice.status.code(), Some(1));

    let token = server.login("alice").await;
    let removed = run(dir.path(), &["user", "remove", "alice"], None);
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    server
        .wait_for_status(&token, StatusCode::UNAUTHORIZED)
        .await;
    let missing = run(dir.path(), &["user", "remove", "alice"], None);
    assert_eq!(missing.status.code(), Some(1));

    assert!(server.terminate().success(), "SIGTERM is a clean shutdown");
}

/// The status of a cookie-transport login with `password`.
async fn login_status(server: &Server, username: &str, password: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{}/v1/login", server.base))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn an_administrative_password_reset_ends_every_session_of_the_user() {
    const NEW_PASSWORD: &str = "a brand new passphrase";
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    for name in ["alice", "bob"] {
        let added = run(
            dir.path(),
            &["user", "add", name],
            Some(&format!("{PASSWORD}\n")),
        );
        assert!(added.status.success(), "{}", text(&added.stderr));
    }
    let server = Server::start(dir.path(), &[]).await;
    let first = server.login("alice").await;
    let second = server.login("alice").await;
    let bystander = server.login("bob").await;

    // A password the policy refuses changes nothing.
    let weak = run(
        dir.path(),
        &["user", "reset-password", "alice"],
        Some("password\n"),
    );
    assert_eq!(weak.status.code(), Some(1));
    assert!(
        text(&weak.stderr).contains("too common"),
        "{}",
        text(&weak.stderr)
    );
    assert_eq!(server.session(&first).await.0, StatusCode::OK);
    let unknown = run(
        dir.path(),
        &["user", "reset-password", "nobody"],
        Some(&format!("{NEW_PASSWORD}\n")),
    );
    assert_eq!(unknown.status.code(), Some(1));

    let reset = run(
        dir.path(),
        &["user", "reset-password", "alice"],
        Some(&format!("{NEW_PASSWORD}\n")),
    );
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert!(
        text(&reset.stdout).contains("ended 2 session(s)"),
        "{}",
        text(&reset.stdout)
    );
    assert!(!text(&reset.stdout).contains(NEW_PASSWORD));
    // The CLI is another process: the running server learns of it from the revocation log.
    for token in [&first, &second] {
        server
            .wait_for_status(token, StatusCode::UNAUTHORIZED)
            .await;
    }
    assert_eq!(server.session(&bystander).await.0, StatusCode::OK);
    assert_eq!(
        login_status(&server, "alice", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_status(&server, "alice", NEW_PASSWORD).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn environment_variables_configure_the_server() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    let added = run(
        dir.path(),
        &["user", "add", "alice"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.status.success());
    let server = Server::start(dir.path(), &[("TESSERA__SESSION__IDLE_TIMEOUT", "1s")]).await;
    let token = server.login("alice").await;
    assert_eq!(server.session(&token).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = server.session(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "session_expired");
    drop(server);

    let typo = tessera(dir.path())
        .args(["serve"])
        .env("TESSERA__SESSION__IDLE_TIMOUT", "5m")
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(1));
    assert!(
        text(&typo.stderr).contains("idle_timout"),
        "{}",
        text(&typo.stderr)
    );
}

#[tokio::test]
async fn a_key_rotated_by_the_cli_is_published_by_the_running_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("TESSERA__TOKEN__KEY_RELOAD", "200ms")]).await;
    let jwks = || async {
        reqwest::get(format!("{}/.well-known/jwks.json", server.base))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let before = jwks().await;
    assert_eq!(before.len(), 1, "one key generated on first start");
    let rotated = run(dir.path(), &["keys", "rotate"], None);
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    assert!(text(&rotated.stdout).contains("added signing key"));
    let started = Instant::now();
    loop {
        let now = jwks().await;
        if now.len() == 2 {
            assert!(now.contains(&before[0]), "the old key stays published");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "rotation never reached the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn api_clients_are_added_listed_and_removed_and_their_secret_is_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    let added = run(dir.path(), &["client", "add", "billing"], None);
    assert!(added.status.success(), "{}", text(&added.stderr));
    let output = text(&added.stdout);
    let secret = output
        .lines()
        .find_map(|line| line.strip_prefix("client_secret: "))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(secret.len(), 43);
    let listed = run(dir.path(), &["client", "list"], None);
    assert!(text(&listed.stdout).contains("billing"));
    assert_aligned(&text(&listed.stdout), &["ID", "NAME", "CREATED", "SCOPE"]);
    assert!(
        !text(&listed.stdout).contains(&secret),
        "the secret is never shown again"
    );
    let again = run(dir.path(), &["client", "add", "billing"], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        run(dir.path(), &["client", "remove", "billing"], None)
            .status
            .success()
    );
    assert_eq!(
        run(dir.path(), &["client", "remove", "billing"], None)
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn services_are_registered_listed_and_removed_and_bad_registrations_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    let added = run(
        dir.path(),
        &[
            "service",
            "add",
            "billing",
            "--audience",
            "https://billing.example",
            "--scope",
            "invoices:read",
            "--scope",
            "refund=support|admin",
            "--max-ttl",
            "2m",
        ],
        None,
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let cart = run(
        dir.path(),
        &[
            "service",
            "add",
            "cart",
            "--audience",
            "https://cart.example",
            "--sessions",
        ],
        None,
    );
    assert!(cart.status.success(), "{}", text(&cart.stderr));
    let listed = text(&run(dir.path(), &["service", "list"], None).stdout);
    assert_aligned(
        &listed,
        &[
            "NAME", "AUDIENCE", "SCOPES", "MAX TTL", "SESSIONS", "CREATED",
        ],
    );
    let billing = listed
        .lines()
        .find(|line| line.starts_with("billing"))
        .unwrap();
    assert!(
        billing.contains("invoices:read refund=support|admin"),
        "{listed}"
    );
    assert!(billing.contains("2m"), "{listed}");
    assert!(billing.contains(" no "), "{listed}");
    let cart = listed
        .lines()
        .find(|line| line.starts_with("cart"))
        .unwrap();
    assert!(cart.contains(" yes "), "{listed}");

    // A taken name or audience, and malformed input: refused, nothing added.
    for args in [
        &[
            "service",
            "add",
            "billing",
            "--audience",
            "https://other.example",
        ][..],
        &[
            "service",
            "add",
            "billing2",
            "--audience",
            "https://billing.example",
        ][..],
        &[
            "service",
            "add",
            "bad name",
            "--audience",
            "https://x.example",
        ][..],
        &["service", "add", "x", "--audience", "has space"][..],
        &[
            "service",
            "add",
            "x",
            "--audience",
            "https://x.example",
            "--scope",
            "a=b=c",
        ][..],
        &[
            "service",
            "add",
            "x",
            "--audience",
            "https://x.example",
            "--scope",
            "a",
            "--scope",
            "a",
        ][..],
        &[
            "service",
            "add",
            "x",
            "--audience",
            "https://x.example",
            "--max-ttl",
            "0s",
        ][..],
        &[
            "service",
            "add",
            "x",
            "--audience",
            "https://x.example",
            "--max-ttl",
            "2d",
        ][..],
    ] {
        let refused = run(dir.path(), args, None);
        assert_ne!(refused.status.code(), Some(0), "{args:?}");
        assert!(!text(&refused.stderr).is_empty(), "{args:?}");
    }
    let listed = text(&run(dir.path(), &["service", "list"], None).stdout);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(
        run(dir.path(), &["service", "remove", "billing"], None)
            .status
            .success()
    );
    assert_eq!(
        run(dir.path(), &["service", "remove", "billing"], None)
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn an_admin_client_is_added_with_the_admin_scope_and_listed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    for args in [
        &["client", "add", "ops", "--admin"][..],
        &["client", "add", "billing"][..],
    ] {
        let added = run(dir.path(), args, None);
        assert!(added.status.success(), "{}", text(&added.stderr));
        assert!(text(&added.stdout).contains("client_secret: "));
    }
    let listed = text(&run(dir.path(), &["client", "list"], None).stdout);
    assert_aligned(&listed, &["ID", "NAME", "CREATED", "SCOPE"]);
    let scope_of = |name: &str| {
        listed
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some(name))
            .and_then(|line| line.split_whitespace().last())
            .map(str::to_owned)
    };
    assert_eq!(scope_of("ops").as_deref(), Some("admin"), "{listed}");
    assert_eq!(scope_of("billing").as_deref(), Some("-"), "{listed}");
}

#[test]
fn help_says_what_the_command_is() {
    let dir = tempfile::tempdir().unwrap();
    let help = run(dir.path(), &["--help"], None);
    assert!(help.status.success());
    let first_line = text(&help.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        first_line.starts_with("Run the Tessera session and token server"),
        "{first_line}"
    );
    assert_ne!(first_line, env!("CARGO_PKG_DESCRIPTION"));
}

#[test]
fn serve_refuses_a_shared_store_without_an_issuer() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 and nothing is connected to: the refusal comes first.
    for (key, value) in [
        (
            "TESSERA__DATABASE__URL",
            "postgres://postgres@127.0.0.1:9/none",
        ),
        ("TESSERA__SESSIONS__STORE", "redis://127.0.0.1:9"),
    ] {
        let output = tessera(dir.path())
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env(key, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{key}: {output:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("server.public_url"), "{key}: {stderr}");
        assert!(stderr.contains("shared"), "{key}: {stderr}");
        assert!(
            !dir.path().join("tessera-data").exists(),
            "{key}: a refused start created a data directory"
        );
    }
}

#[test]
fn only_serve_and_init_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 6] = [
        &["user", "list"],
        &["user", "add", "alice"],
        &["session", "list"],
        &["keys", "rotate"],
        &["client", "list"],
        &["client", "add", "billing"],
    ];
    let expected = std::path::absolute(dir.path().join("tessera-data/tessera.db")).unwrap();
    for args in commands {
        let refused = run(dir.path(), args, Some(&format!("{PASSWORD}\n")));
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        let message = text(&refused.stderr);
        assert!(
            message.contains(&format!("no database at {}", expected.display())),
            "{args:?}: {message}"
        );
        assert!(message.contains("tessera init"), "{message}");
        assert!(
            !dir.path().join("tessera-data").exists(),
            "{args:?} created the data directory"
        );
    }
    let init = run(dir.path(), &["init"], None);
    assert!(init.status.success(), "{}", text(&init.stderr));
    assert!(run(dir.path(), &["user", "list"], None).status.success());
    assert!(
        run(dir.path(), &["init"], None).status.success(),
        "init is idempotent"
    );
}

#[cfg(unix)]
#[test]
fn the_database_is_created_owner_only_and_a_shared_one_is_reported() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let init = run(dir.path(), &["init"], None);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let data = dir.path().join("tessera-data");
    let database = data.join("tessera.db");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&database), 0o600);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path) & 0o077, 0, "{}", path.display());
    }
    let quiet = run(dir.path(), &["user", "list"], None);
    assert!(!text(&quiet.stderr).contains("group or others"));
    std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warned = run(dir.path(), &["user", "list"], None);
    assert!(warned.status.success());
    assert!(
        text(&warned.stderr).contains("group or others"),
        "{}",
        text(&warned.stderr)
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    let database = dir.path().join("tessera-data/tessera.db");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // A warning to log.
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let logged = tessera(dir.path())
        .args(["user", "list"])
        .env("TESSERA__LOG__LEVEL", "debug")
        .output()
        .unwrap();
    let stderr = text(&logged.stderr);
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn a_session_id_that_starts_with_a_hyphen_is_an_id_not_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    // Base64url ids start with `-` one time in 64; this one names no session.
    let revoked = run(
        dir.path(),
        &["session", "revoke", "-YAAAAAAAAAAAAAAAAAAAA"],
        None,
    );
    let stderr = text(&revoked.stderr);
    assert_eq!(revoked.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}

#[tokio::test]
async fn backup_copies_the_live_database_owner_only_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let init = run(dir.path(), &["init"], None);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let added = run(
        dir.path(),
        &["user", "add", "alice"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let server = Server::start(dir.path(), &[]).await;
    // A session written through the running server lives in the WAL until a checkpoint: a
    // copy of the database file alone would not have it.
    let token = server.login("alice").await;
    let (status, body) = server.session(&token).await;
    assert_eq!(status, StatusCode::OK);
    let session_id = body["session"]["id"].as_str().unwrap().to_owned();

    let copy = dir.path().join("backup.db");
    let backup = run(dir.path(), &["backup", copy.to_str().unwrap()], None);
    assert!(backup.status.success(), "{}", text(&backup.stderr));
    assert!(
        text(&backup.stdout).contains("backed up"),
        "{}",
        text(&backup.stdout)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the copy holds the signing keys");
    }
    let after = run(
        dir.path(),
        &["user", "add", "bob"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(after.status.success(), "{}", text(&after.stderr));

    // The copy is a database of its own, of the moment it was taken.
    let from_copy = |args: &[&str]| {
        let mut command = tessera(dir.path());
        command.args(args).env(
            "TESSERA__DATABASE__URL",
            format!("sqlite://{}", copy.display()),
        );
        command.output().unwrap()
    };
    let users = from_copy(&["user", "list"]);
    assert!(users.status.success(), "{}", text(&users.stderr));
    let users = text(&users.stdout);
    assert!(users.contains("alice"), "{users}");
    assert!(!users.contains("bob"), "{users}");
    let sessions = from_copy(&["session", "list", "--user", "alice"]);
    assert!(sessions.status.success(), "{}", text(&sessions.stderr));
    assert!(
        text(&sessions.stdout).contains(&session_id),
        "the session in the WAL is in the copy: {}",
        text(&sessions.stdout)
    );

    // A second backup to the same path is refused and leaves the first intact.
    let before = std::fs::read(&copy).unwrap();
    let again = run(dir.path(), &["backup", copy.to_str().unwrap()], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("never overwrites"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(&copy).unwrap(), before);
    drop(server);

    // PostgreSQL has its own tool; the command says which instead of guessing.
    let postgres = tessera(dir.path())
        .args(["backup", "elsewhere.db"])
        .env(
            "TESSERA__DATABASE__URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        )
        .env("TESSERA__SERVER__PUBLIC_URL", "https://auth.example.com")
        .output()
        .unwrap();
    assert_eq!(postgres.status.code(), Some(1));
    assert!(
        text(&postgres.stderr).contains("pg_dump"),
        "{}",
        text(&postgres.stderr)
    );
    assert!(!dir.path().join("elsewhere.db").exists());
}

#[tokio::test]
async fn an_older_binary_refuses_a_database_a_newer_one_migrated() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let init = run(dir.path(), &["init"], None);
    assert!(init.status.success(), "{}", text(&init.stderr));
    // What a newer release leaves behind: a migration this binary does not know.
    let database = dir.path().join("tessera-data/tessera.db");
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();

    for args in [&["user", "list"][..], &["init"][..]] {
        let refused = run(dir.path(), args, None);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(
            text(&refused.stderr).contains("99990101"),
            "{args:?}: {}",
            text(&refused.stderr)
        );
    }
}

#[test]
fn the_audit_trail_lists_what_the_cli_did_and_pages_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["init"], None).status.success());
    let ok = |args: &[&str], stdin: Option<&str>| {
        let output = run(dir.path(), args, stdin);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            text(&output.stderr)
        );
        output
    };
    ok(&["user", "add", "alice"], Some(&format!("{PASSWORD}\n")));
    let added = text(&ok(&["client", "add", "billing"], None).stdout);
    let secret = added
        .lines()
        .find_map(|line| line.strip_prefix("client_secret: "))
        .unwrap()
        .trim()
        .to_owned();
    ok(&["client", "remove", "billing"], None);
    ok(&["keys", "rotate"], None);
    ok(&["user", "remove", "alice"], None);

    let json = text(&ok(&["audit", "--json"], None).stdout);
    let events: Vec<Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "user_created",
            "client_created",
            "client_deleted",
            "key_rotated",
            "user_deleted"
        ]
    );
    for event in &events {
        assert_eq!(event["actor_type"], "cli", "{event}");
        assert_eq!(event["actor_id"], Value::Null, "{event}");
        assert_eq!(event["outcome"], "success", "{event}");
        assert_eq!(event["ip"], Value::Null, "{event}");
    }
    let alice = events[0]["user_id"].as_str().unwrap().to_owned();
    assert_eq!(events[0]["detail"]["username"], "alice");
    assert_eq!(events[4]["user_id"], alice.as_str());
    assert_eq!(events[1]["detail"]["name"], "billing");
    assert!(events[3]["detail"]["kid"].is_string());
    assert!(!json.contains(&secret) && !json.contains(PASSWORD));
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));

    // The table shows the same events, aligned.
    let table = text(&ok(&["audit"], None).stdout);
    assert_aligned(&table, &["ID", "TIME", "TYPE", "ACTOR", "USER", "SESSION"]);
    assert_eq!(table.lines().count(), 6, "{table}");
    assert!(table.contains("key_rotated") && table.contains("cli"));

    // Pages: a full page says where the next starts.
    let first = ok(&["audit", "--json", "--limit", "2"], None);
    assert_eq!(text(&first.stdout).lines().count(), 2);
    let hint = format!("--after {}", ids[1]);
    assert!(
        text(&first.stderr).contains(&hint),
        "{}",
        text(&first.stderr)
    );
    let rest = ok(&["audit", "--json", "--after", &ids[1].to_string()], None);
    let rest_ids: Vec<u64> = text(&rest.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(rest_ids, ids[2..]);
    assert!(text(&rest.stderr).is_empty(), "{}", text(&rest.stderr));

    // Filters: by type, by a deleted account's id, by time.
    let rotations = text(&ok(&["audit", "--json", "--type", "key_rotated"], None).stdout);
    assert_eq!(rotations.lines().count(), 1);
    let of_alice = text(&ok(&["audit", "--json", "--user", &alice], None).stdout);
    assert_eq!(of_alice.lines().count(), 2, "{of_alice}");
    let future = text(&ok(&["audit", "--since", "2999-01-01T00:00:00Z"], None).stdout);
    assert_eq!(future.lines().count(), 1, "only the header: {future}");
    let past = text(
        &ok(
            &["audit", "--json", "--until", "2000-01-01T00:00:00Z"],
            None,
        )
        .stdout,
    );
    assert!(past.is_empty());

    // Bad filters are refused with a reason, and change nothing.
    for (args, reason) in [
        (
            &["audit", "--type", "login_party"][..],
            "unknown audit event type",
        ),
        (&["audit", "--since", "yesterday"][..], "RFC 3339"),
        (&["audit", "--user", "nobody"][..], "no user named"),
        (&["audit", "--limit", "many"][..], "--limit"),
    ] {
        let refused = run(dir.path(), args, None);
        assert_ne!(refused.status.code(), Some(0), "{args:?}");
        assert!(
            text(&refused.stderr).contains(reason),
            "{args:?}: {}",
            text(&refused.stderr)
        );
    }

    assert_eq!(text(&ok(&["audit", "--json"], None).stdout), json);
}
