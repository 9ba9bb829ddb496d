//! Request extractors whose failures are problem+json, never axum's plain-text rejections.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{CONTENT_TYPE, FORWARDED};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, RequestPartsExt as _};
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::config::ProxyRange;
use crate::problem::Problem;

/// A JSON object body. Refuses other content types (415, which also stops the "simple
/// request" forms a cross-site page can send), bodies over the limit (413), broken JSON (400)
/// and JSON of the wrong shape — arrays, unknown or duplicate fields included (422).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        if !is_json(request.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "the body must be application/json",
            ));
        }
        // The limit is applied while reading, so an oversized body is never buffered whole.
        let limit = state.http.max_body_bytes;
        let bytes = match axum::body::to_bytes(request.into_body(), limit).await {
            Ok(bytes) => bytes,
            Err(error) if is_length_limit(&error) => return Err(too_large()),
            Err(_) => return Err(Problem::malformed("the body could not be read")),
        };
        // serde accepts a JSON array for a struct (fields by position); an API that names its
        // fields should not.
        match bytes.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(b'[') => return Err(Problem::validation("the body must be a JSON object")),
            _ => return Err(Problem::malformed("the body is not a JSON object")),
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// Whether reading the body stopped at the size limit.
fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// The request's media type, if it has one that parses.
fn media_type(headers: &HeaderMap) -> Option<mime::Mime> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
}

/// `application/json` or `application/*+json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|mime| {
        mime.type_() == "application"
            && (mime.subtype() == "json" || mime.suffix().is_some_and(|suffix| suffix == "json"))
    })
}

/// `application/x-www-form-urlencoded`, parameters allowed.
pub fn is_form(headers: &HeaderMap) -> bool {
    media_type(headers).is_some_and(|mime| {
        mime.type_() == "application" && mime.subtype() == "x-www-form-urlencoded"
    })
}

/// Reads a form body of at most `limit` bytes into `T`. Unknown parameters (with
/// `deny_unknown_fields`) and repeated ones are refused: a struct reports a repeat as a
/// duplicate field. The error is a description for the client.
pub async fn read_form<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, &'static str> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| "the body is too large or could not be read")?;
    serde_urlencoded::from_bytes(&bytes).map_err(|_| "malformed, unknown or repeated parameters")
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "the body must be application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => Problem::malformed("the body is not valid JSON"),
        JsonRejection::JsonDataError(error) => {
            Problem::validation(describe_data_error(&error.body_text()))
        }
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            too_large()
        }
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ => Problem::malformed("the body could not be read"),
    }
}

/// 413 `payload_too_large`.
pub fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "Payload too large",
        "the request body is larger than the server accepts",
    )
}

/// serde's messages can quote what the client sent — a value (which may be a password in the
/// wrong place) or an unknown field's name (a typo of a secret, say) — so only three shapes
/// pass: "unknown field", without the name, and "missing field" or "duplicate field", whose
/// names are our own fields'.
fn describe_data_error(text: &str) -> String {
    const GENERIC: &str = "a field is missing or has the wrong type";
    // axum's "Failed to deserialize …: " prefix, then an optional field path.
    let message = text.split_once(": ").map_or(text, |(_, rest)| rest);
    let message = message.split(" at line ").next().unwrap_or(message);
    if message.starts_with("unknown field") {
        return "unknown field".to_owned();
    }
    let names_own_field = |kind: &str| {
        message
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_prefix(" `"))
            .and_then(|rest| rest.strip_suffix('`'))
            .is_some_and(|name| {
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
    };
    if names_own_field("missing field") || names_own_field("duplicate field") {
        message.to_owned()
    } else {
        GENERIC.to_owned()
    }
}

/// Query parameters, with bad ones refused as 422 problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send + 'static> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Problem> {
        match parts.extract::<Query<T>>().await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(Problem::validation(describe_data_error(&error.body_text())))
            }
            Err(_) => Err(Problem::validation("invalid query string")),
        }
    }
}

/// The socket peer, as a request extension: for embedders serving the router with a server
/// of their own. Tessera's server sets [`PEER`] instead.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

tokio::task_local! {
    /// The socket peer of the connection this task serves: the server's accept loop runs each
    /// connection inside it, and handlers run in the connection's task. A request extension
    /// would allocate a map for every request (a measurable share of a session check without
    /// the cache, `docs/benchmarks.md`), while only the login routes ask for the address.
    pub static PEER: SocketAddr;
}

/// The client's address: the socket peer, or — when the peer is a trusted proxy — the
/// nearest untrusted address in `Forwarded` (RFC 7239), or in `X-Forwarded-For` when there
/// is no `Forwarded` header.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let peer = match parts.extensions.get::<PeerAddr>() {
            Some(PeerAddr(peer)) => *peer,
            None => match PEER.try_with(|peer| *peer) {
                Ok(peer) => peer,
                Err(_) => return Ok(ClientIp(None)),
            },
        };
        Ok(ClientIp(Some(client_address(
            peer.ip(),
            &parts.headers,
            &state.http.trusted_proxies,
        ))))
    }
}

/// Walks the forwarding chain from the right (the entries our proxies appended) to the
/// first address that is not one of ours. An entry that is not an address (`unknown`, an
/// obfuscated name, anything malformed) ends the walk at the last address known.
fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ProxyRange]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|range| range.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let forwarded = headers.get_all(FORWARDED);
    let use_forwarded = forwarded.iter().next().is_some();
    let values = if use_forwarded {
        forwarded
    } else {
        headers.get_all("x-forwarded-for")
    };
    for value in values.iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for entry in text.rsplit(',') {
            let hop = if use_forwarded {
                forwarded_for(entry)
            } else {
                entry.trim().parse::<IpAddr>().ok()
            };
            let Some(ip) = hop else { return client };
            client = ip.to_canonical();
            if !is_trusted(&client) {
                return client;
            }
        }
    }
    client
}

