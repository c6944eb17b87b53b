//! `/openapi.json` and `/docs`: every operation of the document is routed
//! and every other method of its paths refused; the document is
//! structurally valid OpenAPI 3.1 and matches the checked-in snapshot
//! `docs/openapi.json`; the page that renders it references no other
//! origin.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{Harness, Stack};
use crate::support::Db;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                out.push((path.clone(), method.to_owned(), operation.clone()));
            }
        }
    }
    out
}

async fn served_document(stack: &Stack) -> (String, Value) {
    let response = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .expect("openapi.json answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    let text = response.text().await.expect("body");
    let doc = serde_json::from_str(&text).expect("JSON");
    (text, doc)
}

/// Routes and operations come from one declaration (`web::routes`), so a
/// route cannot go undocumented; from outside, the router and the document
/// must agree on every path's methods.
#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_routed() {
    let stack = Harness::new(Db::Sqlite).start().await;
    let (_, doc) = served_document(&stack).await;
    let documented: BTreeMap<String, BTreeSet<String>> =
        operations(&doc)
            .into_iter()
            .fold(BTreeMap::new(), |mut map, (path, method, _)| {
                map.entry(path).or_default().insert(method);
                map
            });
    assert!(documented.len() > 20, "{documented:?}");

    // Every documented operation reaches a handler (no token: most answer
    // 401, which is fine; the router's own 404/405 is not).
    for (path, method, _) in operations(&doc) {
        let concrete = path.replace("{path}", "jobs").replace(['{', '}'], "");
        let method: Method = method.to_uppercase().parse().expect("a method");
        let response = stack
            .http
            .request(method.clone(), stack.url(&concrete))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("answers");
        let status = response.status();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap_or_default();
            // The router's fallback is a problem without `detail`.
            assert!(
                body.get("detail").is_some() || body.get("data").is_some(),
                "{method} {path} ({concrete}) is not routed: {body}"
            );
        }
    }
    // Every other method on a documented path is refused: by the router,
    // whose 405 allows exactly the documented methods, or by a handler that
    // answers every method itself (the front's, in Airbyte's words). With
    // a token, so that `/mcp`'s guard lets the request reach the router.
    let token = stack.token("reader");
    for (path, methods) in &documented {
        let concrete = path.replace("{path}", "jobs").replace(['{', '}'], "");
        for method in METHODS.iter().filter(|m| !methods.contains(**m)) {
            let method: Method = method.to_uppercase().parse().expect("a method");
            let response = stack
                .http
                .request(method.clone(), stack.url(&concrete))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("answers");
            let status = response.status();
            if status == StatusCode::METHOD_NOT_ALLOWED {
                let allowed: BTreeSet<String> = response.headers()["allow"]
                    .to_str()
                    .expect("ascii")
                    .split(',')
                    .map(|m| m.trim().to_lowercase())
                    .filter(|m| m != "head")
                    .collect();
                assert_eq!(&allowed, methods, "{method} {path}: the router's methods");
            } else {
                assert!(
                    status.is_client_error() && status != StatusCode::NOT_FOUND,
                    "{method} {path} ({concrete}) is not documented, yet answered {status}"
                );
            }
        }
    }
    // And the request log agrees: no request went unmatched.
    let metrics = stack
        .http
        .get(stack.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        !metrics.contains("route=\"unmatched\""),
        "some documented operation was not routed:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("unmatched"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    stack.stop().await;
}

/// Resolves a local `$ref` (`#/a/b`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match inner {
                    Value::String(target) if key == "$ref" => out.push(target.clone()),
                    _ => collect_refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_structurally_valid_openapi_3_1() {
    let stack = Harness::new(Db::Sqlite).start().await;
    let (_, doc) = served_document(&stack).await;
    stack.stop().await;

    let version = doc["openapi"].as_str().expect("openapi field");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1, not {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["bearerFormat"],
        "JWT"
    );

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in &refs {
        assert!(
            reference.starts_with("#/") && resolve(&doc, reference).is_some(),
            "unresolved $ref {reference}"
        );
    }

    let mut ids = HashSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().expect("an operationId");
        assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{method} {path} has no responses");
        let declared: HashSet<String> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve(&doc, r).cloned().unwrap_or_default(),
                None => p.clone(),
            })
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: {p}"))
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let templated: HashSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, templated, "{method} {path}: path parameters");
        // Airlock's own API answers errors as problem+json.
        if path.starts_with("/v1/") && !path.ends_with("/token") {
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let response = match response.get("$ref").and_then(Value::as_str) {
                        Some(r) => resolve(&doc, r).expect("resolves"),
                        None => response,
                    };
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
            assert!(
                operation["security"].is_array(),
                "{method} {path} needs a bearer token"
            );
        }
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    for field in ["status", "title", "code", "request_id"] {
        assert!(
            problem["required"]
                .as_array()
                .expect("required")
                .contains(&field.into())
        );
    }
}

#[tokio::test]
async fn the_served_document_matches_the_snapshot() {
    let stack = Harness::new(Db::Sqlite).start().await;
    let (text, _) = served_document(&stack).await;
    stack.stop().await;
    let snapshot = crate_dir().join("../../docs/openapi.json");
    if std::env::var_os("AIRLOCK_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&snapshot, &text).expect("write the snapshot");
        return;
    }
    let checked_in = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        checked_in == text,
        "docs/openapi.json differs from the served document; review the change, then \
         regenerate it with\n  AIRLOCK_UPDATE_SNAPSHOTS=1 cargo test -p airlock --test it -- \
         openapi::the_served_document_matches_the_snapshot"
    );
}

#[tokio::test]
async fn docs_render_the_document_without_any_other_origin() {
    let stack = Harness::new(Db::Sqlite).start().await;
    let response = stack
        .http
        .get(stack.url("/docs"))
        .send()
        .await
        .expect("docs answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/html"))
    );
    let html = response.text().await.expect("body");
    stack.stop().await;
    assert!(html.contains("openapi.json"), "the page loads the document");
    for external in [
        "http://", "https://", "//cdn", "src=", "<link", "@import", "url(",
    ] {
        assert!(!html.contains(external), "the page references `{external}`");
    }
}
