//! `/login` and `/register`: the forms shown before there is a session.

use askama::Template;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use tessera_core::{AuditContext, Error, LoginAttempt, Transport};

use super::{
    CookieSession, Failure, FormSecret, MessagePage, check_form_secret, cookie_session,
    failure_page, form, page_parts, see_other_with, session_cookie_token,
};
use crate::AppState;
use crate::audit::Audit;
use crate::extract::ClientIp;
use crate::problem::Problem;

/// The login form.
#[derive(Debug, Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf_token: String,
    username: &'a str,
    notice: Option<&'static str>,
    error: Option<String>,
    registration: bool,
}

/// The registration form.
#[derive(Debug, Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    csrf_token: String,
    username: &'a str,
    error: Option<String>,
    min_length: usize,
}

/// `POST /login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    csrf_token: Option<String>,
}

/// `POST /register`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirmation: String,
    csrf_token: Option<String>,
}

/// `?notice=…` on the login page: a fixed set of messages, never text from the URL.
#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    notice: Option<String>,
}

fn notice(uri: &Uri) -> Option<&'static str> {
    let query: LoginQuery =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    match query.notice.as_deref()? {
        "expired" => Some("Your session expired. Log in again."),
        "signed-out" => Some("You were signed out. Log in again."),
        "logged-out" => Some("You are logged out."),
        "registered" => Some("Your account is ready. Log in."),
        "account-deleted" => Some("Your account was deleted."),
        _ => None,
    }
}

/// `GET /login`: the form, or `/account` for a browser that is logged in already.
pub(super) async fn show_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let mut extra = HeaderMap::new();
    match cookie_session(&state, &headers).await {
        Ok(CookieSession::Live(..)) => return super::see_other("/account"),
        Ok(CookieSession::Ended { .. }) => {
            extra.append(SET_COOKIE, state.http.cookies.clear_cookie());
        }
        // No session, or the store is down: the form is still the right page.
        Ok(CookieSession::Absent) | Err(_) => {}
    }
    login_page(
        &state,
        &headers,
        StatusCode::OK,
        extra,
        "",
        notice(&uri),
        None,
    )
}

/// `POST /login`: logs in with the cookie transport and goes to `/account`.
pub(super) async fn log_in(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let submitted: LoginForm = match form(&state, &headers, body).await {
        Ok(submitted) => submitted,
        Err(problem) => return login_failure(&state, &headers, problem, "", None),
    };
    let username = submitted.username.trim();
    if let Err(problem) = check_form_secret(&state, &headers, submitted.csrf_token.as_deref()) {
        return login_failure(&state, &headers, problem, username, None);
    }
    if username.is_empty() || submitted.password.is_empty() {
        return login_failure(
            &state,
            &headers,
            Problem::validation("username and password are required"),
            username,
            Some("Enter your username and password.".to_owned()),
        );
    }
    let user_agent = headers
        .get("user-agent")
        .and_then(|value| value.to_str().ok());
    let logged_in = match state
        .engine
        .login(LoginAttempt {
            username,
            password: &submitted.password,
            transport: Transport::Cookie,
            ip,
            user_agent,
        })
        .await
    {
        Ok(logged_in) => logged_in,
        Err(error) => return login_failure(&state, &headers, error.into(), username, None),
    };
    // As in the API: the browser's previous session is about to lose its cookie, so it ends
    // rather than lingering live and unreachable.
    if let Ok(Some(previous)) = session_cookie_token(&state, &headers)
        && let Ok(old) = state.engine.validate(&previous).await
        && state
            .engine
            .with_context(AuditContext::request(ip, user_agent))
            .logout(&old)
            .await
            .is_err()
    {
        tracing::warn!(session_id = %old.record().id, "could not end the session replaced by a new login");
    }
    let mut extra = HeaderMap::new();
    extra.append(
        SET_COOKIE,
        state.http.cookies.session_cookie(&logged_in.token),
    );
    see_other_with("/account", extra)
}

/// The login form again, with what went wrong. The username typed is kept; the password
/// never is.
fn login_failure(
    state: &AppState,
    headers: &HeaderMap,
    problem: Problem,
    username: &str,
    message: Option<String>,
) -> Response {
    let secret = match FormSecret::of(state, headers) {
        Ok(secret) => secret,
        Err(problem) => return message_failure(problem),
    };
    failure_page(problem, secret.headers(), |failure: &Failure| LoginPage {
        csrf_token: secret.field(),
        username,
        notice: None,
        error: Some(message.unwrap_or_else(|| failure.message())),
        registration: state.http.registration,
    })
}

fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    mut extra: HeaderMap,
    username: &str,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let secret = match FormSecret::of(state, headers) {
        Ok(secret) => secret,
        Err(problem) => return message_failure(problem),
    };
    extra.extend(secret.headers());
    page_parts(
        status,
        extra,
        &LoginPage {
            csrf_token: secret.field(),
            username,
            notice,
            error,
            registration: state.http.registration,
        },
    )
}

/// `GET /register`: the form while registration is open; otherwise the page does not exist.
pub(super) async fn show_register(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !state.http.registration {
        return registration_closed();
    }
    let secret = match FormSecret::of(&state, &headers) {
        Ok(secret) => secret,
        Err(problem) => return message_failure(problem),
    };
    page_parts(
        StatusCode::OK,
        secret.headers(),
        &RegisterPage {
            csrf_token: secret.field(),
            username: "",
            error: None,
            min_length: state.engine.config().password.min_length,
        },
    )
}

/// `POST /register`: creates the account, then sends the browser to log in.
pub(super) async fn register(
    State(state): State<AppState>,
    Audit(audit): Audit,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !state.http.registration {
        return registration_closed();
    }
    let submitted: RegisterForm = match form(&state, &headers, body).await {
        Ok(submitted) => submitted,
        Err(problem) => return register_failure(&state, &headers, problem, "", None),
    };
    let username = submitted.username.trim();
    if let Err(problem) = check_form_secret(&state, &headers, submitted.csrf_token.as_deref()) {
        return register_failure(&state, &headers, problem, username, None);
    }
    if submitted.password != submitted.password_confirmation {
        return register_failure(
            &state,
            &headers,
            Problem::validation("the passwords differ"),
            username,
            Some("The two passwords differ.".to_owned()),
        );
    }
    match state
        .engine
        .with_context(audit)
        .create_user(username, &submitted.password)
        .await
    {
        Ok(_) => super::see_other("/login?notice=registered"),
        Err(error) => {
            // The username and password rules are worded for people already.
            let message = match &error {
                Error::InvalidUsername(rejection) => Some(sentence(&rejection.to_string())),
                Error::PasswordRejected(rejection) => Some(sentence(&rejection.to_string())),
                _ => None,
            };
            register_failure(&state, &headers, error.into(), username, message)
        }
    }
}

fn register_failure(
    state: &AppState,
    headers: &HeaderMap,
    problem: Problem,
    username: &str,
    message: Option<String>,
) -> Response {
    let secret = match FormSecret::of(state, headers) {
        Ok(secret) => secret,
        Err(problem) => return message_failure(problem),
    };
    failure_page(problem, secret.headers(), |failure: &Failure| {
        RegisterPage {
            csrf_token: secret.field(),
            username,
            error: Some(message.unwrap_or_else(|| failure.message())),
            min_length: state.engine.config().password.min_length,
        }
    })
}

fn registration_closed() -> Response {
    failure_page(
        Problem::not_found("registration is closed"),
        HeaderMap::new(),
        |_: &Failure| MessagePage {
            title: "Registration is closed",
            message: "This server does not accept new accounts. Ask an administrator for one."
                .to_owned(),
            link_href: "/login",
            link_text: "Log in",
        },
    )
}

/// A failure with no form to show again.
pub(super) fn message_failure(problem: Problem) -> Response {
    failure_page(problem, HeaderMap::new(), |failure: &Failure| MessagePage {
        title: "Something went wrong",
        message: failure.message(),
        link_href: "/login",
        link_text: "Back to log in",
    })
}

/// "the password is too common" → "The password is too common."
fn sentence(text: &str) -> String {
    let mut characters = text.chars();
    let mut sentence: String = match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => return String::new(),
    };
    if !sentence.ends_with('.') {
        sentence.push('.');
    }
    sentence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_texts_become_sentences() {
        assert_eq!(
            sentence("the password is too common; choose one that is harder to guess"),
            "The password is too common; choose one that is harder to guess."
        );
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn notices_come_from_a_fixed_list() {
        let uri: Uri = "/login?notice=expired".parse().unwrap();
        assert_eq!(notice(&uri), Some("Your session expired. Log in again."));
        let uri: Uri = "/login?notice=%3Cscript%3E".parse().unwrap();
        assert_eq!(notice(&uri), None);
        let uri: Uri = "/login?notice=expired&notice=x".parse().unwrap();
        assert_eq!(notice(&uri), None, "repeated parameters are ignored");
    }
}
