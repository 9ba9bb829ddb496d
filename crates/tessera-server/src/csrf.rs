//! Cross-site request forgery defences.
//!
//! Two independent checks, both required where they apply:
//!
//! 1. **Where the request came from.** Browsers send `Sec-Fetch-Site` and `Origin` on unsafe
//!    requests. `cross-site` — and any value other than `same-origin`, `none` and
//!    `same-site` — is refused, `same-site` only passes with an allowed `Origin`, and
//!    an `Origin` must be an allowed origin: Tessera's own — `server.public_url` when
//!    configured, otherwise the origin whose host is the request's own `Host` — or one of
//!    `server.allowed_origins`. `Origin: null` is refused. Clients that send neither header
//!    are not browsers, and are not CSRF vectors.
//! 2. **A session-bound token** (cookie-authenticated requests only): the session's CSRF token
//!    in `X-CSRF-Token`, compared in constant time. Bearer-authenticated requests carry no
//!    ambient credential and need no token.
//!
//! Login and registration have no session yet, so only check 1 applies to them.

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Uri};

use crate::problem::Problem;

/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A web origin: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (an `Origin` header or a configured origin); anything
    /// with a path, query or user info is not an origin.
    pub fn parse(text: &str) -> Option<Origin> {
        let uri: Uri = text.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return None,
        };
        let authority = uri.authority()?;
        if authority.as_str().contains('@')
            || uri.query().is_some()
            || !matches!(uri.path(), "" | "/")
        {
            return None;
        }
        if text.ends_with('/') {
            return None;
        }
        Some(Origin {
            scheme,
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
        })
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    fn matches_host_header(&self, host: &str) -> bool {
        let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        authority.host().eq_ignore_ascii_case(&self.host)
            && authority.port_u16().unwrap_or(default_port) == self.port
    }
}

/// The origins allowed to make credentialed, state-changing requests.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Tessera's own origin; `None` means "the origin whose host is the request's `Host`".
    own: Option<Origin>,
    /// Further origins allowed besides the own one.
    others: Vec<Origin>,
}

impl OriginPolicy {
    /// Allows Tessera's `own` origin (when `None`, the one the request's `Host` names) and
    /// every one of `others`.
    pub fn new(own: Option<Origin>, others: Vec<Origin>) -> Self {
        OriginPolicy { own, others }
    }

