//! Nobody without a valid identity can make Airlock work hard (issue 18,
//! availability). Each test makes the attack and checks the outcome: what
//! the attacker gets, what honest callers still get, and what the audit
//! trail keeps.

use std::collections::BTreeMap;
use std::time::Duration;

use airlock_domain::audit::Record;
use airlock_store::audit::AuditFilter;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Stack};
use crate::support::{self, Db, both_backends};

/// The audit records of `action`, oldest first.
async fn records_of(stack: &Stack, action: &str) -> Vec<Record> {
    stack
        .store()
        .await
        .audit_records(&AuditFilter {
            action: Some(action.to_owned()),
            ascending: true,
            limit: 10_000,
            ..AuditFilter::default()
        })
        .await
        .expect("audit records")
}

/// Refusals a record stands for: the first of its window stands for
/// itself, the window's count for the repeats it counts.
fn refusals(record: &Record) -> u64 {
    record
        .entry
        .detail
        .as_ref()
        .and_then(|d| d["repeated"].as_u64())
        .unwrap_or(1)
}

/// Refusals recorded per outcome (status), once the window's counts are
/// written (polled: they are written when the window closes).
async fn refused_by_status(stack: &Stack, action: &str, expected: u64) -> BTreeMap<String, u64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let records = records_of(stack, action).await;
        let mut by_status = BTreeMap::new();
        for record in &records {
            let status = record.entry.outcome.clone().unwrap_or_default();
            *by_status.entry(status).or_insert(0) += refusals(record);
        }
        if by_status.values().sum::<u64>() >= expected {
            return by_status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the window's counts were not written: {by_status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn a_flood_of_bad_credentials_costs_a_few_records_and_is_throttled(db: Db) {
    let stack = Harness::fast(db)
        .set("server", "refusal_window_secs", 10)
        .set("server", "refusals_per_address", 50)
        .start()
        .await;
    // A caller whose token verified before the flood.
    let reader = stack.token("reader");
    let connections = |token: &str| {
        support::send(
            stack
                .http
                .get(stack.url("/v1/connections"))
                .bearer_auth(token),
        )
    };
    let (status, _) = connections(&reader).await;
    assert_eq!(status, StatusCode::OK);

    let long_path = format!("/v1/jobs/{}", "x".repeat(60_000));
    let mut answered: BTreeMap<u16, u64> = BTreeMap::new();
    for _ in 0..200 {
        let response = stack
            .http
            .get(stack.url(&long_path))
            .bearer_auth("not-a-token")
            .send()
            .await
            .expect("Airlock answers");
        *answered.entry(response.status().as_u16()).or_default() += 1;
    }
    assert_eq!(
        answered,
        BTreeMap::from([(401, 50), (429, 150)]),
        "50 refusals, then the address is throttled"
    );

    // The honest caller on the same address is still served; a token never
    // seen before waits for the window to close.
    let (status, _) = connections(&reader).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a verified token passes the throttle"
    );
    let (status, _) = connections(&stack.token("runner")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let by_status = refused_by_status(&stack, "authenticate", 201).await;
    assert_eq!(
        by_status,
        BTreeMap::from([("401".to_owned(), 50), ("429".to_owned(), 151)])
    );
    let records = records_of(&stack, "authenticate").await;
    assert!(
        records.len() <= 6,
        "one record per address, reason and window, plus its count: {records:#?}"
    );
    for record in &records {
        assert_eq!(record.entry.origin.source_ip.as_deref(), Some("127.0.0.1"));
        let path = record.entry.detail.as_ref().expect("detail")["path"]
            .as_str()
            .expect("the path");
        assert!(path.chars().count() <= 257, "the stored path is bounded");
    }
    let counted: Vec<&Record> = records
        .iter()
        .filter(|r| r.entry.origin.request_id.is_none())
        .collect();
    assert!(
        !counted.is_empty(),
        "the repeats are one record with a count"
    );

    // Once the window has closed, the address is heard again.
    let response = stack
        .http
        .get(stack.url("/v1/connections"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    stack.stop().await.shutdown().await;
}

both_backends!(a_flood_of_bad_credentials_costs_a_few_records_and_is_throttled);

/// A service account's token request.
async fn token(stack: &Stack, client: &str, secret: &str) -> (StatusCode, Value) {
    support::send(
        stack
            .http
            .post(stack.url("/applications/token"))
            .form(&[("client_id", client), ("client_secret", secret)]),
    )
    .await
}

fn service_account(client: &str, secret: &str) -> toml::Table {
    let hash = airlock_domain::secret::hash::hash_secret(secret, 200_000).expect("hash");
    let mut account = toml::Table::new();
    account.insert("client_id".to_owned(), client.into());
    account.insert("secret_hash".to_owned(), hash.into());
    account.insert("roles".to_owned(), vec!["reader"].into());
    account
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_secrets_does_not_stall_the_right_one() {
    let stack = Harness::fast(Db::Sqlite)
        .entry("service_accounts", service_account("ci", "right"))
        .entry("service_accounts", service_account("other", "other-secret"))
        .set("server", "refusal_window_secs", 60)
        .set("server", "refusals_per_address", 10)
        .start()
        .await;
    let (status, body) = token(&stack, "ci", "right").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let flood: Vec<_> = (0..60)
        .map(|i| {
            let (http, url) = (stack.http.clone(), stack.url("/applications/token"));
            tokio::spawn(async move {
                let wrong = format!("wrong-{i}");
                let response = http
                    .post(url)
                    .form(&[("client_id", "ci"), ("client_secret", wrong.as_str())])
                    .send()
                    .await
                    .expect("Airlock answers");
                (
                    response.status(),
                    response.headers().contains_key("retry-after"),
                )
            })
        })
        .collect();
    // The right secret, while the flood is queued: answered.
    let (status, body) = token(&stack, "ci", "right").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut answered: BTreeMap<u16, u64> = BTreeMap::new();
    for request in flood {
        let (status, retry_after) = request.await.expect("joined");
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after, "a 429 says when to retry");
        }
        *answered.entry(status.as_u16()).or_default() += 1;
    }
    assert!(
        answered.keys().all(|s| *s == 400 || *s == 429),
        "wrong secrets are refused or throttled, nothing else: {answered:?}"
    );
    assert!(answered.contains_key(&429), "{answered:?}");

    // Wrong secrets one at a time: refused until the address and the
    // client id reach their budget, then throttled.
    let mut after_flood = 0;
    loop {
        after_flood += 1;
        let (status, body) = token(&stack, "ci", "wrong-again").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        *answered.entry(400).or_default() += 1;
        assert!(after_flood <= 20, "never throttled");
    }
    // Throttled: the right secret still works (it verified before); a
    // secret never verified waits for the window to close.
    let (status, body) = token(&stack, "ci", "right").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = token(&stack, "other", "other-secret").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Every refusal is in the trail, in a few records: the open window's
    // counts are written when Airlock stops.
    let storage_url = stack.storage_url.clone();
    stack.stop().await.shutdown().await;
    let records = airlock_store::Store::connect(&storage_url)
        .await
        .expect("store")
        .audit_records(&AuditFilter {
            action: Some("token".to_owned()),
            limit: 1_000,
            ..AuditFilter::default()
        })
        .await
        .expect("records");
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for record in &records {
        let status = record.entry.outcome.clone().unwrap_or_default();
        *by_status.entry(status).or_default() += refusals(record);
    }
    let refused = 60 + after_flood + 1;
    assert_eq!(by_status.values().sum::<u64>(), refused, "{by_status:?}");
    assert_eq!(by_status.get("400").copied(), answered.get(&400).copied());
    assert!(records.len() <= 8, "{records:#?}");
    assert!(
        records
            .iter()
            .all(|r| r.entry.detail.as_ref().expect("detail")["client_id"].is_string()),
        "{records:#?}"
    );
    let text =
        serde_json::to_string(&records.iter().map(|r| &r.entry).collect::<Vec<_>>()).expect("JSON");
    assert!(
        !text.contains("wrong-") && !text.contains("right"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_counts_against_the_identity_caps() {
    // A simulator ten times slower than life: a sync with `?wait=` holds
    // its request.
    let stack = Harness::new(Db::Sqlite)
        .sim(airbyte_sim::SimConfig {
            time_scale: 10.0,
            ..airbyte_sim::SimConfig::default()
        })
        .set("server", "max_concurrent_per_identity", 1)
        .set("server", "max_streams_per_identity", 1)
        .start()
        .await;
    let runner = stack.token("runner");

    // Event streams: one open per identity, and it does not hold the
    // request cap.
    let stream = stack
        .http
        .get(stack.url("/v1/events"))
        .bearer_auth(&runner)
        .send()
        .await
        .expect("a stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let second = stack
        .http
        .get(stack.url("/v1/events"))
        .bearer_auth(&runner)
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let (status, _) = support::send(
        stack
            .http
            .get(stack.url("/v1/connections"))
            .bearer_auth(&runner),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "an open stream is not a request");
    drop(stream);

    // `/mcp` counts against the request cap like the API: while a sync
    // with `?wait=` holds the runner's one place, `/mcp` is refused. (A
    // probe may take the place first, and the sync then gets the 429: it is
    // sent again.)
    let hold = || {
        let (http, url, token) = (
            stack.http.clone(),
            stack.url("/v1/connections/postgres-snowflake/sync?wait=20&if_running=attach"),
            runner.clone(),
        );
        tokio::spawn(async move { http.post(url).bearer_auth(token).send().await })
    };
    let mut held = hold();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mcp_status = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if held.is_finished() {
            held = hold();
            continue;
        }
        let response = stack
            .http
            .post(stack.url("/mcp"))
            .bearer_auth(&runner)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "abuse-test", "version": "1"}}
            }))
            .send()
            .await
            .expect("Airlock answers");
        if response.status() == StatusCode::TOO_MANY_REQUESTS
            || tokio::time::Instant::now() > deadline
        {
            break response.status();
        }
    };
    assert_eq!(mcp_status, StatusCode::TOO_MANY_REQUESTS);
    held.abort();
    stack.stop().await.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_endpoints_reuse_their_answers() {
    let stack = Harness::fast(Db::Sqlite).start().await;
    let before = stack.sim.sim.counters().requests_to("GET /health");
    for _ in 0..50 {
        let response = stack
            .http
            .get(stack.url("/api/public/v1/health"))
            .send()
            .await
            .expect("Airlock answers");
        assert_eq!(response.status(), StatusCode::OK);
        let response = stack
            .http
            .get(stack.url("/readyz"))
            .send()
            .await
            .expect("Airlock answers");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let calls = stack.sim.sim.counters().requests_to("GET /health") - before;
    // One call per second at most (the loop may straddle a few seconds).
    assert!(
        (1..=10).contains(&calls),
        "100 health checks made {calls} calls to Airbyte"
    );
    stack.stop().await.shutdown().await;
}

/// A request with a body but no credential is answered without waiting
/// for the body: it is never read into memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_is_not_read_before_its_sender_is_known() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stack = Harness::fast(Db::Sqlite)
        .set("server", "body_timeout_secs", 60)
        .start()
        .await;
    let address = stack.base.trim_start_matches("http://").to_owned();
    for credential in ["", "Authorization: Bearer not-a-token\r\n"] {
        let mut socket = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connects");
        let head = format!(
            "POST /v1/connections/postgres-snowflake/sync HTTP/1.1\r\nHost: {address}\r\n{credential}Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.expect("sent");
        // The body never comes; the answer does, long before the body
        // timeout.
        let mut answer = vec![0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(20), socket.read(&mut answer))
            .await
            .expect("answered without the body")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    stack.stop().await.shutdown().await;
}

/// Python's requests writes its whole body before reading the answer:
/// it gets the 413 (and an unauthenticated one the 401), not a broken pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_write_their_whole_body_first_read_the_answer() {
    let stack = Harness::fast(Db::Sqlite).start().await;
    let report = support::run_python(
        "big_bodies.py",
        &[
            ("AIRLOCK_URL", stack.base.clone()),
            ("AIRLOCK_TOKEN", stack.token("runner")),
        ],
    )
    .await;
    let last = report.lines().last().unwrap_or_default();
    let statuses: Value = serde_json::from_str(last).expect("a JSON report");
    assert_eq!(
        statuses,
        serde_json::json!({"too_large": 413, "unauthenticated": 401, "too_large_unauthenticated": 413})
    );
    stack.stop().await.shutdown().await;
}

/// Starting a console login writes a row: one address may start only so
/// many per window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_login_starts_are_bounded_per_address() {
    let stack = Harness::fast(Db::Sqlite)
        .set("server", "refusals_per_address", 5)
        .start()
        .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut answered: BTreeMap<u16, u64> = BTreeMap::new();
    for _ in 0..12 {
        let response = browser
            .get(stack.url("/console/login"))
            .send()
            .await
            .expect("Airlock answers");
        *answered.entry(response.status().as_u16()).or_default() += 1;
    }
    assert_eq!(answered, BTreeMap::from([(303, 5), (429, 7)]));
    let records = records_of(&stack, "console.login").await;
    assert_eq!(records.len(), 1, "the first refusal; the rest are counted");
    assert_eq!(records[0].entry.outcome.as_deref(), Some("429"));
    stack.stop().await.shutdown().await;
}

