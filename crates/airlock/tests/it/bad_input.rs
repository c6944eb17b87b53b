//! Bad input gets a clear, short error and changes nothing; one identity
//! cannot take every worker.

use airbyte_sim::SimConfig;
use airlock_store::jobs::JobFilter;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Stack};
use crate::support::Db;

async fn job_count(stack: &Stack) -> usize {
    stack
        .store()
        .await
        .list_jobs(&JobFilter {
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .expect("jobs")
        .len()
}

/// Sends a sync with `query` and `body` as the runner; returns status,
/// content type and the problem body.
async fn sync(
    stack: &Stack,
    query: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, String, Value) {
    let mut request = stack
        .http
        .post(stack.url(&format!("/v1/connections/postgres-snowflake/sync{query}")))
        .bearer_auth(stack.token("runner"))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

/// One bad request: its name, query, body, extra headers, the expected
/// status, the field to blame (`errors[0].pointer`: a JSON Pointer into the
/// body, or the query parameter's or header's name; `None` when no one
/// field is) and a fragment of the expected detail.
type Case = (
    &'static str,
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    StatusCode,
    Option<&'static str>,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_short_errors_and_change_nothing() {
    let stack = Harness::new(Db::Sqlite).start().await;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            "",
            b"{\"if_running\": ".to_vec(),
            vec![],
            StatusCode::BAD_REQUEST,
            Some(""),
            "not JSON",
        ),
        (
            "unknown body field",
            "",
            br#"{"iff_running": "queue"}"#.to_vec(),
            vec![],
            unprocessable,
            Some("/iff_running"),
            "unknown field",
        ),
        (
            "bad enum value",
            "",
            br#"{"if_running": "sometimes"}"#.to_vec(),
            vec![],
            unprocessable,
            Some("/if_running"),
            "sometimes",
        ),
        (
            "wrong type",
            "",
            br#"{"max_attempts": "three"}"#.to_vec(),
            vec![],
            unprocessable,
            Some("/max_attempts"),
            "\"three\"",
        ),
        (
            "zero attempts",
            "?max_attempts=0",
            vec![],
            vec![],
            unprocessable,
            Some("max_attempts"),
            "must be 1 to 10",
        ),
        (
            "too many attempts",
            "?max_attempts=99",
            vec![],
            vec![],
            unprocessable,
            Some("max_attempts"),
            "must be 1 to 10",
        ),
        (
            "too many attempts in the body",
            "",
            br#"{"max_attempts": 11}"#.to_vec(),
            vec![],
            unprocessable,
            Some("/max_attempts"),
            "must be 1 to 10",
        ),
        (
            "a reason with a control character",
            "?reason=a%07b",
            vec![],
            vec![],
            unprocessable,
            Some("reason"),
            "control characters",
        ),
        (
            "wait of more digits than the document allows",
            "?wait=1234567890s",
            vec![],
            vec![],
            unprocessable,
            Some("wait"),
            "duration",
        ),
        (
            "wait not a duration",
            "?wait=soon",
            vec![],
            vec![],
            unprocessable,
            Some("wait"),
            "duration",
        ),
        (
            "unknown query parameter",
            "?wiat=5s",
            vec![],
            vec![],
            unprocessable,
            Some("wiat"),
            "unknown field",
        ),
        (
            "idempotency key with spaces",
            "",
            vec![],
            vec![("idempotency-key", "a key")],
            unprocessable,
            Some("Idempotency-Key"),
            "visible ASCII",
        ),
        (
            "body too large",
            "",
            vec![b' '; 300 * 1024],
            vec![],
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            "",
        ),
    ];
    for (name, query, body, headers, status, pointer, detail) in cases {
        let before = job_count(&stack).await;
        let (got, content_type, problem) = sync(&stack, query, body, &headers).await;
        assert_eq!(got, status, "{name}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{name}");
        assert_eq!(problem["status"], status.as_u16(), "{name}: {problem}");
        assert!(
            problem["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{name}: {problem}"
        );
        assert!(problem["code"].as_str().is_some(), "{name}: {problem}");
        let text = problem.to_string();
        assert!(
            text.len() < 400,
            "{name}: a short body, got {} bytes: {text}",
            text.len()
        );
        match pointer {
            Some(pointer) => {
                let errors = problem["errors"].as_array().expect("errors");
                assert_eq!(errors.len(), 1, "{name}: {problem}");
                assert_eq!(errors[0]["pointer"], pointer, "{name}: {problem}");
                assert!(
                    errors[0]["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(detail)),
                    "{name}: {problem}"
                );
            }
            None => assert!(problem.get("errors").is_none(), "{name}: {problem}"),
        }
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(detail),
            "{name}: {problem}"
        );
        assert_eq!(job_count(&stack).await, before, "{name} changed nothing");
    }

    // Paths that are not ids, and oversized tokens.
    let response = stack
        .http
        .get(stack.url("/v1/jobs/..%2F..%2Fetc%2Fpasswd"))
        .bearer_auth(stack.token("runner"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let huge = format!("Bearer {}", "a".repeat(20_000));
    let response = stack
        .http
        .get(stack.url("/v1/jobs"))
        .header("authorization", huge)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(job_count(&stack).await, 0, "nothing was ever queued");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_cannot_hold_every_worker() {
    let stack = Harness::new(Db::Sqlite)
        .sim(SimConfig {
            manual_clock: true,
            ..SimConfig::default()
        })
        .extra("[server]\nmax_concurrent_per_identity = 2\n")
        .start()
        .await;
    // Two syncs that wait (the simulator's clock is stopped, so they hold).
    let hold = |slug: &'static str| {
        let http = stack.http.clone();
        let url = stack.url(&format!("/v1/connections/{slug}/sync?wait=5s"));
        let token = stack.token("runner");
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status())
        })
    };
    let first = hold("postgres-snowflake");
    let second = hold("jira-bigquery");
    // Wait until both are in flight (their jobs exist).
    for _ in 0..100 {
        if job_count(&stack).await == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(job_count(&stack).await, 2);
    let third = stack
        .http
        .get(stack.url("/v1/jobs"))
        .bearer_auth(stack.token("runner"))
        .send()
        .await
        .expect("request");
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.headers()["retry-after"], "1");
    let problem: Value = third.json().await.expect("problem");
    assert_eq!(problem["code"], "too_many_requests");

    // Another identity is served as usual.
    let other = stack
        .http
        .get(stack.url("/v1/jobs"))
        .bearer_auth(stack.token("reader"))
        .send()
        .await
        .expect("request");
    assert_eq!(other.status(), StatusCode::OK);
    first.abort();
    second.abort();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_and_changes_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Harness::new(Db::Sqlite)
        .extra("[server]\nbody_timeout_secs = 1\n")
        .start()
        .await;
    let address = stack.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/connections/postgres-snowflake/sync HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"if_run",
        stack.token("runner")
    );
    socket
        .write_all(head.as_bytes())
        .await
        .expect("send the start");
    // ...and never the rest.
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        socket.read_to_string(&mut answer),
    )
    .await
    .expect("an answer before the test's own bound")
    .expect("read");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert_eq!(job_count(&stack).await, 0);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Harness::new(Db::Sqlite)
        .extra("[server]\nheader_timeout_secs = 1\n")
        .start()
        .await;
    let address = stack.base.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut socket = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        // Half a request line and one header, then nothing more.
        socket
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\n").as_bytes())
            .await
            .expect("send the start");
        stalled.push(socket);
    }
    // The stalled connections hold nothing others need.
    let ok = reqwest::get(format!("{}/healthz", stack.base))
        .await
        .expect("request");
    assert_eq!(ok.status(), StatusCode::OK);
    for mut socket in stalled {
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(20),
            socket.read_to_end(&mut answer),
        )
        .await
        .expect("the server closes the connection before the test's own bound")
        .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        // Closed with nothing written, or with a 408: never a 200.
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    stack.stop().await;
}
