//! The API document against the server it describes, through a real socket: the routed
//! operations and the documented ones are the same, each documented operation reaches its
//! handler and answers a status the document lists for it, and error bodies are declared
//! with the media type they are sent with. `scripts/schemathesis.sh` then checks generated
//! requests against the whole document.

// Test code: a panic is a failed test, so unwrapping is the clearest way to say "must work".
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{TestServer, client};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_server::config::Secret;
use tessera_server::routes;

const METRICS_TOKEN: &str = "metrics-token-0123456789abcdefghijklmnopqrstuv";

/// A server with every documented route reachable (`/metrics` too) and its document.
async fn server_and_document() -> (TestServer, Value) {
    let server = TestServer::start(|config| {
        config.metrics.bearer_token =
            Some(serde_json::from_value::<Secret>(json!(METRICS_TOKEN)).unwrap());
    })
    .await;
    let response = client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document = response.json().await.unwrap();
    (server, document)
}

/// Every (method, path) of the document, methods upper-case.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn the_document_lists_exactly_the_routed_operations() {
    let (_server, document) = server_and_document().await;
    let routed: BTreeSet<(String, String)> = routes::operations()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_owned()))
        .collect();
    let documented = documented(&document);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not in the document: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "in the document but not routed: {unrouted:?}"
    );
    assert_eq!(
        routes::operations().len(),
        routed.len(),
        "a route listed twice"
    );
}

/// Each documented operation, asked without credentials or body, is answered by its handler
/// (not the router's 404 or 405), with a status the document lists for it.
#[tokio::test]
async fn every_documented_operation_reaches_its_handler() {
    let (server, document) = server_and_document().await;
    for (method, path) in documented(&document) {
        let uri = path.replace("{id}", "no-such-session");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = client()
            .request(method.clone(), server.url(&uri))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.text().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path}: the router's fallback answered: {body}"
        );
        let declared =
            &document["paths"][&path][method.as_str().to_lowercase()]["responses"][status.as_str()];
        assert!(
            declared.is_object(),
            "{method} {path} answered an undocumented {status}: {body}"
        );
        if let Some(content) = declared["content"].as_object() {
            let content_type = content_type.unwrap_or_default();
            assert!(
                content.contains_key(&content_type),
                "{method} {path} {status}: {content_type} is not among {:?}",
                content.keys().collect::<Vec<_>>()
            );
        }
    }
}

/// Problem bodies are declared `application/problem+json` and OAuth errors
/// `application/json`, everywhere; the login answers are both modelled; and every schema
/// referenced is in the document.
#[tokio::test]
async fn error_bodies_are_declared_with_the_media_type_they_are_sent_with() {
    let (_server, document) = server_and_document().await;
    let mut problems = 0;
    let mut oauth_errors = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                for (media_type, content) in response["content"].as_object().into_iter().flatten() {
                    let schema = content["schema"]["$ref"].as_str().unwrap_or_default();
                    if schema.ends_with("/ProblemBody") {
                        problems += 1;
                        assert_eq!(
                            media_type, "application/problem+json",
                            "{method} {path} {status}"
                        );
                    }
                    if schema.ends_with("/OAuthError") {
                        oauth_errors += 1;
                        assert_eq!(media_type, "application/json", "{method} {path} {status}");
                    }
                }
            }
        }
    }
    assert!(
        problems > 30 && oauth_errors > 5,
        "{problems} {oauth_errors}"
    );
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    for reference in references {
        let name = reference.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{reference} names no schema"
        );
    }
    let login = &document["paths"]["/v1/login"]["post"]["responses"]["200"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(login, "#/components/schemas/LoginResponse");
    let answers = &document["components"]["schemas"]["LoginResponse"]["oneOf"];
    assert_eq!(answers.as_array().map(Vec::len), Some(2), "{answers}");
}

/// Every `$ref` under `value`.
fn collect_references(value: &Value, references: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(target) if key == "$ref" => references.push(target.clone()),
                    _ => collect_references(value, references),
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| collect_references(item, references)),
        _ => {}
    }
}
