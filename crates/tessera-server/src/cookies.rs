//! Every cookie Tessera reads or writes, in one place: the session cookie, the single-page
//! app's refresh cookie and the pages' form-secret cookie.
//!
//! Reading: every `Cookie` header is read (HTTP/2 splits them), names must match exactly, and
//! two cookies of one name are refused rather than guessed between. Pairs are parsed by the
//! `cookie` crate (`Cookie::split_parse`): profiled, it is too small a share of a cookie
//! check to justify parsing cookies by hand (`docs/benchmarks.md`).
//!
//! Writing: always `HttpOnly`, `Secure` unless `danger.insecure_cookies`, never a `Domain`.

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};
use tessera_core::SessionToken;

/// More than one cookie of the name asked for came with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than one cookie of that name")]
pub struct Repeated;

/// The value of the one cookie called `name`; `Ok(None)` if there is none.
pub fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Repeated> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for cookie in Cookie::split_parse(text).flatten() {
            if cookie.name() == name {
                if found.is_some() {
                    return Err(Repeated);
                }
                found = cookie.value_raw();
            }
        }
    }
    Ok(found)
}

/// Builds `Set-Cookie` values for the session cookie.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// The cookie's name.
    pub name: String,
    /// Whether to mark it `Secure` (always, unless `danger.insecure_cookies`).
    pub secure: bool,
}

impl CookieSettings {
    /// The cookie that carries `token`: HttpOnly, Secure, SameSite=Lax, Path=/, no Domain,
    /// no Max-Age (it ends with the browser session; the server enforces the real expiry).
    pub fn session_cookie(&self, token: &SessionToken) -> HeaderValue {
        set(
            &self.name,
            &token.encode(),
            Attributes {
                secure: self.secure,
                same_site: SameSite::Lax,
                path: "/",
                max_age: None,
            },
        )
    }

    /// A cookie that makes the browser drop the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        removal(
            &self.name,
            Attributes {
                secure: self.secure,
                same_site: SameSite::Lax,
                path: "/",
                max_age: None,
            },
        )
    }
}

/// What a cookie Tessera sets may vary in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attributes {
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
    pub(crate) path: &'static str,
    /// Seconds; `None` for a cookie that ends with the browser session.
    pub(crate) max_age: Option<i64>,
}

/// A `Set-Cookie` value: `HttpOnly` always, no `Domain` ever.
pub(crate) fn set(name: &str, value: &str, attributes: Attributes) -> HeaderValue {
    header_value(&build(name, value, attributes))
}

/// A `Set-Cookie` value that makes the browser drop the cookie.
pub(crate) fn removal(name: &str, attributes: Attributes) -> HeaderValue {
    let mut cookie = build(name, "", attributes);
    cookie.make_removal();
    header_value(&cookie)
}

fn build<'c>(name: &'c str, value: &'c str, attributes: Attributes) -> Cookie<'c> {
    let mut cookie = Cookie::build((name, value))
        .http_only(true)
        .secure(attributes.secure)
        .same_site(attributes.same_site)
        .path(attributes.path)
        .build();
    if let Some(seconds) = attributes.max_age {
        cookie.set_max_age(cookie::time::Duration::seconds(seconds));
    }
    cookie
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // Names are validated at start-up and values are base64url, so the text is always a valid
    // header value; an empty value (never reached) would only fail to set the cookie.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "__Host-tessera_session";

    fn with_cookies(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(COOKIE, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_cookie_is_found_exactly_once_across_headers() {
        let headers = with_cookies(&["theme=dark", &format!("other=1; {NAME}=abc")]);
        assert_eq!(single(&headers, NAME), Ok(Some("abc")));
        let twice = with_cookies(&[&format!("{NAME}=abc; {NAME}=other")]);
        assert_eq!(single(&twice, NAME), Err(Repeated));
        let split = with_cookies(&[&format!("{NAME}=abc"), &format!("{NAME}=other")]);
        assert_eq!(single(&split, NAME), Err(Repeated));
        let wrong_case = with_cookies(&["__host-tessera_session=abc"]);
        assert_eq!(single(&wrong_case, NAME), Ok(None));
    }

    /// The `Set-Cookie` value's attributes, lower-cased and sorted, without the name=value
    /// pair.
    fn attributes(value: &HeaderValue) -> Vec<String> {
        let mut found: Vec<String> = value
            .to_str()
            .unwrap()
            .split(';')
            .skip(1)
            .map(|part| part.trim().to_ascii_lowercase())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn the_clearing_cookie_expires_exactly_the_session_cookie() {
        // A browser drops a cookie only when name, path and flags match the one it holds;
        // `danger.insecure_cookies` changes both alike.
        let token = SessionToken::generate().unwrap();
        for secure in [true, false] {
            let settings = CookieSettings {
                name: NAME.into(),
                secure,
            };
            let cookie = attributes(&settings.session_cookie(&token));
            let clear = settings.clear_cookie();
            assert!(clear.to_str().unwrap().starts_with(&format!("{NAME}=;")));
            let mut expected = cookie.clone();
            expected.push("max-age=0".into());
            expected.sort();
            let found: Vec<String> = attributes(&clear)
                .into_iter()
                .filter(|part| !part.starts_with("expires="))
                .collect();
            assert_eq!(found, expected, "secure: {secure}");
            assert_eq!(cookie.contains(&"secure".to_owned()), secure);
        }
    }

    #[test]
    fn set_cookies_are_http_only_without_domain() {
        let value = set(
            "n",
            "v",
            Attributes {
                secure: true,
                same_site: SameSite::Strict,
                path: "/v1/token",
                max_age: Some(60),
            },
        );
        let text = value.to_str().unwrap();
        for part in [
            "n=v",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/v1/token",
            "Max-Age=60",
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(!text.to_ascii_lowercase().contains("domain"), "{text}");
    }
}
