//! Traces over OTLP, through the OpenTelemetry SDK: `airlock serve` sends
//! them to a collector of the test's own (OTLP/HTTP protobuf, decoded with
//! the OTLP messages; OTLP/gRPC, with the trace service's server).
//!
//! A waited sync whose caller sent a `traceparent` shows up as a `request`
//! span in the caller's trace (the caller's span is its parent), and as a
//! `dispatch` trace, linked to that request, holding the `airbyte.call` of
//! `POST /jobs` (the simulated Airbyte received that call's own
//! `traceparent`), and as the `track` span, linked to it too, of the
//! tracker recording that the sync ended.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use airbyte_sim::{RunningSim, SimConfig};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::Value;

use crate::harness::{Grant, Harness};
use crate::support::{self, Db, reliable_connections};

/// What the collector was sent: each export request, with its transport
/// (the HTTP content type, or `grpc`).
#[derive(Debug, Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, ExportTraceServiceRequest)>>>);

impl Received {
    fn push(&self, transport: String, request: ExportTraceServiceRequest) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((transport, request));
    }

    /// Every span received, each with its resource's `service.name` and
    /// the transport it came by.
    fn spans(&self) -> Vec<(String, String, Span)> {
        let requests = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all = Vec::new();
        for (transport, request) in requests.iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| {
                        r.attributes
                            .iter()
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                    })
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        all.push((transport.clone(), service.clone(), span.clone()));
                    }
                }
            }
        }
        all
    }

    /// The resource `span` was sent with.
    fn resource_of(&self, span: &Span) -> Option<Resource> {
        let requests = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        requests
            .iter()
            .flat_map(|(_, request)| &request.resource_spans)
            .find(|resource| {
                resource.scope_spans.iter().any(|scope| {
                    scope
                        .spans
                        .iter()
                        .any(|s| s.trace_id == span.trace_id && s.span_id == span.span_id)
                })
            })
            .and_then(|resource| resource.resource.clone())
    }

    /// Waits (up to 20 s) until `found` picks what it needs from the spans.
    async fn wait_for<T>(&self, found: impl Fn(&[Span]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let spans: Vec<Span> = self.spans().into_iter().map(|(_, _, s)| s).collect();
            if let Some(result) = found(&spans) {
                return result;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "missing spans; received: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A collector taking OTLP/HTTP: protobuf POSTed to `/v1/traces`.
async fn http_collector() -> (String, Received) {
    let received = Received::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let request =
                    ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf message");
                store.push(content_type, request);
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
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

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.push("grpc".to_owned(), request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A collector taking OTLP/gRPC.
async fn grpc_collector() -> (String, Received) {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let service = TraceServiceServer::new(received.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    (base, received)
}

fn text(value: &any_value::Value) -> Option<String> {
    match value {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A span attribute as text (strings, and integers written out).
fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
}

/// A span's links, as (trace id, span id) in hex.
fn links_of(span: &Span) -> Vec<(String, String)> {
    span.links
        .iter()
        .map(|link| (hex::encode(&link.trace_id), hex::encode(&link.span_id)))
        .collect()
}

fn is_int(span: &Span, key: &str) -> bool {
    span.attributes.iter().any(|kv| {
        kv.key == key
            && matches!(
                kv.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(any_value::Value::IntValue(_))
            )
    })
}

/// A simulator with one connection whose syncs succeed in a moment.
async fn simulated_airbyte() -> (RunningSim, String) {
    let sim = airbyte_sim::spawn(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let added = support::sim_add_connections(
        &support::http_client(),
        &sim,
        reliable_connections("traced", 1, 1),
    )
    .await;
    let connection = added.connection_ids[0].clone();
    (sim, connection)
}

/// The caller's trace: what an Airflow task or a gateway would send.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waited_sync_is_traced_from_the_callers_trace_to_airbyte() {
    let (sim, connection) = simulated_airbyte().await;
    let (_, client_secret) = sim.sim.credentials();
    let (collector_base, received) = http_collector().await;
    let deployment = Harness::new(Db::Sqlite)
        .airbyte(&sim)
        .airbyte_timeout(5)
        .fast_jobs()
        .without_role_grants()
        .grant(Grant::role("runner"))
        .set("telemetry", "otlp_endpoint", format!("{collector_base}/"))
        .set("telemetry", "service_name", "airlock-traced")
        // A standard variable of the batch processor: batches leave fast.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .deploy()
        .await;
    let served = deployment.serve();

    let token = served.client.token("runner");
    let request_id = format!("traced-{}", uuid::Uuid::new_v4().simple());
    let answer = served
        .client
        .http
        .post(
            served
                .client
                .url(&format!("/v1/connections/{connection}/sync?wait=60s")),
        )
        .bearer_auth(&token)
        .header("x-request-id", &request_id)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
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

    let (request, dispatch, call, track) = received
        .wait_for(|all| {
            let request = all.iter().find(|s| {
                s.name == "request" && attr(s, "request_id").as_ref() == Some(&request_id)
            })?;
            let dispatch = all
                .iter()
                .find(|s| s.name == "dispatch" && attr(s, "job_id").as_ref() == Some(&job_id))?;
            let call = all.iter().find(|s| {
                s.name == "airbyte.call"
                    && s.parent_span_id == dispatch.span_id
                    && attr(s, "route").as_deref() == Some("POST /jobs")
            })?;
            let track = all.iter().find(|s| {
                s.name == "track"
                    && attr(s, "job_id").as_ref() == Some(&job_id)
                    && attr(s, "to").as_deref() == Some("succeeded")
            })?;
            Some((
                request.clone(),
                dispatch.clone(),
                call.clone(),
                track.clone(),
            ))
        })
        .await;

    // The request: a server span in the caller's trace, under its span.
    assert_eq!(hex::encode(&request.trace_id), CALLER_TRACE);
    assert_eq!(hex::encode(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(attr(&request, "subject").as_deref(), Some("runner"));
    assert_eq!(attr(&request, "job_id"), Some(job_id.clone()));
    assert_eq!(
        attr(&request, "airbyte_job_id"),
        Some(airbyte_job_id.clone())
    );
    assert_eq!(
        attr(&request, "http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        attr(&request, "http.route").as_deref(),
        Some("/v1/connections/{reference}/sync")
    );
    assert_eq!(
        attr(&request, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(is_int(&request, "http.response.status_code"));
    // The dispatch: the root of its own trace, naming both jobs, linked to
    // the request that queued the job.
    assert!(dispatch.parent_span_id.is_empty(), "{dispatch:?}");
    assert_eq!(attr(&dispatch, "airbyte_job_id"), Some(airbyte_job_id));
    // So is the tracker's record of Airbyte's answer that the sync ended.
    for span in [&dispatch, &track] {
        assert_eq!(
            links_of(span),
            [(CALLER_TRACE.to_owned(), hex::encode(&request.span_id))],
            "{span:?}"
        );
    }
    assert_eq!(
        attr(&track, "airbyte_job_id"),
        attr(&dispatch, "airbyte_job_id")
    );
    // Its POST /jobs: a client span of the same trace, whose context
    // Airbyte received.
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(call.trace_id, dispatch.trace_id);
    assert_eq!(
        attr(&call, "http.response.status_code").as_deref(),
        Some("200")
    );
    let sent = format!(
        "00-{}-{}-01",
        hex::encode(&call.trace_id),
        hex::encode(&call.span_id)
    );
    let traced = sim.sim.counters().traced;
    assert!(
        traced
            .iter()
            .any(|t| t.route == "POST /jobs" && t.traceparent == sent),
        "Airbyte received {traced:?}, not {sent}"
    );
    for span in [&request, &dispatch, &call] {
        assert_eq!(span.trace_id.len(), 16, "{span:?}");
        assert_eq!(span.span_id.len(), 8, "{span:?}");
        assert!(
            span.start_time_unix_nano > 1_600_000_000_000_000_000
                && span.start_time_unix_nano <= span.end_time_unix_nano,
            "{span:?}"
        );
    }
    // Nothing but Airlock's own spans, by its protobuf transport, as the
    // configured service; no token in them.
    let all = received.spans();
    for (transport, service, span) in &all {
        assert_eq!(transport, "application/x-protobuf");
        assert_eq!(service, "airlock-traced");
        assert!(
            [
                "request",
                "dispatch",
                "track",
                "airbyte.call",
                "airbyte.token"
            ]
            .contains(&span.name.as_str()),
            "{span:?}"
        );
    }
    let everything = format!("{all:?}");
    assert!(!everything.contains(&token));
    assert!(!everything.contains(client_secret.as_str()));

    // A job started through the front (Airbyte starts it during the
    // request) keeps the request's context too: the tracker's record of it
    // links back.
    let front_trace = "0af7651916cd43dd8448eb211c80319c";
    let answer = served
        .client
        .http
        .post(served.client.url("/api/public/v1/jobs"))
        .bearer_auth(&token)
        .header(
            "traceparent",
            format!("00-{front_trace}-b7ad6b7169203331-01"),
        )
        .json(&serde_json::json!({"connectionId": connection, "jobType": "sync"}))
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(answer.status(), StatusCode::OK);
    let started: Value = answer.json().await.expect("Airbyte's job");
    let started_id = started["jobId"].as_i64().expect("a job id").to_string();
    let (front_request, front_track) = received
        .wait_for(|all| {
            let request = all
                .iter()
                .find(|s| s.name == "request" && hex::encode(&s.trace_id) == front_trace)?;
            let track = all.iter().find(|s| {
                s.name == "track"
                    && attr(s, "airbyte_job_id").as_ref() == Some(&started_id)
                    && attr(s, "to").as_deref() == Some("succeeded")
            })?;
            Some((request.clone(), track.clone()))
        })
        .await;
    assert_eq!(
        links_of(&front_track),
        [(front_trace.to_owned(), hex::encode(&front_request.span_id))]
    );
    drop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otel_variables_alone_export_over_grpc_and_exports_are_counted() {
    let (sim, _connection) = simulated_airbyte().await;
    let (collector_base, received) = grpc_collector().await;
    let deployment = Harness::new(Db::Sqlite)
        .airbyte(&sim)
        .without_role_grants()
        .grant(Grant::role("reader"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector_base)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_SERVICE_NAME", "airlock-grpc")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test",
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .deploy()
        .await;
    let served = deployment.serve();
    let token = served.client.token("reader");
    let answer = served
        .client
        .http
        .get(served.client.url("/v1/connections"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(answer.status(), StatusCode::OK);

    let request = received
        .wait_for(|all| {
            all.iter()
                .find(|s| s.name == "request" && hex::encode(&s.trace_id) == CALLER_TRACE)
                .cloned()
        })
        .await;
    assert_eq!(hex::encode(&request.parent_span_id), CALLER_SPAN);
    let all = received.spans();
    assert!(
        all.iter()
            .all(|(transport, service, _)| transport == "grpc" && service == "airlock-grpc")
    );
    let resource = received
        .resource_of(&request)
        .expect("the request's resource");
    assert!(
        resource
            .attributes
            .iter()
            .any(|kv| kv.key == "deployment.environment.name"),
        "{resource:?}"
    );
    // The exporter's own counters, where operators look (counted once the
    // collector's answer is back, a moment after the collector has them).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = support::send(served.client.request(
            reqwest::Method::GET,
            "/metrics",
            None,
        ))
        .await;
        assert_eq!(status, StatusCode::OK);
        let metrics = body.as_str().expect("the text exposition").to_owned();
        let count = |outcome: &str| -> u64 {
            let prefix = format!("airlock_trace_spans_total{{outcome=\"{outcome}\"}} ");
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {outcome} count in {metrics}"))
                .parse()
                .expect("a number")
        };
        assert_eq!(count("dropped"), 0, "{metrics}");
        assert_eq!(count("failed"), 0, "{metrics}");
        if count("exported") >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing counted as exported: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(served);
}