/// The address in the `for` parameter of one `Forwarded` element (`for=192.0.2.60;proto=
/// http`, `for="[2001:db8::1]:4711"`), or `None` when there is none or it is not an address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let mut address = None;
    for pair in element.split(';') {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.eq_ignore_ascii_case("for") {
            continue;
        }
        // A repeated `for` makes the element ambiguous.
        if address.is_some() {
            return None;
        }
        let value = match value.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"')?,
            // Unquoted, a value is a token: no `[`, `]` or `:` (RFC 7239 §4, §6).
            None if value.contains(['[', ']', ':', '"']) => return None,
            None => value,
        };
        let node = match value.strip_prefix('[') {
            // `[v6]` or `[v6]:port`.
            Some(bracketed) => {
                let (host, port) = bracketed.split_once(']')?;
                if !(port.is_empty() || is_node_port(port.strip_prefix(':')?)) {
                    return None;
                }
                host.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)?
            }
            None => {
                let (host, port) = value.split_once(':').unwrap_or((value, ""));
                if !(port.is_empty() && !value.contains(':') || is_node_port(port)) {
                    return None;
                }
                host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)?
            }
        };
        address = Some(node);
    }
    address
}

/// RFC 7239 §6: a port number, or an obfuscated port (`_` then letters, digits, `.`, `_`, `-`).
fn is_node_port(port: &str) -> bool {
    port.parse::<u16>().is_ok()
        || port.strip_prefix('_').is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_name_own_fields_but_never_echo_what_was_sent() {
        let unknown = describe_data_error(
            "Failed to deserialize the JSON body into the target type: unknown field `pasword`, expected `username` or `password` at line 1 column 12",
        );
        assert_eq!(unknown, "unknown field");
        assert_eq!(
            describe_data_error(
                "Failed to deserialize the JSON body into the target type: missing field `password` at line 1 column 20"
            ),
            "missing field `password`"
        );
        assert_eq!(
            describe_data_error("Failed to deserialize query string: duplicate field `after`"),
            "duplicate field `after`"
        );
        for leaky in [
            "Failed to deserialize the JSON body into the target type: username: invalid type: string \"hunter2-secret\", expected u32 at line 1 column 30",
            // A field name crafted to look like another message after a `: `.
            "Failed to deserialize the JSON body into the target type: unknown field `x: missing field `hunter`, expected `username` at line 1 column 9",
            "Failed to deserialize the JSON body into the target type: missing field `hunter2 secret`",
        ] {
            let detail = describe_data_error(leaky);
            assert!(!detail.contains("hunter"), "{detail}");
        }
    }

    fn forwarding(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    fn ranges(texts: &[&str]) -> Vec<ProxyRange> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidr_ranges() {
        let trusted = ranges(&["10.0.0.0/8", "fd00::/8", "192.0.2.1"]);
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let headers = forwarding(&[("x-forwarded-for", "203.0.113.9, 192.0.2.1, 10.9.9.9")]);
        assert_eq!(
            client_address(peer, &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        // A peer outside every range is the client, whatever it claims.
        let outsider: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_address(outsider, &headers, &trusted), outsider);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_address(mapped, &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "10.0.0", "proxy.local", ""] {
            assert!(bad.parse::<ProxyRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_forwarded_header_is_read_and_wins_over_x_forwarded_for() {
        let trusted = ranges(&["10.0.0.0/8"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let client = |pairs: &[(&'static str, &str)]| {
            client_address(peer, &forwarding(pairs), &trusted).to_string()
        };
        assert_eq!(
            client(&[("forwarded", "for=203.0.113.9;proto=https, for=10.0.0.2")]),
            "203.0.113.9"
        );
        assert_eq!(
            client(&[
                ("forwarded", "For=\"[2001:db8::1]:4711\""),
                ("x-forwarded-for", "198.51.100.1")
            ]),
            "2001:db8::1"
        );
        assert_eq!(
            client(&[("forwarded", "for=\"203.0.113.9:8080\";by=10.0.0.1")]),
            "203.0.113.9"
        );
        // Header lines count as one list, the last line nearest.
        assert_eq!(
            client(&[
                ("forwarded", "for=203.0.113.9"),
                ("forwarded", "for=10.0.0.3")
            ]),
            "203.0.113.9"
        );
        // Anything that is not an address ends the walk at the last address known.
        for stop in [
            "for=203.0.113.9, for=unknown",
            "for=203.0.113.9, for=_hidden",
            "for=203.0.113.9, for=[2001:db8::1]",
            "for=203.0.113.9, for=\"2001:db8::1\"",
            "for=203.0.113.9, for=10.0.0.2;for=10.0.0.3",
            "for=203.0.113.9, proto=https",
            "for=203.0.113.9, for=\"10.0.0.2",
            "for=203.0.113.9, for=10.0.0.2:99999",
        ] {
            assert_eq!(client(&[("forwarded", stop)]), "10.0.0.1", "{stop}");
        }
        assert_eq!(
            client(&[("forwarded", "for=\"10.0.0.2:_port\", for=10.0.0.3")]),
            "10.0.0.2"
        );
    }
}
