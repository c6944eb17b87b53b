//! Traces over OTLP: `airlock serve` with `[telemetry] otlp_endpoint` set
//! POSTs OTLP/HTTP JSON to a collector (here a recording axum server). A
//! waited sync shows up as a `request` span (the caller's request id, its
//! subject, both job ids) and as a `dispatch` trace (the Airlock job id and
//! the Airbyte job id) holding the `airbyte.call` of `POST /jobs`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use airbyte_sim::{Sim, SimConfig};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

use crate::harness::{Grant, Harness};
use crate::support::{self, Db, reliable_connections};

/// What the fake collector was sent: each body, with its content type.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let store = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let store = Arc::clone(&store);
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = serde_json::from_slice(&body).expect("the body is JSON");
                store
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((content_type, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

/// Every span received, each with `service.name` of its resource.
fn spans(received: &Received) -> Vec<Value> {
    let bodies = received.lock().unwrap_or_else(PoisonError::into_inner);
    let mut all = Vec::new();
    for (content_type, body) in bodies.iter() {
        assert_eq!(content_type, "application/json");
        for resource in body["resourceSpans"].as_array().expect("resourceSpans") {
            assert_eq!(
                resource["resource"]["attributes"][0]["key"], "service.name",
                "{resource}"
            );
            for scope in resource["scopeSpans"].as_array().expect("scopeSpans") {
                all.extend(scope["spans"].as_array().expect("spans").iter().cloned());
            }
        }
    }
    all
}

/// A span attribute as text (string values, or integers which OTLP JSON
/// writes as strings).
fn attr(span: &Value, key: &str) -> Option<String> {
    let value = &span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["value"];
    value["stringValue"]
        .as_str()
        .or_else(|| value["intValue"].as_str())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_sync_is_traced_from_request_to_airbyte_job() {
    let sim = Sim::new(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .expect("the simulator builds");
    let (client_id, client_secret) = sim.credentials();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sim_base = format!("http://{}", sim_listener.local_addr().expect("addr"));
    let sim_router = sim.router();
    tokio::spawn(async move { axum::serve(sim_listener, sim_router).await });
    let http = support::http_client();
    let added: Value = http
        .post(format!("{sim_base}/_sim/connections"))
        .json(&reliable_connections("traced", 1, 1))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON");
    let connection = added["connection_ids"][0].as_str().expect("a connection");

    let (collector_base, received) = collector().await;
    // The development identity provider on its own port; only runners.
    let deployment = Harness::new(Db::Sqlite)
        .airbyte_at(
            &format!("{sim_base}/api/public/v1"),
            &client_id,
            client_secret.as_str(),
        )
        .airbyte_timeout(5)
        .fast_jobs()
        .without_role_grants()
        .grant(Grant::role("runner"))
        .set("telemetry", "otlp_endpoint", format!("{collector_base}/"))
        .set("telemetry", "service_name", "airlock-traced")
        .deploy()
        .await;
    let idp = &deployment
        .idp
        .as_ref()
        .expect("the development provider")
        .idp;
    let served = deployment.serve();

    let token = idp.token_for("runner").expect("a token");
    let request_id = format!("traced-{}", uuid::Uuid::new_v4().simple());
    let answer = http
        .post(format!(
            "{}/v1/connections/{connection}/sync?wait=60s",
            served.client.base
        ))
        .bearer_auth(&token)
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(answer.status(), StatusCode::OK);
    let job: Value = answer.json().await.expect("a job");
    assert_eq!(job["state"], "succeeded", "{job}");
    let job_id = job["id"].as_str().expect("a job id").to_owned();
    let airbyte_job_id = job["airbyte_job_id"]
        .as_i64()
        .expect("an Airbyte job id")
        .to_string();

    // Spans leave in batches every two seconds: wait for both traces.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (request, dispatch, call, all) = loop {
        let all = spans(&received);
        let request = all
            .iter()
            .find(|s| s["name"] == "request" && attr(s, "request_id").as_ref() == Some(&request_id))
            .cloned();
        let dispatch = all
            .iter()
            .find(|s| s["name"] == "dispatch" && attr(s, "job_id").as_ref() == Some(&job_id))
            .cloned();
        let call = dispatch.as_ref().and_then(|dispatch| {
            all.iter()
                .find(|s| {
                    s["name"] == "airbyte.call"
                        && s["parentSpanId"] == dispatch["spanId"]
                        && attr(s, "route").as_deref() == Some("POST /jobs")
                })
                .cloned()
        });
        if let (Some(request), Some(dispatch), Some(call)) = (&request, &dispatch, &call) {
            break (request.clone(), dispatch.clone(), call.clone(), all);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing spans; received: {all:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The request: a server span with the caller's id, subject and jobs.
    assert_eq!(request["kind"], 2, "{request}");
    assert_eq!(attr(&request, "subject").as_deref(), Some("runner"));
    assert_eq!(attr(&request, "job_id"), Some(job_id.clone()));
    assert_eq!(
        attr(&request, "airbyte_job_id"),
        Some(airbyte_job_id.clone())
    );
    assert_eq!(attr(&request, "status").as_deref(), Some("200"));
    assert_eq!(
        attr(&request, "route").as_deref(),
        Some("/v1/connections/{reference}/sync")
    );
    // The dispatch: the root of its trace, naming both jobs.
    assert!(dispatch.get("parentSpanId").is_none(), "{dispatch}");
    assert_eq!(attr(&dispatch, "airbyte_job_id"), Some(airbyte_job_id));
    // Its POST /jobs: a client span of the same trace.
    assert_eq!(call["kind"], 3, "{call}");
    assert_eq!(call["traceId"], dispatch["traceId"]);
    assert_eq!(attr(&call, "status").as_deref(), Some("200"));
    for span in [&request, &dispatch, &call] {
        assert_eq!(span["traceId"].as_str().map(str::len), Some(32), "{span}");
        assert_eq!(span["spanId"].as_str().map(str::len), Some(16), "{span}");
        let start: u128 = span["startTimeUnixNano"]
            .as_str()
            .expect("a start")
            .parse()
            .expect("nanos");
        let end: u128 = span["endTimeUnixNano"]
            .as_str()
            .expect("an end")
            .parse()
            .expect("nanos");
        assert!(start > 1_600_000_000_000_000_000 && start <= end, "{span}");
    }
    // Nothing but Airlock's own spans is exported, and no token is in them.
    let names: std::collections::BTreeSet<&str> =
        all.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        names.is_subset(&["request", "dispatch", "airbyte.call", "airbyte.token"].into()),
        "{names:?}"
    );
    let everything = serde_json::to_string(&all).expect("JSON");
    assert!(!everything.contains(&token));
    assert!(!everything.contains(&client_secret));
    drop(served);
}