/// Unknown connections (a reference, a list item) cannot make Airlock
/// re-list Airbyte on every request: misses share one listing per cooldown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_share_one_listing_of_airbyte_per_cooldown() {
    let stack = Harness::fast(Db::Sqlite).start().await;
    let reader = stack.token("reader");
    let (status, _) = support::send(
        stack
            .http
            .get(stack.url("/v1/connections"))
            .bearer_auth(&reader),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let listings = || stack.sim.sim.counters().requests_to("GET /connections");
    let before = listings();
    let misses: Vec<_> = (0..30)
        .map(|i| {
            let request = stack
                .http
                .get(stack.url(&format!("/v1/connections/no-such-connection-{i}")))
                .bearer_auth(&reader);
            tokio::spawn(async move { request.send().await.expect("answers").status() })
        })
        .collect();
    for miss in misses {
        assert_eq!(miss.await.expect("joined"), StatusCode::NOT_FOUND);
    }
    // What the front's list filtering asks for when an item names an
    // unknown connection, concurrently.
    let catalog = stack.state.catalog();
    let refreshes = futures_util::future::join_all((0..30).map(|_| catalog.refresh_after_miss()));
    for refreshed in refreshes.await {
        refreshed.expect("Airbyte answers");
    }
    let made = listings() - before;
    assert!(
        (1..=3).contains(&made),
        "60 misses made {made} listings of Airbyte's connections"
    );
    stack.stop().await.shutdown().await;
}

