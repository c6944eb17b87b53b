//! The document and the server agree (issue 20).
//!
//! - Declared limits are the enforced ones: every bounded or enumerated
//!   query parameter of a `GET` under `/v1` that the served `/openapi.json`
//!   declares is tried at and just past its bounds, and with each allowed
//!   value and one that is not, as an admin. A value the document allows
//!   must not be refused (400 or 422); one it forbids must be. The cases
//!   come from the document, so a constraint declared later is checked
//!   without a change here.
//! - The token endpoints, served for every method so that Airbyte's
//!   clients get Airbyte's error shape, answer any method but `POST` with
//!   405 and `Allow`, as their document says.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Stack};
use crate::support::{Db, reliable_connections, send};

/// One query to try and whether the document allows it.
struct Case {
    path: String,
    query: String,
    allowed: bool,
}

/// The cases of one parameter's schema: bounds for integers, each value
/// (and one more) for enums.
fn cases_of(path: &str, name: &str, schema: &Value, doc: &Value) -> Vec<Case> {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let key = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][key]
        }
        None => schema,
    };
    // `Option<T>` may be `oneOf: [null, T]`.
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        return variants
            .iter()
            .filter(|v| v.get("type") != Some(&Value::from("null")))
            .flat_map(|v| cases_of(path, name, v, doc))
            .collect();
    }
    let case = |value: String, allowed: bool| Case {
        path: path.to_owned(),
        query: format!("{name}={value}"),
        allowed,
    };
    let mut out = Vec::new();
    if let Some(min) = schema.get("minimum").and_then(Value::as_i64) {
        out.push(case(min.to_string(), true));
        out.push(case((min - 1).to_string(), false));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_i64) {
        out.push(case(max.to_string(), true));
        out.push(case((max + 1).to_string(), false));
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        for value in values.iter().filter_map(Value::as_str) {
            out.push(case(value.to_owned(), true));
        }
        out.push(case("not-one-of-them".to_owned(), false));
    }
    // A pattern of alternative words (`^(a|b)$`): each word is allowed.
    // Other patterns are left to the generated tests of a later step.
    let words = schema
        .get("pattern")
        .and_then(Value::as_str)
        .and_then(|p| p.strip_prefix("^(")?.strip_suffix(")$"))
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '|')
        });
    if let Some(words) = words {
        for word in words.split('|') {
            out.push(case(word.to_owned(), true));
        }
        out.push(case("not-one-of-them".to_owned(), false));
    }
    out
}

/// Every case the served document declares for `GET` operations of `/v1`
/// without path parameters.
fn declared_cases(doc: &Value) -> Vec<Case> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") || path.contains('{') {
            continue;
        }
        let Some(operation) = item.get("get") else {
            continue;
        };
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["in"] != "query" {
                continue;
            }
            let name = parameter["name"].as_str().expect("a name");
            out.extend(cases_of(path, name, &parameter["schema"], doc));
        }
    }
    out
}

