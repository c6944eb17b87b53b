//! `/openapi.json` and `/docs`: the document covers every route the router
//! registers (and nothing it does not), is structurally valid OpenAPI 3.1,
//! matches the checked-in snapshot `docs/openapi.json`; the page that
//! renders it references no other origin.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use airbyte_sim::SimConfig;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::stack::Stack;
use crate::support::Db;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The source files whose `.route(...)` calls make up the served router.
const ROUTER_SOURCES: [&str; 5] = [
    "src/http/mod.rs",
    "src/api/mod.rs",
    "src/front/mod.rs",
    "src/mcp/mod.rs",
    "src/console/mod.rs",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every route registered in `ROUTER_SOURCES`, as an OpenAPI path (`{*path}`
/// becomes `{path}`) with its methods (`any` for `any(..)` and services).
/// Axum cannot list its routes, so the registrations are read from source.
fn registered_routes() -> BTreeMap<String, BTreeSet<String>> {
    let mut routes = BTreeMap::<String, BTreeSet<String>>::new();
    for file in ROUTER_SOURCES {
        let text = std::fs::read_to_string(crate_dir().join(file)).expect("router source");
        for (start, _) in text.match_indices(".route") {
            let rest = &text[start + ".route".len()..];
            let service = rest.starts_with("_service(");
            let Some(args) = rest
                .strip_prefix('(')
                .or_else(|| rest.strip_prefix("_service("))
            else {
                continue;
            };
            let args = args.trim_start();
            let (path, after) = if let Some(literal) = args.strip_prefix('"') {
                let end = literal.find('"').expect("closed string");
                (literal[..end].to_owned(), &literal[end..])
            } else {
                // A constant of the same file: `const NAME: &str = "...";`.
                let end = args
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .expect("an argument");
                let name = &args[..end];
                let declaration = format!("const {name}: &str = \"");
                let at = text.find(&declaration).unwrap_or_else(|| {
                    panic!("{file}: route path `{name}` is neither a literal nor a local const")
                });
                let value = &text[at + declaration.len()..];
                (
                    value[..value.find('"').expect("closed")].to_owned(),
                    &args[end..],
                )
            };
            // The rest of the call, up to its closing parenthesis.
            let mut depth = 1;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(after.len(), |(i, _)| i);
            let call = &after[..end];
            let methods = routes.entry(path.replace("{*", "{")).or_default();
            if service {
                methods.insert("any".to_owned());
            }
            for method in METHODS.iter().chain(&["any"]) {
                let called = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                    !call[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if called {
                    methods.insert((*method).to_owned());
                }
            }
        }
    }
    assert!(
        routes.len() > 20,
        "the scan found the router's routes: {routes:?}"
    );
    routes
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

#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_routed() {
    let stack = Stack::start(Db::Sqlite, SimConfig::default(), "").await;
    let (_, doc) = served_document(&stack).await;
    let documented: BTreeMap<String, BTreeSet<String>> =
        operations(&doc)
            .into_iter()
            .fold(BTreeMap::new(), |mut map, (path, method, _)| {
                map.entry(path).or_default().insert(method);
                map
            });

    let registered = registered_routes();
    for (path, methods) in &registered {
        let Some(found) = documented.get(path) else {
            panic!("route {path} is not in /openapi.json");
        };
        for method in methods.iter().filter(|m| *m != "any") {
            assert!(found.contains(method), "{method} {path} is not documented");
        }
    }
    for path in documented.keys() {
        assert!(
            registered.contains_key(path),
            "{path} is documented but no router registers it"
        );
    }

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
    let stack = Stack::start(Db::Sqlite, SimConfig::default(), "").await;
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
    let stack = Stack::start(Db::Sqlite, SimConfig::default(), "").await;
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
    let stack = Stack::start(Db::Sqlite, SimConfig::default(), "").await;
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