/// A `Last-Event-ID` replay from the start of a long timeline of jobs the
/// caller may not read goes page by page and still delivers exactly what
/// it may read, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_far_back_pages_through_what_the_caller_cannot_see() {
    let stack = Harness::fast(Db::Sqlite)
        .without_role_grants()
        .grant(crate::harness::Grant::role("admin"))
        .grant(crate::harness::Grant::role("runner"))
        .grant(crate::harness::Grant::role("reader").connections(&["postgres-snowflake"]))
        .start()
        .await;
    let admin = stack.token("admin");
    let (status, connections) = stack.client.get("/v1/connections", "admin").await;
    assert_eq!(status, StatusCode::OK, "{connections}");
    let others: Vec<String> = connections["data"]
        .as_array()
        .expect("connections")
        .iter()
        .filter(|c| c["slug"] != "postgres-snowflake" && c["status"] == "active")
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    assert!(!others.is_empty());
    // Some hundreds of events the reader may not see, then its own.
    let mut hidden = Vec::new();
    for i in 0..90 {
        let connection = &others[i % others.len()];
        let (status, job) = support::send(
            stack
                .http
                .post(stack.url(&format!("/v1/connections/{connection}/sync")))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        hidden.push(support::id_of(&job));
    }
    support::wait_all_terminal(&stack.client, &hidden, Duration::from_secs(120)).await;
    let mine = stack.client.accepted_sync("postgres-snowflake").await;
    stack.client.wait_terminal(&mine).await;
    let expected: Vec<i64> = stack
        .client
        .events(&mine)
        .await
        .into_iter()
        .map(|(seq, _, _)| seq)
        .collect();
    let latest = stack
        .store()
        .await
        .latest_event_seq()
        .await
        .expect("the timeline");
    assert!(latest > 200, "more than a page (200) of events: {latest}");

    let mut response = stack
        .http
        .get(stack.url("/v1/events"))
        .bearer_auth(stack.token("reader"))
        .header("last-event-id", "0")
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(response.status(), StatusCode::OK);
    let mut text = String::new();
    let mut seen: Vec<i64> = Vec::new();
    let read = async {
        while seen.last() != expected.last() {
            let Some(chunk) = response.chunk().await.expect("the stream reads") else {
                break;
            };
            text.push_str(&String::from_utf8_lossy(&chunk));
            seen = text
                .lines()
                .filter_map(|line| line.strip_prefix("id:"))
                .filter_map(|id| id.trim().parse().ok())
                .collect();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the replay reaches the caller's events");
    assert_eq!(
        seen, expected,
        "only the reader's job, every state, in order"
    );
    stack.stop().await.shutdown().await;
}
