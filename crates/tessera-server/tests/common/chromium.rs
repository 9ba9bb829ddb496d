//! Headless Chromium for the browser tests: Debian's `chromium` driven through its
//! `chromedriver` (package `chromium-driver`) with the WebDriver client `fantoccini`.
//!
//! Each test starts its own chromedriver on a free loopback port, in its own process group,
//! and kills the whole group when it ends (Chromium included, even after a failed assertion).
//! Each [`Browser`] is a separate WebDriver session with a fresh profile directory: its own
//! cookie jar, like a separate device.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;

/// Where Debian puts the browser; `TESSERA_CHROMIUM` overrides it.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian puts chromedriver; `TESSERA_CHROMEDRIVER` overrides it.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Flags that keep headless Chromium quiet and deterministic on a closed network: no
/// background traffic, no component updates, and no timer throttling of background tabs
/// (the two-tab test needs both tabs running at once).
const FLAGS: [&str; 14] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--password-store=basic",
    "--window-size=1000,820",
];

fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Fails (never skips) with what is missing and how to install it.
fn require_installed() -> (PathBuf, PathBuf) {
    let chromium = program("TESSERA_CHROMIUM", CHROMIUM);
    let chromedriver = program("TESSERA_CHROMEDRIVER", CHROMEDRIVER);
    let missing: Vec<String> = [(&chromium, "chromium"), (&chromedriver, "chromium-driver")]
        .iter()
        .filter(|(path, _)| !path.is_file())
        .map(|(path, package)| format!("{} (Debian package `{package}`)", path.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "the browser tests need headless Chromium and chromedriver; missing: {}. \
         Install them with `sudo apt-get install chromium chromium-driver` (or run \
         `bash scripts/test.sh`, which installs them as root), or point TESSERA_CHROMIUM \
         and TESSERA_CHROMEDRIVER at other binaries.",
        missing.join(", ")
    );
    (chromium, chromedriver)
}

/// A running chromedriver; dropping it kills it and every browser it started.
pub struct Chromedriver {
    child: Child,
    url: String,
    chromium: PathBuf,
}

impl Chromedriver {
    pub async fn start() -> Chromedriver {
        let (chromium, chromedriver) = require_installed();
        let port = free_port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can end Chromium's processes with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|error| panic!("could not start {}: {error}", chromedriver.display()));
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        };
        driver.wait_until_ready().await;
        driver
    }

    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = format!("{}/status", self.url);
        loop {
            if let Ok(response) = reqwest::get(&status).await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready at {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser with a fresh profile (its own cookies and storage).
    pub async fn browser(&self) -> Browser {
        let profile = tempfile::tempdir().expect("profile directory");
        let mut args: Vec<String> = FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": args,
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session from chromedriver");
        Browser {
            client,
            _profile: profile,
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The negative pid names the process group: chromedriver and the browsers it ran.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One browser (one WebDriver session, one profile).
pub struct Browser {
    pub client: Client,
    _profile: TempDir,
}

impl Browser {
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("could not open {url}: {error}"));
    }

    /// The path (and query) of the page shown.
    pub async fn location(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn text(&self, selector: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|error| panic!("no {selector}: {error}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn exists(&self, selector: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(selector))
            .await
            .unwrap()
            .is_empty()
    }

    pub async fn fill(&self, selector: &str, value: &str) {
        let field = self.client.find(Locator::Css(selector)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|error| panic!("no {selector} to click: {error}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks a submit button and waits until the browser has left `from`.
    pub async fn submit_and_wait(&self, selector: &str, from: &str) {
        self.click(selector).await;
        self.wait_for(|location| location != from).await;
    }

    /// Waits until the location satisfies `done`; returns it.
    pub async fn wait_for(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let location = self.location().await;
            let ready: bool = self
                .script("return document.readyState === 'complete';")
                .await
                .as_bool()
                .unwrap_or(false);
            if ready && done(&location) {
                return location;
            }
            assert!(Instant::now() < deadline, "still at {location}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `body` as a synchronous script and returns its value.
    pub async fn script(&self, body: &str) -> Value {
        self.client
            .execute(body, Vec::new())
            .await
            .unwrap_or_else(|error| panic!("script failed: {error}\n{body}"))
    }

    /// Runs `body` (which may `await`) as an async function and returns its value; a thrown
    /// error becomes `{"error": message}`.
    pub async fn run(&self, body: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];\
             (async () => {{ {body} }})().then(done, (error) => done({{ error: String(error && error.message || error) }}));"
        );
        self.client
            .execute_async(&script, Vec::new())
            .await
            .unwrap_or_else(|error| panic!("async script failed: {error}\n{body}"))
    }

    /// Saves a PNG of the viewport as a test artifact.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    pub async fn cookies(&self) -> Vec<fantoccini::cookies::Cookie<'static>> {
        self.client.get_all_cookies().await.unwrap()
    }

    pub async fn close(self) {
        self.client.close().await.ok();
    }
}

/// `target/browser-artifacts` (under `CARGO_TARGET_DIR` when it is set).
pub fn artifacts_dir() -> PathBuf {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = target_tmp
        .parent()
        .unwrap_or(target_tmp)
        .join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
