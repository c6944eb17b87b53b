//! Reading and shipping what Airlock does: `/metrics` in the Prometheus text
//! format and its counters, the one-line-per-request log, and the secret
//! scan: nothing Airlock writes or answers (logs at trace level, every
//! response, the audit export) holds Airbyte's client secret or any bearer
//! token.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use airbyte_sim::{Sim, SimConfig};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Harness, Served, secret_env};
use crate::support::{self, Db, id_of, reliable_connections};

// ---------------------------------------------------------------------------
// A Prometheus text-format reader, strict about what Airlock must write.

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
struct Exposition {
    /// Family name to its type.
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{a="x",b="y"}` (after the name); returns the labels and the rest.
fn parse_labels(text: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = text.strip_prefix('{') else {
        return (labels, text.to_owned());
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after.to_owned());
        }
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("a label in {line:?}"));
        assert!(is_name(name), "label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.insert(name.to_owned(), value).is_none(),
            "label {name} twice in {line:?}"
        );
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else {
            assert!(rest.starts_with('}'), "labels end with }} in {line:?}");
        }
    }
}

fn parse_value(text: &str, line: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("a number, not {text:?}, in {line:?}")),
    }
}

/// Parses and checks the format: HELP then TYPE once per family, samples
/// under their family, counters named `_total`, histograms with ascending
/// cumulative buckets ending in `+Inf` equal to `_count`, and `_sum`.
fn parse_exposition(text: &str) -> Exposition {
    let mut exposition = Exposition::default();
    let mut helped: BTreeSet<String> = BTreeSet::new();
    let mut family: Option<(String, String)> = None;
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(is_name(name), "{line}");
            assert!(!help.is_empty(), "{line}");
            assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(is_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helped.contains(name), "HELP before TYPE: {line}");
            assert!(
                exposition
                    .types
                    .insert(name.to_owned(), kind.to_owned())
                    .is_none(),
                "TYPE twice: {line}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "a counter ends in _total: {line}");
            }
            family = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("a sample: {line:?}"));
        let name = &line[..name_end];
        assert!(is_name(name), "{line}");
        let (labels, rest) = parse_labels(&line[name_end..], line);
        let value = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("one space before the value: {line:?}"));
        assert!(!value.contains(' '), "no timestamps: {line:?}");
        let value = parse_value(value, line);
        let (family_name, kind) = family
            .as_ref()
            .unwrap_or_else(|| panic!("a sample before any TYPE: {line}"));
        let belongs = if kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_suffix(suffix) == Some(family_name.as_str()))
        } else {
            name == family_name
        };
        assert!(belongs, "{name} outside its family {family_name}");
        if name.ends_with("_bucket") {
            assert!(labels.contains_key("le"), "a bucket has le: {line}");
        }
        exposition.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&exposition);
    exposition
}

/// Labels as sorted pairs.
type Labels = Vec<(String, String)>;

fn check_histograms(exposition: &Exposition) {
    for (family, kind) in &exposition.types {
        if kind != "histogram" {
            continue;
        }
        // Series (labels without le) to their buckets (le, count), in order
        // of appearance.
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in exposition
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let mut key: Labels = sample
                .labels
                .iter()
                .filter(|(k, _)| *k != "le")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            key.sort();
            let le = parse_value(&sample.labels["le"], "le");
            series.entry(key).or_default().push((le, sample.value));
        }
        for (key, buckets) in series {
            for pair in buckets.windows(2) {
                assert!(pair[0].0 < pair[1].0, "{family}{key:?}: le ascending");
                assert!(pair[0].1 <= pair[1].1, "{family}{key:?}: cumulative");
            }
            let last = buckets.last().expect("a bucket");
            assert!(last.0.is_infinite(), "{family}{key:?}: ends with +Inf");
            let labels: BTreeMap<String, String> = key.into_iter().collect();
            let count = exposition
                .samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == labels)
                .unwrap_or_else(|| panic!("{family}_count{labels:?}"));
            assert_eq!(count.value, last.1, "{family}{labels:?}: +Inf == _count");
            assert!(
                exposition
                    .samples
                    .iter()
                    .any(|s| s.name == format!("{family}_sum") && s.labels == labels),
                "{family}_sum{labels:?}"
            );
        }
    }
}

impl Exposition {
    /// The value of the sample with exactly these labels, 0 when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map_or(0.0, |s| s.value)
    }

    /// The sum of the samples whose labels include these.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

#[test]
fn the_reader_refuses_malformed_expositions() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\"} 3\n";
    assert_eq!(
        parse_exposition(good).value("a_total", &[("x", "q\"")]),
        3.0
    );
    for bad in [
        "a_total 1\n",
        "# TYPE a_total counter\na_total 1\n",
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1} 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\nb_total 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        let result = std::panic::catch_unwind(|| parse_exposition(bad));
        assert!(result.is_err(), "accepted: {bad:?}");
    }
}

async fn scrape(http: &reqwest::Client, base: &str) -> (String, Exposition) {
    let response = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("a body");
    let parsed = parse_exposition(&text);
    (text, parsed)
}

// ---------------------------------------------------------------------------
// Counters move with what happens.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_decisions_and_airbyte_calls() {
    let stack = Harness::fast(Db::Sqlite).start().await;
    let connection = stack
        .add_connection(reliable_connections("metrics", 1, 1))
        .await;
    let (_, before) = scrape(&stack.http, &stack.base).await;

    let sync_path = format!("/v1/connections/{connection}/sync");
    let (status, _) = stack.post(&sync_path, "reader").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let id = stack.accepted_sync(&connection).await;
    let (status, _) = support::send(stack.request(reqwest::Method::GET, "/v1/whoami", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let job = stack.wait_terminal(&id).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let (text, after) = scrape(&stack.http, &stack.base).await;
    // Every family has a series by now: Prometheus's own linter agrees
    // with the names, types, units and help texts.
    support::assert_promtool_is_silent(&text);
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let sync_route = ("route", "/v1/connections/{reference}/sync");
    let requests = "airlock_http_requests_total";
    assert_eq!(
        delta(
            requests,
            &[("method", "POST"), sync_route, ("status", "403")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(
            requests,
            &[("method", "POST"), sync_route, ("status", "202")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            requests,
            &[
                ("method", "GET"),
                ("route", "/v1/whoami"),
                ("status", "401")
            ]
        ),
        1.0
    );
    assert!(delta(requests, &[("route", "/v1/jobs/{id}"), ("status", "200")]) >= 1.0);
    assert_eq!(
        delta(
            "airlock_http_request_duration_seconds_count",
            &[("method", "POST"), sync_route]
        ),
        2.0
    );
    // No raw path (with its connection id) ever becomes a label.
    assert!(!text.contains(&connection), "{text}");
    assert!(!text.contains(&id), "{text}");

    let decisions = "airlock_authorization_decisions_total";
    assert_eq!(
        delta(
            decisions,
            &[("permission", "jobs:sync"), ("outcome", "deny")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            decisions,
            &[("permission", "jobs:sync"), ("outcome", "allow")]
        ),
        1.0
    );
    assert_eq!(delta("airlock_authentication_failures_total", &[]), 1.0);

    let airbyte = "airlock_airbyte_requests_total";
    assert!(
        delta(airbyte, &[("route", "POST /jobs"), ("status", "200")]) >= 1.0,
        "{text}"
    );
    assert!(
        delta(airbyte, &[("route", "GET /jobs")]) >= 1.0,
        "the tracker polls"
    );
    assert!(
        after.sum(
            "airlock_airbyte_request_duration_seconds_count",
            &[("route", "POST /jobs")]
        ) >= 1.0
    );
    assert!(
        after.value(
            "airlock_airbyte_token_refreshes_total",
            &[("outcome", "ok")]
        ) >= 1.0,
        "{text}"
    );

    assert_eq!(after.types["airlock_jobs"], "gauge");
    assert!(after.value("airlock_jobs", &[("state", "succeeded")]) >= 1.0);
    assert_eq!(after.value("airlock_jobs", &[("state", "queued")]), 0.0);
    assert_eq!(after.value("airlock_job_queue_depth", &[]), 0.0);
    assert_eq!(after.value("airlock_metrics_database_up", &[]), 1.0);
    // The denial, the 401 and the sync with its job's states were audited.
    assert!(delta("airlock_audit_records_total", &[]) >= 4.0, "{text}");
    stack.stop().await;
}

// ---------------------------------------------------------------------------
// `airlock serve` end to end: the request log and the secret scan.

/// What the simulator saw of Airlock's credential: every bearer token on a
/// request, and every token it issued.
#[derive(Debug, Default)]
struct Seen {
    tokens: BTreeSet<String>,
}

/// Wraps the simulator's router to remember the tokens that go through it.
async fn remember_tokens(seen: Arc<Mutex<Seen>>, request: Request, next: Next) -> Response {
    if let Some(token) = request
        .headers()
        .get(reqwest::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        lock(&seen).tokens.insert(token.to_owned());
    }
    let issues_tokens = request.uri().path().ends_with("/applications/token");
    let response = next.run(request).await;
    if !issues_tokens {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .expect("the token answer");
    if let Ok(answer) = serde_json::from_slice::<Value>(&bytes)
        && let Some(token) = answer["access_token"].as_str()
    {
        lock(&seen).tokens.insert(token.to_owned());
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every exchange the test had with Airlock, as text: status, headers, body.
#[derive(Debug, Default)]
struct Transcript {
    text: String,
}

impl Transcript {
    /// Sends `request` with `request_id`; records and returns the answer.
    async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
        request_id: &str,
    ) -> (StatusCode, Value) {
        let response = request
            .header("x-request-id", request_id)
            .send()
            .await
            .expect("Airlock answers");
        let status = response.status();
        self.text.push_str(&format!("--- {request_id}: {status}\n"));
        for (name, value) in response.headers() {
            self.text.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        let bytes = response.bytes().await.expect("a body");
        self.text.push_str(&String::from_utf8_lossy(&bytes));
        self.text.push('\n');
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
        (status, body)
    }
}

/// The `airlock::request` line of `request_id`.
fn request_line(log: &[String], request_id: &str) -> Value {
    find_request_line(log, request_id).unwrap_or_else(|| panic!("no request line for {request_id}"))
}

fn find_request_line(log: &[String], request_id: &str) -> Option<Value> {
    log.iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["target"] == "airlock::request" && event["request_id"] == request_id)
}

/// The log once the request line of `request_id` is in it, or after a few
/// seconds.
async fn log_through(served: &Served, request_id: &str) -> Vec<String> {
    for _ in 0..200 {
        let log = served.log_lines();
        if find_request_line(&log, request_id).is_some() {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    served.log_lines()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_and_no_secret_anywhere() {
    // The simulator, with a secret of its own and two-second tokens, behind
    // a layer that remembers every token it issues or receives.
    let airbyte_secret = format!("sim-secret-{}", uuid::Uuid::new_v4().simple());
    let sim = Sim::new(SimConfig {
        client_secret: airbyte_secret.clone(),
        token_lifetime_secs: 4,
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .expect("the simulator builds");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let layer_seen = Arc::clone(&seen);
    let sim_router = sim
        .router()
        .layer(axum::middleware::from_fn(move |request, next| {
            remember_tokens(Arc::clone(&layer_seen), request, next)
        }));
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sim_base = format!("http://{}", sim_listener.local_addr().expect("addr"));
    let sim_task = tokio::spawn(async move { axum::serve(sim_listener, sim_router).await });
    let http = support::http_client();
    let add = |request: Value| {
        let http = http.clone();
        let url = format!("{sim_base}/_sim/connections");
        async move {
            let answer: Value = http
                .post(url)
                .json(&request)
                .send()
                .await
                .expect("the simulator answers")
                .json()
                .await
                .expect("JSON");
            answer["connection_ids"][0]
                .as_str()
                .expect("a connection")
                .to_owned()
        }
    };
    let long = add(reliable_connections("observed", 1, 36_000)).await;
    let short = add(reliable_connections("observed", 1, 1)).await;

    // Airlock reads the secret from its environment; the development
    // identity provider runs on its own port.
    let secret_var = "AIRLOCK_TEST_AIRBYTE_SECRET";
    let sim_url = format!("{sim_base}/api/public/v1");
    let deployment = Harness::new(Db::Sqlite)
        .airbyte_at(&sim_url, "airlock-sim", secret_env(secret_var))
        .airbyte_timeout(5)
        .fast_jobs()
        .log_level("trace")
        .env(secret_var, &airbyte_secret)
        .deploy()
        .await;
    let config_path = deployment.path().to_owned();
    assert!(
        !std::fs::read_to_string(&config_path)
            .expect("config")
            .contains(&airbyte_secret)
    );
    let idp = &deployment
        .idp
        .as_ref()
        .expect("the development provider")
        .idp;

    let served = deployment.serve();
    let base = served.client.base.clone();
    let mut transcript = Transcript::default();
    let tokens: BTreeMap<&str, String> = ["reader", "runner", "auditor", "admin"]
        .into_iter()
        .map(|role| (role, idp.token_for(role).expect("a token")))
        .collect();
    let as_role = |method: reqwest::Method, path: &str, role: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&tokens[role])
    };
    // A token whose signature was tampered with: refused, never echoed.
    let runner = &tokens["runner"];
    let forged = format!(
        "{}{}",
        &runner[..runner.len() - 6],
        if runner.ends_with("AAAAAA") {
            "BBBBBB"
        } else {
            "AAAAAA"
        }
    );

    let (status, _) = transcript
        .send(
            as_role(reqwest::Method::GET, "/v1/whoami", "reader"),
            "obs-whoami",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = transcript
        .send(http.get(format!("{base}/v1/jobs?limit=5")), "obs-no-token")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = transcript
        .send(
            http.get(format!("{base}/v1/jobs")).bearer_auth(&forged),
            "obs-forged",
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = transcript
        .send(
            as_role(
                reqwest::Method::POST,
                &format!("/v1/connections/{short}/sync"),
                "reader",
            ),
            "obs-denied",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, quick) = transcript
        .send(
            as_role(
                reqwest::Method::POST,
                &format!("/v1/connections/{short}/sync?wait=60s"),
                "runner",
            ),
            "obs-sync-wait",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quick}");
    assert_eq!(quick["state"], "succeeded");
    let (status, job) = transcript
        .send(
            as_role(
                reqwest::Method::POST,
                &format!("/v1/connections/{long}/sync"),
                "runner",
            ),
            "obs-trigger",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = id_of(&job);

    // Wait until Airbyte runs it.
    let mut polls = 0;
    let running = loop {
        polls += 1;
        let (status, job) = transcript
            .send(
                as_role(reqwest::Method::GET, &format!("/v1/jobs/{id}"), "runner"),
                &format!("obs-poll-{polls}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["state"] == "running" {
            break job;
        }
        assert!(polls < 300, "never running: {job:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Four-second tokens: Airlock refreshes each after two seconds, ahead
    // of expiry. Right after a refresh, the simulator forgets every token,
    // so the next call (the cancel's, or the tracker's) meets a 401 with a
    // token Airlock still holds fresh, and refreshes again.
    let issued = lock(&seen).tokens.len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while lock(&seen).tokens.len() == issued {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refresh ahead of expiry"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.expire_tokens();
    let airbyte_job_id = running["airbyte_job_id"].as_i64().expect("an Airbyte job");
    let (status, cancelled) = transcript
        .send(
            as_role(
                reqwest::Method::POST,
                &format!("/v1/jobs/{id}/cancel"),
                "runner",
            ),
            "obs-cancel",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    // The Airbyte-compatible front answers with Airbyte's bodies, fetched
    // with Airlock's own Airbyte token.
    let (status, front) = transcript
        .send(
            as_role(reqwest::Method::GET, "/api/public/v1/jobs?limit=5", "admin"),
            "obs-front",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{front}");
    let (status, audit) = transcript
        .send(
            as_role(reqwest::Method::GET, "/v1/audit?limit=200", "auditor"),
            "obs-audit",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let (status, _) = transcript
        .send(http.get(format!("{base}/metrics")), "obs-metrics")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, metrics) = scrape(&http, &base).await;
    assert!(
        metrics.value(
            "airlock_airbyte_token_refreshes_total",
            &[("outcome", "ok")]
        ) >= 3.0,
        "tokens were refreshed: first, ahead of expiry, after the 401"
    );
    assert!(
        metrics.sum("airlock_airbyte_requests_total", &[("status", "401")]) >= 1.0,
        "a call met the forgotten token"
    );
    assert!(
        metrics.sum(
            "airlock_airbyte_requests_total",
            &[("route", "DELETE /jobs/{jobId}")]
        ) >= 1.0
    );
    assert!(metrics.value("airlock_jobs", &[("state", "cancelled")]) >= 1.0);

    // The request log: one line per request, with its fields. Its lines
    // are written together every `request_log_flush_ms`, in order: once
    // the last request's line is there, every line before it is.
    let log = log_through(&served, "obs-metrics").await;
    let line = request_line(&log, "obs-cancel");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/v1/jobs/{id}/cancel");
    assert_eq!(line["status"], 202);
    assert!(line["latency_ms"].is_u64(), "{line}");
    assert_eq!(line["subject"], "runner");
    assert_eq!(line["job_id"], json!(id));
    assert_eq!(line["airbyte_job_id"], airbyte_job_id);
    let line = request_line(&log, "obs-trigger");
    assert_eq!(line["route"], "/v1/connections/{reference}/sync");
    assert_eq!(line["status"], 202);
    assert_eq!(line["job_id"], json!(id));
    let line = request_line(&log, "obs-denied");
    assert_eq!(
        (line["status"].clone(), line["subject"].clone()),
        (json!(403), json!("reader"))
    );
    assert!(line.get("job_id").is_none(), "{line}");
    for unauthenticated in ["obs-no-token", "obs-forged"] {
        let line = request_line(&log, unauthenticated);
        assert_eq!(line["status"], 401);
        assert_eq!(line["route"], "/v1/jobs");
        assert!(line.get("subject").is_none(), "{line}");
    }
    let requests = log
        .iter()
        .filter(|l| l.contains("\"target\":\"airlock::request\""))
        .count();
    assert!(requests >= 8 + polls, "{requests} request lines");
    // Events inside a request carry its span (request id, subject).
    assert!(
        log.iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["message"] == "denied" && e["span"]["request_id"] == "obs-denied"),
        "the denial is logged inside the request's span"
    );

    // The audit export, as a reviewer would ship it.
    let export = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "export", "--config"])
        .arg(&config_path)
        .env(secret_var, &airbyte_secret)
        .env("AIRLOCK_LOG", "trace")
        .output()
        .expect("airlock audit export runs");
    assert!(export.status.success(), "{export:?}");
    let mut exported = String::from_utf8_lossy(&export.stdout).into_owned();
    assert!(exported.contains("jobs.cancel"), "{exported}");
    exported.push_str(&String::from_utf8_lossy(&export.stderr));

    // The scan: every secret, against everything captured.
    let airbyte_tokens = lock(&seen).tokens.clone();
    assert!(
        airbyte_tokens.len() >= 3,
        "refreshed tokens: {}",
        airbyte_tokens.len()
    );
    let mut secrets: Vec<(String, String)> = vec![
        ("the Airbyte client secret".into(), airbyte_secret.clone()),
        ("a forged bearer token".into(), forged.clone()),
        (
            "a forged token's signature".into(),
            forged.rsplit('.').next().expect("a signature").to_owned(),
        ),
    ];
    for (role, token) in &tokens {
        secrets.push((format!("{role}'s bearer token"), token.clone()));
        let signature = token.rsplit('.').next().expect("a signature");
        secrets.push((format!("{role}'s token signature"), signature.to_owned()));
    }
    for token in &airbyte_tokens {
        secrets.push(("an Airbyte access token".into(), token.clone()));
    }
    let stderr = log.join("\n");
    assert!(log.len() > 100, "a trace-level log: {} lines", log.len());
    let captured = [
        ("airlock serve's log", &stderr),
        ("the HTTP answers", &transcript.text),
        ("the audit export", &exported),
    ];
    for (what, text) in captured {
        for (name, secret) in &secrets {
            if let Some(at) = text.find(secret.as_str()) {
                let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
                let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
                panic!("{name} appears in {what}:\n{}", &text[from..to]);
            }
        }
    }
    eprintln!(
        "secret scan: {} secrets against {} log lines, {} bytes of answers, {} bytes of audit export",
        secrets.len(),
        log.len(),
        transcript.text.len(),
        exported.len()
    );

    drop(served);
    sim_task.abort();
}

/// Percent-encodes what a path segment cannot carry as it is.
fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_values_cannot_forge_text_log_lines() {
    let sim = airbyte_sim::spawn(SimConfig::default())
        .await
        .expect("simulator");
    let deployment = Harness::new(Db::Sqlite)
        .airbyte(&sim)
        .text_logs()
        .deploy()
        .await;
    let served = deployment.serve();
    let http = support::http_client();
    let url = |path: &str| format!("{}{path}", served.client.base);
    // What an attacker would like a log reader to believe.
    let fake = "1999-01-01T00:00:00.000000Z  INFO airlock::request: FORGED admin signed in";
    let payload = format!("probe\n{fake}\r\n{fake}\u{1b}[1A\u{2028}{fake}");

    // `client_id` at both token endpoints, as JSON and as a form.
    for path in [
        "/api/public/v1/applications/token",
        "/v1/applications/token",
    ] {
        let json = http
            .post(url(path))
            .json(&json!({"client_id": payload, "client_secret": "s", "grant_type": "client_credentials"}))
            .send()
            .await
            .expect("answer");
        assert!(json.status().is_client_error(), "{}", json.status());
        let form = http
            .post(url(path))
            .form(&[("client_id", payload.as_str()), ("client_secret", "s")])
            .send()
            .await
            .expect("answer");
        assert!(form.status().is_client_error(), "{}", form.status());
    }
    // A path segment that decodes to the same lines, with and without a token.
    let segment = encode_segment(&payload);
    let (status, _) = served
        .client
        .post(&format!("/v1/connections/{segment}/sync"), "runner")
        .await;
    assert!(status.is_client_error(), "{status}");
    let anonymous = http
        .get(url(&format!("/v1/jobs/{segment}")))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Every value reached the log, escaped, on the line of its event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = served.log_lines();
        let client_ids = lines
            .iter()
            .filter(|l| l.contains(r"client_id=probe\n1999-01-01"))
            .count();
        if client_ids >= 4 || tokio::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = lines.join("\n");
    assert!(
        lines
            .iter()
            .filter(|l| l.contains(r"client_id=probe\n1999-01-01"))
            .count()
            >= 4,
        "each token request logged its client_id:\n{text}"
    );
    assert!(
        text.contains(r"\r\n1999-01-01")
            && text.contains(r"\u{1b}[1A")
            && text.contains(r"\u{2028}"),
        "{text}"
    );
    // Every line is one of Airlock's: it starts with the time of its event
    // (paths stay percent-encoded; decoded values are escaped).
    for line in &lines {
        let bytes = line.as_bytes();
        assert!(
            line.starts_with("20") && bytes.get(4) == Some(&b'-') && bytes.get(10) == Some(&b'T'),
            "a line that is not an event's:\n{line}\n\nin:\n{text}"
        );
        assert!(
            !line.contains('\r') && !line.contains('\u{1b}') && !line.contains('\u{2028}'),
            "{line:?}"
        );
    }
}