    /// Check 1: refuses requests a browser marks as coming from another site.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let origin = headers
            .get(ORIGIN)
            .map(|value| value.to_str().ok().and_then(Origin::parse));
        let origin_allowed = match &origin {
            None => None,
            // `Origin: null`, or something unparsable, is never allowed.
            Some(None) => Some(false),
            Some(Some(origin)) => Some(self.allows(origin, headers)),
        };
        match headers.get("sec-fetch-site").map(|value| value.as_bytes()) {
            None | Some(b"same-origin" | b"none") => {}
            Some(b"same-site") if origin_allowed != Some(true) => {
                return Err(Problem::csrf(
                    "same-site request from an origin that is not allowed",
                ));
            }
            Some(b"same-site") => {}
            // `cross-site`, and any value a browser should not send: a header that does not
            // vouch for the request is no reason to trust it.
            Some(_) => return Err(Problem::csrf("cross-site request refused")),
        }
        match origin_allowed {
            Some(false) => Err(Problem::csrf("request from an origin that is not allowed")),
            _ => Ok(()),
        }
    }

    fn allows(&self, origin: &Origin, headers: &HeaderMap) -> bool {
        let own = match &self.own {
            Some(own) => own == origin,
            None => headers
                .get(HOST)
                .and_then(|host| host.to_str().ok())
                .is_some_and(|host| origin.matches_host_header(host)),
        };
        own || self.others.contains(origin)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn origins_parse_strictly() {
        assert_eq!(
            Origin::parse("https://Auth.Example.com"),
            Some(Origin {
                scheme: "https".into(),
                host: "auth.example.com".into(),
                port: 443
            })
        );
        assert_eq!(
            Origin::parse("http://127.0.0.1:8080").map(|o| o.port),
            Some(8080)
        );
        for bad in [
            "null",
            "",
            "https://a.com/path",
            "https://a.com/",
            "ftp://a.com",
            "https://u@a.com",
            "a.com",
            "https://a.com?x",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_an_https_origin_is_https() {
        // Decides whether responses carry Strict-Transport-Security.
        for https in ["https://auth.example.com", "HTTPS://auth.example.com:8443"] {
            assert!(Origin::parse(https).unwrap().is_https(), "{https}");
        }
        for plain in ["http://auth.example.com", "http://127.0.0.1:443"] {
            assert!(!Origin::parse(plain).unwrap().is_https(), "{plain}");
        }
    }

    #[test]
    fn without_configured_origins_the_host_header_decides() {
        let policy = OriginPolicy::new(None, Vec::new());
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(policy.check(&ok).is_ok());
        for (host, origin) in [
            ("127.0.0.1:8080", "http://127.0.0.1:9090"),
            ("127.0.0.1:8080", "http://evil.test"),
            ("app.example.com", "https://app.example.com.evil.test"),
            ("127.0.0.1:8080", "null"),
        ] {
            assert!(
                policy
                    .check(&headers(&[("host", host), ("origin", origin)]))
                    .is_err(),
                "{origin}"
            );
        }
        // Non-browser clients send neither header.
        assert!(
            policy
                .check(&headers(&[("host", "127.0.0.1:8080")]))
                .is_ok()
        );
    }

    #[test]
    fn configured_origins_must_match_exactly() {
        let policy = OriginPolicy::new(
            Origin::parse("https://auth.example.com"),
            vec![Origin::parse("https://app.example.com:8443").unwrap()],
        );
        assert!(
            policy
                .check(&headers(&[("origin", "https://auth.example.com")]))
                .is_ok()
        );
        assert!(
            policy
                .check(&headers(&[("origin", "https://app.example.com:8443")]))
                .is_ok()
        );
        for bad in [
            "http://auth.example.com",
            "https://app.example.com",
            "https://auth.example.com:444",
        ] {
            assert!(
                policy
                    .check(&headers(&[("origin", bad), ("host", "auth.example.com")]))
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn allowed_origins_add_to_the_host_check_without_a_public_url() {
        let policy = OriginPolicy::new(None, vec![Origin::parse("https://app.test").unwrap()]);
        for origin in ["http://127.0.0.1:8080", "https://app.test"] {
            assert!(
                policy
                    .check(&headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]))
                    .is_ok(),
                "{origin}"
            );
        }
        assert!(
            policy
                .check(&headers(&[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "https://other.test")
                ]))
                .is_err()
        );
    }

    #[test]
    fn fetch_metadata_refuses_cross_site_and_unvouched_same_site() {
        let policy = OriginPolicy::new(None, Vec::new());
        assert!(
            policy
                .check(&headers(&[("sec-fetch-site", "cross-site")]))
                .is_err()
        );
        assert!(
            policy
                .check(&headers(&[("sec-fetch-site", "same-site")]))
                .is_err()
        );
        assert!(
            policy
                .check(&headers(&[
                    ("sec-fetch-site", "same-site"),
                    ("host", "a.test"),
                    ("origin", "http://a.test")
                ]))
                .is_ok()
        );
        for unknown in ["Same-Origin", "same-origin ", "cross-origin", ""] {
            assert!(
                policy
                    .check(&headers(&[("sec-fetch-site", unknown)]))
                    .is_err(),
                "{unknown:?}"
            );
        }
        assert!(
            policy
                .check(&headers(&[("sec-fetch-site", "same-origin")]))
                .is_ok()
        );
        assert!(
            policy
                .check(&headers(&[("sec-fetch-site", "none")]))
                .is_ok()
        );
    }
}
