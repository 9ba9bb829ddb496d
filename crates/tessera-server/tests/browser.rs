//! The pages and the single-page-app client in a real browser: Debian's headless Chromium,
//! driven over WebDriver, against an in-process server on a loopback socket.
//!
//! These tests fail, never skip, when Chromium or chromedriver is missing; `scripts/test.sh`
//! installs them. Screenshots land in `target/browser-artifacts/`.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/chromium.rs"]
mod chromium;
mod common;

use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use chromium::{Browser, Chromedriver};
use common::{COOKIE_NAME, PASSWORD, TestServer, client};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Logs `username` in through the form and waits for `/account`.
async fn log_in(browser: &Browser, server: &TestServer, username: &str) {
    browser.goto(&server.url("/login")).await;
    browser.fill("#username", username).await;
    browser.fill("#password", PASSWORD).await;
    browser
        .submit_and_wait("form[action='/login'] button[type=submit]", "/login")
        .await;
    assert_eq!(browser.location().await, "/account");
}

#[tokio::test]
async fn the_login_form_lands_on_the_account_page_with_a_cookie_script_cannot_read() {
    let server = TestServer::start(|_| {}).await;
    assert_eq!(
        server.register("alice", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;

    browser.goto(&server.url("/login")).await;
    assert_eq!(browser.text("h1").await, "Log in");
    browser.screenshot("login").await;

    // A wrong password: the form again, with a message that names no account.
    browser.fill("#username", "alice").await;
    browser.fill("#password", "not the password").await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    let error = browser.text("p.error").await;
    assert_eq!(error, "Wrong username or password.");
    browser.screenshot("login-error").await;

    browser.fill("#password", PASSWORD).await;
    browser
        .submit_and_wait("form[action='/login'] button[type=submit]", "/login")
        .await;
    assert_eq!(browser.location().await, "/account");
    assert_eq!(browser.text("#username").await, "alice");
    let current = browser.text("li.session.current h3").await;
    assert!(current.starts_with("Headless Chrome on Linux"), "{current}");
    assert!(current.contains("This device"), "{current}");
    browser.screenshot("account").await;

    // HttpOnly: invisible to script.
    let visible = browser.script("return document.cookie;").await;
    assert_eq!(visible, json!(""), "script sees cookies: {visible}");

    // The attributes as Chromium stored them.
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|cookie| cookie.name() == COOKIE_NAME)
        .unwrap_or_else(|| panic!("Chromium kept no {COOKIE_NAME}: {cookies:?}"));
    assert_eq!(session.http_only(), Some(true), "{session:?}");
    assert_eq!(session.secure(), Some(true), "{session:?}");
    assert_eq!(
        session.same_site(),
        Some(cookie::SameSite::Lax),
        "{session:?}"
    );
    assert_eq!(session.path(), Some("/"), "{session:?}");
    // Host-only: no Domain attribute was sent, so Chromium reports the bare host.
    assert_eq!(session.domain(), Some("127.0.0.1"), "{session:?}");
    assert!(
        session.expires().is_none(),
        "a browser-session cookie: {session:?}"
    );

    // The cookie is the session the server lists.
    let token = session.value();
    let listed: Value = client()
        .get(server.url("/v1/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");
    assert!(
        listed["sessions"][0]["user_agent"]
            .as_str()
            .unwrap()
            .contains("HeadlessChrome"),
        "{listed}"
    );

    browser.close().await;
}

/// A page on another origin (same host, another port) whose forms post to Tessera: what a
/// malicious or compromised sibling site can do with the victim's browser.
async fn other_origin(tessera: &str) -> (String, tokio::task::JoinHandle<()>) {
    let page = format!(
        r#"<!doctype html><title>Another site</title>
<form id="revoke" method="post" action="{tessera}/account/revoke-others">
<input type="hidden" name="csrf_token" value="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA">
<button type="submit">Win a prize</button></form>
<form id="logout" method="post" action="{tessera}/logout"><button type="submit">Log out</button></form>
<form id="login" method="post" action="{tessera}/login">
<input type="hidden" name="username" value="mallory"><input type="hidden" name="password" value="{PASSWORD}">
<button type="submit">Log in as mallory</button></form>"#
    );
    let app = axum::Router::new().route(
        "/",
        get(move || {
            let page = page.clone();
            async move { Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, handle)
}

async fn session_ids(server: &TestServer, bearer: &str) -> Vec<String> {
    let listed: Value = client()
        .get(server.url("/v1/sessions"))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = listed["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|session| session["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_form_posted_from_another_origin_is_refused_and_changes_nothing() {
    let server = TestServer::start(|_| {}).await;
    let phone = server.user_session("alice").await;
    assert_eq!(
        server.register("mallory", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    let (attacker, attacker_task) = other_origin(&server.base).await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;
    log_in(&browser, &server, "alice").await;
    let before = session_ids(&server, &phone.token).await;
    assert_eq!(before.len(), 2);

    for form in ["revoke", "logout", "login"] {
        browser.goto(&attacker).await;
        browser
            .submit_and_wait(&format!("form#{form} button"), "/")
            .await;
        assert_eq!(
            browser.text("h1").await,
            if form == "login" {
                "Log in"
            } else {
                "Request refused"
            },
            "the {form} form"
        );
        let message = browser.text("p.error").await;
        assert!(message.contains("another site"), "{form}: {message}");
        if form == "revoke" {
            browser.screenshot("cross-origin-refused").await;
        }
    }

    // Nothing changed: both sessions live, the browser still logged in as alice.
    assert_eq!(session_ids(&server, &phone.token).await, before);
    browser.goto(&server.url("/account")).await;
    assert_eq!(browser.location().await, "/account");
    assert_eq!(browser.text("#username").await, "alice");

    browser.close().await;
    attacker_task.abort();
}

#[tokio::test]
async fn revoking_a_session_in_one_browser_logs_the_other_out_on_its_next_request() {
    let server = TestServer::start(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let driver = Chromedriver::start().await;
    let laptop = driver.browser().await;
    let phone = driver.browser().await;
    log_in(&laptop, &server, "alice").await;
    log_in(&phone, &server, "alice").await;

    laptop.client.refresh().await.unwrap();
    let other = laptop
        .client
        .find(fantoccini::Locator::Css("li.session:not(.current)"))
        .await
        .unwrap()
        .attr("data-session-id")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        laptop
            .script("return document.querySelectorAll('li.session').length;")
            .await,
        json!(2)
    );
    laptop.screenshot("account-two-sessions").await;
    laptop
        .submit_and_wait(
            &format!("form[action='/account/sessions/{other}/revoke'] button"),
            "/account",
        )
        .await;
    assert_eq!(laptop.location().await, "/account?notice=revoked");
    assert_eq!(
        laptop
            .script("return document.querySelectorAll('li.session').length;")
            .await,
        json!(1)
    );

    // The phone's next request finds its session gone.
    phone.client.refresh().await.unwrap();
    let location = phone
        .wait_for(|location| location.starts_with("/login"))
        .await;
    assert_eq!(location, "/login?notice=signed-out");
    assert_eq!(
        phone.text("p.notice").await,
        "You were signed out. Log in again."
    );
    assert!(
        phone
            .cookies()
            .await
            .iter()
            .all(|cookie| cookie.name() != COOKIE_NAME),
        "the dead cookie is cleared"
    );

    laptop.close().await;
    phone.close().await;
}

#[tokio::test]
async fn idle_timeout_sends_the_user_back_to_the_login_page() {
    let server = TestServer::start_with_clock(|config| {
        config.session.idle_timeout = Duration::from_secs(5 * 60);
    })
    .await;
    server.register("alice", PASSWORD).await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;
    log_in(&browser, &server, "alice").await;

    // Activity inside the idle window keeps the session.
    server.advance(Duration::from_secs(4 * 60));
    browser.client.refresh().await.unwrap();
    assert_eq!(browser.location().await, "/account");

    server.advance(Duration::from_secs(5 * 60 + 1));
    browser.client.refresh().await.unwrap();
    let location = browser
        .wait_for(|location| location.starts_with("/login"))
        .await;
    assert_eq!(location, "/login?notice=expired");
    assert_eq!(
        browser.text("p.notice").await,
        "Your session expired. Log in again."
    );
    browser.screenshot("login-expired").await;

    browser.close().await;
}

#[tokio::test]
async fn a_newcomer_registers_logs_in_and_logs_out_through_the_pages() {
    let server = TestServer::start(|_| {}).await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;

    browser.goto(&server.url("/login")).await;
    browser.click("a[href='/register']").await;
    browser.wait_for(|location| location == "/register").await;
    browser.fill("#username", "newcomer").await;
    browser.fill("#password", PASSWORD).await;
    browser.fill("#password_confirmation", PASSWORD).await;
    browser.screenshot("register").await;
    browser
        .submit_and_wait("form[action='/register'] button", "/register")
        .await;
    assert_eq!(browser.location().await, "/login?notice=registered");
    assert_eq!(
        browser.text("p.notice").await,
        "Your account is ready. Log in."
    );

    browser.fill("#username", "newcomer").await;
    browser.fill("#password", PASSWORD).await;
    browser
        .submit_and_wait("form[action='/login'] button", "/login?notice=registered")
        .await;
    assert_eq!(browser.location().await, "/account");
    assert_eq!(browser.text("#username").await, "newcomer");

    browser.submit_and_wait("#logout", "/account").await;
    assert_eq!(browser.location().await, "/login?notice=logged-out");
    browser.goto(&server.url("/account")).await;
    assert_eq!(browser.location().await, "/login");

    browser.close().await;
}

#[tokio::test]
async fn keyboard_focus_moves_through_the_login_form_in_reading_order() {
    let server = TestServer::start(|_| {}).await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;
    browser.goto(&server.url("/login")).await;

    let focused = || async {
        browser
            .script(
                "const e = document.activeElement; \
                 return e.id || e.getAttribute('href') || e.textContent.trim();",
            )
            .await
    };
    // The first field has focus on arrival; Tab walks the form, then the page's links.
    assert_eq!(focused().await, json!("username"));
    let order = ["password", "Log in", "/register"];
    for expected in order {
        browser
            .client
            .active_element()
            .await
            .unwrap()
            .send_keys("\u{e004}")
            .await
            .unwrap();
        assert_eq!(focused().await, json!(expected));
    }
    // Every input has a label that names it.
    let unlabeled = browser
        .script(
            "return [...document.querySelectorAll('input:not([type=hidden])')]\
             .filter((input) => input.labels.length === 0).map((input) => input.id);",
        )
        .await;
    assert_eq!(unlabeled, json!([]));

    browser.close().await;
}

/// Opens the example single-page app and waits until its module has run.
async fn open_example(browser: &Browser, server: &TestServer, transport: &str) {
    browser
        .goto(&server.url(&format!("/assets/example.html?transport={transport}")))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while browser
        .script("return document.body.dataset.ready === 'true';")
        .await
        != json!(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "example app not ready"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_spa_client_on_the_cookie_transport_sends_the_csrf_header_itself() {
    let server = TestServer::start(|_| {}).await;
    let phone = server.user_session("alice").await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;
    open_example(&browser, &server, "cookie").await;
    assert_eq!(browser.text("#status").await, "Not logged in.");

    let login = browser
        .run(&format!(
            "const session = await tessera.login('alice', '{PASSWORD}'); return session.user.username;"
        ))
        .await;
    assert_eq!(login, json!("alice"));
    assert_eq!(browser.script("return document.cookie;").await, json!(""));

    // The same unsafe request: refused without the header, accepted through the client.
    let statuses = browser
        .run(
            "const raw = await fetch('/v1/sessions?scope=others', { method: 'DELETE' });\
             const viaClient = await tessera.fetch('/v1/sessions?scope=others', { method: 'DELETE' });\
             return [raw.status, viaClient.status, (await viaClient.json()).revoked];",
        )
        .await;
    assert_eq!(statuses, json!([403, 200, 1]));
    let phone_now = client()
        .get(server.url("/v1/session"))
        .bearer_auth(&phone.token)
        .send()
        .await
        .unwrap();
    assert_eq!(phone_now.status(), StatusCode::UNAUTHORIZED);

    // After a reload the CSRF token is gone from memory; the client fetches it again.
    browser.client.refresh().await.unwrap();
    open_example(&browser, &server, "cookie").await;
    assert!(
        browser
            .text("#status")
            .await
            .starts_with("Logged in as alice"),
        "the cookie session survives a reload"
    );
    let after_reload = browser
        .run("return (await tessera.fetch('/v1/sessions?scope=others', { method: 'DELETE' })).status;")
        .await;
    assert_eq!(after_reload, json!(200));

    let ended = browser
        .run("await tessera.logoutEverywhere(); return await tessera.session();")
        .await;
    assert_eq!(ended, json!(null));
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|cookie| cookie.name() != COOKIE_NAME),
        "logout cleared the session cookie"
    );

    browser.close().await;
}

/// How many refresh requests this tab has sent, from the Resource Timing entries (every
/// `fetch` since the page loaded, the client's own included).
async fn refresh_requests(browser: &Browser) -> u64 {
    browser
        .script(
            "return performance.getEntriesByType('resource')\
             .filter((entry) => new URL(entry.name).pathname === '/v1/token').length;",
        )
        .await
        .as_u64()
        .unwrap()
}

/// The bearer token the tab's client sends, seen by wrapping `fetch` for one request.
async fn bearer_in_use(browser: &Browser) -> String {
    let seen = browser
        .run(
            "const original = window.fetch; let seen = null;\
             window.fetch = (input, init) => { seen = new Headers(init && init.headers).get('authorization'); return original(input, init); };\
             try { const response = await tessera.fetch('/v1/session'); return [response.status, seen]; }\
             finally { window.fetch = original; }",
        )
        .await;
    assert_eq!(seen[0], json!(200), "{seen}");
    seen[1]
        .as_str()
        .and_then(|header| header.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("no bearer: {seen}"))
        .to_owned()
}

async fn in_tab(browser: &Browser, tab: &fantoccini::wd::WindowHandle) {
    browser.client.switch_to_window(tab.clone()).await.unwrap();
}

/// Waits for `window.__refreshed` in every tab and returns them.
async fn refresh_outcomes(browser: &Browser, tabs: &[&fantoccini::wd::WindowHandle]) -> Vec<Value> {
    let mut outcomes = Vec::new();
    for tab in tabs {
        in_tab(browser, tab).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let outcome = browser.script("return window.__refreshed ?? null;").await;
            if !outcome.is_null() {
                outcomes.push(outcome);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a tab never finished refreshing"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    outcomes
}

const START_REFRESH: &str = "window.__refreshed = null;\
    const start = () => tessera.refresh().then((token) => { window.__refreshed = token ? 'token' : 'logged out'; },\
                                               (error) => { window.__refreshed = 'error: ' + error.message; });";

#[tokio::test]
async fn spa_tabs_on_the_token_transport_share_one_refresh_and_stay_logged_in() {
    let server = TestServer::start_with_clock(|_| {}).await;
    server.register("alice", PASSWORD).await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;
    let first = browser.client.window().await.unwrap();
    open_example(&browser, &server, "token").await;
    let login = browser
        .run(&format!(
            "const session = await tessera.login('alice', '{PASSWORD}'); return session.transport;"
        ))
        .await;
    assert_eq!(login, json!("token"));
    browser.click("#whoami").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !browser
        .text("#status")
        .await
        .starts_with("Logged in as alice")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the example app shows the login"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    browser.screenshot("example-token").await;

    // Nothing a script could read later: no storage, no readable cookie.
    let storage = browser
        .script("return [localStorage.length, sessionStorage.length, document.cookie];")
        .await;
    assert_eq!(storage, json!([0, 0, ""]));
    // The refresh cookie is path-scoped: this page cannot see it even through WebDriver.
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|cookie| !cookie.name().contains("refresh")),
        "the refresh cookie is not in scope for the app's pages"
    );

    // A second tab picks the session up from the first, without a refresh of its own.
    let second = browser.client.new_window(true).await.unwrap().handle;
    in_tab(&browser, &second).await;
    open_example(&browser, &server, "token").await;
    assert!(
        browser
            .text("#status")
            .await
            .starts_with("Logged in as alice"),
        "{}",
        browser.text("#status").await
    );
    assert_eq!(refresh_requests(&browser).await, 0);
    let initial = bearer_in_use(&browser).await;
    in_tab(&browser, &first).await;
    assert_eq!(bearer_in_use(&browser).await, initial);
    assert_eq!(refresh_requests(&browser).await, 0);

    // Round 1: both tabs refresh at the same wall-clock moment.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 600;
    for tab in [&first, &second] {
        in_tab(&browser, tab).await;
        browser
            .client
            .execute(
                &format!("{START_REFRESH} setTimeout(start, arguments[0] - Date.now());"),
                vec![json!(at)],
            )
            .await
            .unwrap();
    }
    let outcomes = refresh_outcomes(&browser, &[&first, &second]).await;
    assert_eq!(outcomes, vec![json!("token"), json!("token")]);
    let mut requests = 0;
    let mut bearers = Vec::new();
    for tab in [&first, &second] {
        in_tab(&browser, tab).await;
        requests += refresh_requests(&browser).await;
        bearers.push(bearer_in_use(&browser).await);
    }
    assert_eq!(requests, 1, "exactly one rotation for two tabs");
    assert_eq!(bearers[0], bearers[1], "both tabs hold the one new token");
    assert_ne!(bearers[0], initial);

    // Round 2: a third tab holds the refresh lock while both tabs ask, so both are
    // certainly waiting at once when it is released.
    let third = browser.client.new_window(true).await.unwrap().handle;
    in_tab(&browser, &third).await;
    browser
        .goto(&server.url("/assets/example.html?transport=cookie"))
        .await;
    let held = browser
        .run(
            "await new Promise((granted) => navigator.locks.request('tessera-refresh', \
               () => { granted(); return new Promise((release) => { window.__release = release; }); }));\
             return true;",
        )
        .await;
    assert_eq!(held, json!(true));
    for tab in [&first, &second] {
        in_tab(&browser, tab).await;
        browser.script(&format!("{START_REFRESH} start();")).await;
    }
    in_tab(&browser, &third).await;
    let waiting = browser
        .run(
            "for (let i = 0; i < 200; i++) {\
               const { pending } = await navigator.locks.query();\
               if (pending.filter((lock) => lock.name === 'tessera-refresh').length === 2) return true;\
               await new Promise((resolve) => setTimeout(resolve, 25));\
             }\
             return false;",
        )
        .await;
    assert_eq!(waiting, json!(true), "both tabs wait for the refresh lock");
    browser.script("window.__release();").await;
    let outcomes = refresh_outcomes(&browser, &[&first, &second]).await;
    assert_eq!(outcomes, vec![json!("token"), json!("token")]);
    let mut requests = 0;
    let mut round_two = Vec::new();
    for tab in [&first, &second] {
        in_tab(&browser, tab).await;
        requests += refresh_requests(&browser).await;
        round_two.push(bearer_in_use(&browser).await);
    }
    assert_eq!(requests, 2, "one more rotation, not two");
    assert_eq!(round_two[0], round_two[1]);
    assert_ne!(round_two[0], bearers[0]);

    // The refresh cookie, as Chromium stored it, seen from the one path it is sent to.
    in_tab(&browser, &third).await;
    browser.goto(&server.url("/v1/token")).await;
    let cookies = browser.cookies().await;
    let refresh = cookies
        .iter()
        .find(|cookie| cookie.name() == "__Secure-tessera_refresh")
        .unwrap_or_else(|| panic!("no refresh cookie: {cookies:?}"));
    assert_eq!(refresh.http_only(), Some(true), "{refresh:?}");
    assert_eq!(refresh.secure(), Some(true), "{refresh:?}");
    assert_eq!(
        refresh.same_site(),
        Some(cookie::SameSite::Strict),
        "{refresh:?}"
    );
    assert_eq!(refresh.path(), Some("/v1/token"), "{refresh:?}");
    assert_eq!(refresh.domain(), Some("127.0.0.1"), "{refresh:?}");

    // An access token the server no longer accepts: the client refreshes once and retries.
    server.advance(Duration::from_secs(6 * 60));
    in_tab(&browser, &first).await;
    let before = refresh_requests(&browser).await;
    let retried = bearer_in_use(&browser).await;
    assert_ne!(retried, round_two[0]);
    assert_eq!(refresh_requests(&browser).await, before + 1);
    in_tab(&browser, &second).await;
    assert_eq!(
        bearer_in_use(&browser).await,
        retried,
        "the other tab got the new token without asking the server"
    );

    // Logging out everywhere from one tab ends the session for every tab.
    let ended = browser
        .run("await tessera.logoutEverywhere(); return await tessera.session();")
        .await;
    assert_eq!(ended, json!(null));
    in_tab(&browser, &first).await;
    let status = browser.text("#status").await;
    assert_eq!(status, "Logged out (in another tab).");
    assert_eq!(
        browser.run("return await tessera.session();").await,
        json!(null)
    );
    let old = client()
        .get(server.url("/v1/session"))
        .bearer_auth(&retried)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    in_tab(&browser, &third).await;
    browser.client.refresh().await.unwrap();
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|cookie| cookie.name() != "__Secure-tessera_refresh"),
        "logout cleared the refresh cookie"
    );

    browser.close().await;
}

#[tokio::test]
async fn password_change_asks_for_the_password_again_then_deletion_ends_the_account() {
    const NEW_PASSWORD: &str = "a brand new passphrase";
    let server = TestServer::start_with_clock(|config| {
        config.session.reauthentication_window = Duration::from_secs(60);
    })
    .await;
    server.register("alice", PASSWORD).await;
    let phone = server.login("alice", PASSWORD).await;
    let driver = Chromedriver::start().await;
    let browser = driver.browser().await;
    log_in(&browser, &server, "alice").await;
    let before = browser
        .cookies()
        .await
        .into_iter()
        .find(|cookie| cookie.name() == COOKIE_NAME)
        .unwrap()
        .value()
        .to_owned();

    // Past the window: the change is refused and the page asks for the password.
    server.advance(Duration::from_secs(61));
    browser.fill("#current-password", PASSWORD).await;
    browser.fill("#new-password", NEW_PASSWORD).await;
    browser.click("#change-password").await;
    browser
        .wait_for(|location| location == "/account/password")
        .await;
    assert!(browser.exists("#reauthenticate-form").await);
    assert_eq!(
        browser.text("p.error").await,
        "For your security, enter your password again, then repeat what you were doing."
    );
    browser.screenshot("account-reauthenticate").await;
    let phone_status = |token: String| {
        let server = &server;
        async move {
            client()
                .get(server.url("/v1/session"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(phone_status(phone.token.clone()).await, StatusCode::OK);

    browser.fill("#reauthenticate-password", PASSWORD).await;
    browser
        .submit_and_wait("#reauthenticate", "/account/password")
        .await;
    assert_eq!(browser.location().await, "/account?notice=reauthenticated");

    browser.fill("#current-password", PASSWORD).await;
    browser.fill("#new-password", NEW_PASSWORD).await;
    browser
        .submit_and_wait("#change-password", "/account?notice=reauthenticated")
        .await;
    assert_eq!(browser.location().await, "/account?notice=password-changed");
    assert_eq!(
        browser.text("p.notice").await,
        "Your password was changed. Every other session was logged out."
    );
    let after = browser
        .cookies()
        .await
        .into_iter()
        .find(|cookie| cookie.name() == COOKIE_NAME)
        .unwrap()
        .value()
        .to_owned();
    assert_ne!(before, after, "this browser continues under a new session");
    assert_eq!(
        browser
            .script("return document.querySelectorAll('li.session').length;")
            .await,
        json!(1)
    );
    assert_eq!(
        phone_status(phone.token.clone()).await,
        StatusCode::UNAUTHORIZED
    );

    // Deleting: the password again; then the account and this session are gone.
    browser.fill("#delete-password", NEW_PASSWORD).await;
    browser
        .submit_and_wait("#delete-account", "/account?notice=password-changed")
        .await;
    assert_eq!(browser.location().await, "/login?notice=account-deleted");
    assert_eq!(browser.text("p.notice").await, "Your account was deleted.");
    assert!(
        browser
            .cookies()
            .await
            .iter()
            .all(|cookie| cookie.name() != COOKIE_NAME),
        "the session cookie is cleared"
    );
    assert_eq!(
        server.login_response("alice", NEW_PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    browser.close().await;
}