async fn document(stack: &Stack) -> Value {
    let (status, doc) = send(stack.http.get(stack.url("/openapi.json"))).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_limits_and_values_are_the_enforced_ones() {
    let stack = Harness::fast(Db::Sqlite).approving_resets().start().await;
    stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let doc = document(&stack).await;
    let cases = declared_cases(&doc);
    // The bounds this step declared are among them.
    for (path, query) in [
        ("/v1/jobs", "limit=201"),
        ("/v1/audit", "limit=501"),
        ("/v1/approvals", "limit=0"),
        ("/v1/jobs", "state=awaiting_approval"),
        ("/v1/jobs", "type=reset"),
        ("/v1/approvals", "state=withdrawn"),
    ] {
        assert!(
            cases.iter().any(|c| c.path == path && c.query == query),
            "{path}?{query} is not a declared case"
        );
    }
    let mut wrong = Vec::new();
    for case in &cases {
        let url = format!("{}?{}", case.path, case.query);
        let (status, body) = stack.get(&url, "admin").await;
        let refused = matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
        );
        if refused == case.allowed || status.is_server_error() {
            wrong.push(format!("{url}: {status} {body}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} disagreements:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoints_answer_other_methods_with_405_and_allow() {
    let stack = Harness::new(Db::Sqlite).start().await;
    for path in [
        "/applications/token",
        "/v1/applications/token",
        "/api/public/v1/applications/token",
    ] {
        for method in ["GET", "PUT", "DELETE", "PATCH", "TRACE"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
            let response = stack
                .http
                .request(method.clone(), stack.url(path))
                .send()
                .await
                .expect("Airlock answers");
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(
                response.headers()["allow"].to_str().ok(),
                Some("POST"),
                "{method} {path}"
            );
            let body: Value = response.json().await.expect("Airbyte's error shape");
            assert_eq!(body["status"], 405, "{body}");
            assert_eq!(body["title"], "method-not-allowed", "{body}");
        }
    }
    stack.stop().await;
}

/// Requests the document allows that the server used to refuse (found by
/// generating requests from the document): a `null` body where the body is
/// optional, a whole number written `3.0`, and a `wait` past 15 minutes,
/// which is cut to 15 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_values_the_document_allows_are_accepted() {
    let stack = Harness::fast(Db::Sqlite).approving_resets().start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let post = |path: String, role: &'static str, body: &'static str| {
        stack
            .request(reqwest::Method::POST, &path, Some(role))
            .header("content-type", "application/json")
            .body(body)
    };
    let sync = format!("/v1/connections/{connection}/sync");
    let (status, job) = send(post(sync.clone(), "runner", "null")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let (status, job) = send(post(sync.clone(), "runner", r#"{"max_attempts": 3.0}"#)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["max_attempts"], 3, "{job}");
    let (status, problem) = send(post(sync.clone(), "runner", r#"{"max_attempts": 2.5}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["errors"][0]["pointer"], "/max_attempts",
        "{problem}"
    );
    let (status, job) = send(post(
        format!("{sync}?wait=1ms&max_attempts=2"),
        "runner",
        "",
    ))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let (status, job) = send(post(
        format!("{sync}?wait=16m&if_running=attach"),
        "runner",
        "",
    ))
    .await;
    assert!(
        status.is_success(),
        "a long wait is cut, not refused: {status} {job}"
    );

    let (status, reset) = send(post(
        format!("/v1/connections/{connection}/reset"),
        "editor",
        "null",
    ))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reset}");
    let approval = reset["approval"]["id"].as_str().expect("an approval");
    let (status, decided) = send(post(
        format!("/v1/approvals/{approval}/approve"),
        "approver",
        "null",
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    stack.stop().await;
}

/// What the document now says the server does, found by generating
/// requests from it: `/mcp` takes a request without `Accept` (any media
/// type, RFC 9110) or with `*/*`, and refuses one that names neither JSON
/// nor event streams (406); an event stream's `Last-Event-ID` is an id it
/// sent, and anything else is refused with the header named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_accept_and_last_event_id_are_as_documented() {
    let stack = Harness::fast(Db::Sqlite).start().await;
    let ping = r#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#;
    for (accept, expected) in [
        (None, StatusCode::OK),
        (Some("*/*"), StatusCode::OK),
        (Some("text/html"), StatusCode::NOT_ACCEPTABLE),
    ] {
        let mut request = stack
            .request(reqwest::Method::POST, "/mcp", Some("reader"))
            .header("content-type", "application/json")
            .body(ping);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let (status, body) = send(request).await;
        assert_eq!(status, expected, "Accept {accept:?}: {body}");
        if status == StatusCode::OK {
            assert_eq!(body["id"], 1, "{body}");
        }
    }

    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let job = stack.accepted_sync(&connection).await;
    let events = format!("/v1/jobs/{job}/events");
    let job_bad = ["-1", "9223372036854775808", "null", "1.5"].map(|bad| (events.as_str(), bad));
    let all_bad = ["+5", "a7", "a7.42.1", "1234567890123456789"].map(|bad| ("/v1/events", bad));
    for (path, bad) in job_bad.into_iter().chain(all_bad) {
        let (status, problem) = send(
            stack
                .request(reqwest::Method::GET, path, Some("reader"))
                .header("last-event-id", bad),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {bad}: {problem}"
        );
        assert_eq!(
            problem["errors"][0]["pointer"], "Last-Event-ID",
            "{problem}"
        );
    }
    stack.wait_terminal(&job).await;
    let response = stack
        .request(reqwest::Method::GET, &events, Some("reader"))
        .header("last-event-id", "1")
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("the stream ends with the job");
    assert!(!text.contains("id: 1\n"), "resumed after event 1: {text}");
    assert!(text.contains("event: state"), "{text}");
    stack.stop().await;
}
