//! The static assets, compiled into the binary: no build step, no files to deploy.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::page_headers;
use crate::problem::Problem;

/// One compiled-in file.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "tessera.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/tessera.css"),
    },
    Asset {
        name: "tessera.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/tessera.js"),
    },
    Asset {
        name: "example.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../assets/example.html"),
    },
    Asset {
        name: "example.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/example.js"),
    },
];

/// The example single-page app calls the API with `fetch`, so it may connect to its own
/// origin; otherwise its policy is the pages' policy.
const EXAMPLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// A strong validator per asset: the start of its SHA-256, computed once.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            let hex: String = digest[..12]
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"\""))
        })
        .collect()
});

/// `GET /assets/{name}`. Cached briefly, then revalidated with the `ETag` (a `304` costs no
/// body), so an upgraded server's assets reach browsers within minutes.
pub(super) async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        return Problem::not_found("no such asset").into_response();
    };
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.as_bytes() == etag.as_bytes()
        });
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, asset.body).into_response()
    };
    let response_headers = response.headers_mut();
    if asset.content_type.starts_with("text/html") {
        page_headers(response_headers, EXAMPLE_CSP);
    }
    response_headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    response_headers.insert(ETAG, etag.clone());
    response_headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    if !asset.content_type.starts_with("text/html") {
        // Not a document: nothing in it may load anything.
        response_headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}
