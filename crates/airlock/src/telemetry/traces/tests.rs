use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::SpanData;
use tracing_subscriber::layer::SubscriberExt;

use airlock_services::metrics::Metrics;

use super::*;
use crate::telemetry::config::{Protocol, Queue};

/// An exporter that keeps what it is sent.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Recorder {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch);
        Ok(())
    }
}

impl Recorder {
    fn spans(&self) -> Vec<SpanData> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn export(ratio: f64, max_queue: usize) -> Export {
    Export {
        protocol: Protocol::HttpProtobuf,
        endpoint: "http://unused:4318/v1/traces".to_owned(),
        service_name: Some("airlock-test".to_owned()),
        resource_attributes: BTreeMap::from([("team".to_owned(), "data".to_owned())]),
        sampling: Sampling {
            ratio,
            parent_based: true,
        },
        queue: Queue {
            max_queue,
            max_batch: 16,
            delay: Duration::from_secs(60),
        },
    }
}

/// A started [`Traces`] whose subscriber is this thread's default while the
/// guard lives.
fn started(
    ratio: f64,
    max_queue: usize,
) -> (Traces, Recorder, Metrics, tracing::subscriber::DefaultGuard) {
    let (traces, layer) = Traces::new::<tracing_subscriber::Registry>();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let recorder = Recorder::default();
    let metrics = Metrics::new();
    assert!(traces.start(
        recorder.clone(),
        &export(ratio, max_queue),
        metrics.span_counters()
    ));
    (traces, recorder, metrics, guard)
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == Key::from(key.to_owned()))
        .map(|kv| kv.value.clone())
}

fn counted(metrics: &Metrics, outcome: &str) -> String {
    let mut text = String::new();
    metrics.encode(&mut text).expect("encodes");
    let prefix = format!("airlock_trace_spans_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or("absent")
        .to_owned()
}

#[tokio::test]
async fn spans_carry_late_fields_parents_kinds_and_the_resource() {
    let (traces, recorder, metrics, _guard) = started(1.0, 64);
    {
        let request = tracing::info_span!(
            target: "airlock::web::request_id",
            "request",
            otel.kind = "server",
            request_id = "r-1",
            subject = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let _entered = request.enter();
        request.record("subject", "alice");
        // Not exported: another name, another crate.
        let inner = tracing::info_span!(target: "airlock_store", "query");
        let _inner = inner.enter();
        let call = tracing::debug_span!(
            target: "airbyte_client::client",
            "airbyte.call",
            otel.kind = "client",
            route = "POST /jobs",
            http.response.status_code = tracing::field::Empty,
        );
        call.record("http.response.status_code", 200_i64);
        drop(call);
        tracing::info_span!(target: "hyper::client", "request").in_scope(|| {});
        request.record("http.response.status_code", 503_i64);
        request.record("otel.status_code", "error");
    }
    traces.flush().await;
    let spans = recorder.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (call, request) = (&spans[0], &spans[1]);
    assert_eq!(request.name, "request");
    assert_eq!(request.span_kind, SpanKind::Server);
    assert!(
        request.parent_span_id == opentelemetry::trace::SpanId::INVALID,
        "a root"
    );
    assert_eq!(
        attribute(request, "subject"),
        Some(Value::from("alice")),
        "recorded after the start"
    );
    assert_eq!(attribute(request, "request_id"), Some(Value::from("r-1")));
    assert_eq!(
        attribute(request, "http.response.status_code"),
        Some(Value::I64(503))
    );
    assert!(matches!(request.status, Status::Error { .. }));
    assert_eq!(call.span_kind, SpanKind::Client);
    assert_eq!(
        call.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_eq!(
        call.parent_span_id,
        request.span_context.span_id(),
        "skips the unexported span"
    );
    assert_eq!(
        attribute(call, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert!(call.start_time >= request.start_time && call.end_time <= request.end_time);
    // Nothing of the bridge's own bookkeeping reaches the attributes.
    for span in [call, request] {
        for kv in &span.attributes {
            assert!(!kv.key.as_str().starts_with("otel."), "{kv:?}");
            assert!(!kv.key.as_str().starts_with("code."), "{kv:?}");
            assert!(!kv.key.as_str().starts_with("thread."), "{kv:?}");
        }
        assert_eq!(span.instrumentation_scope.name(), "airlock");
    }
    assert_eq!(counted(&metrics, "exported"), "2");
    assert_eq!(counted(&metrics, "dropped"), "0");
}

#[tokio::test]
async fn a_trace_left_out_by_the_sampler_is_left_out_whole() {
    let (traces, recorder, _metrics, _guard) = started(0.0, 64);
    tracing::info_span!(target: "airlock_services::queue::dispatcher", "dispatch").in_scope(|| {
        tracing::debug_span!(target: "airbyte_client::client", "airbyte.call").in_scope(|| {});
    });
    traces.flush().await;
    assert!(recorder.spans().is_empty());
}

#[tokio::test]
async fn a_full_queue_drops_and_counts() {
    // The export task cannot run before this test yields: the queue of one
    // takes the first span, the next two are dropped.
    let (traces, recorder, metrics, _guard) = started(1.0, 1);
    for _ in 0..3 {
        tracing::info_span!(target: "airlock", "request").in_scope(|| {});
    }
    assert_eq!(counted(&metrics, "dropped"), "2");
    traces.flush().await;
    assert_eq!(recorder.spans().len(), 1);
    assert_eq!(counted(&metrics, "exported"), "1");
}

#[test]
fn an_unstarted_bridge_sees_nothing() {
    let (traces, layer) = Traces::new::<tracing_subscriber::Registry>();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(target: "airlock", "request");
        let mut headers = axum::http::HeaderMap::new();
        span.in_scope(|| traces.inject_current(&mut headers));
        assert!(headers.is_empty());
    });
    assert!(!traces.is_on());
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn the_callers_traceparent_is_the_parent_and_airbyte_gets_the_calls() {
    let (traces, recorder, _metrics, _guard) = started(0.0, 64);
    let mut incoming = axum::http::HeaderMap::new();
    incoming.insert("traceparent", CALLER.parse().expect("a header"));
    let mut outgoing = axum::http::HeaderMap::new();
    {
        let request = tracing::info_span!(target: "airlock::web", "request");
        traces.adopt_parent(&request, &incoming);
        let _entered = request.enter();
        let call = tracing::debug_span!(target: "airbyte_client::client", "airbyte.call");
        call.in_scope(|| traces.inject_current(&mut outgoing));
    }
    traces.flush().await;
    let spans = recorder.spans();
    // Sampled although the ratio is 0: the caller's flag decides.
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (call, request) = (&spans[0], &spans[1]);
    assert_eq!(
        request.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(request.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(request.parent_span_is_remote);
    let sent = outgoing
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .expect("a traceparent to Airbyte");
    assert_eq!(
        sent,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            call.span_context.span_id()
        ),
        "Airbyte's parent is the call span"
    );
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_trace_of_our_own() {
    let (traces, recorder, _metrics, _guard) = started(1.0, 64);
    let mut incoming = axum::http::HeaderMap::new();
    incoming.insert("traceparent", "00-zz-yy-01".parse().expect("a header"));
    {
        let request = tracing::info_span!(target: "airlock::web", "request");
        traces.adopt_parent(&request, &incoming);
        request.in_scope(|| {});
    }
    traces.flush().await;
    let spans = recorder.spans();
    assert_eq!(spans.len(), 1);
    assert!(spans[0].parent_span_id == opentelemetry::trace::SpanId::INVALID);
}

#[test]
fn only_airlocks_own_spans_are_exported() {
    let names: std::collections::BTreeSet<&str> = EXPORTED.iter().map(|(_, name)| *name).collect();
    assert_eq!(
        names,
        [
            "airbyte.call",
            "airbyte.token",
            "dispatch",
            "request",
            "track"
        ]
        .into()
    );
}

#[test]
fn the_resource_names_the_service_and_keeps_the_files_attributes() {
    let resource = resource(&export(1.0, 1));
    let get = |key: &str| resource.get(&Key::from(key.to_owned()));
    assert_eq!(get("service.name"), Some(Value::from("airlock-test")));
    assert_eq!(get("team"), Some(Value::from("data")));
    assert_eq!(
        get("service.version"),
        Some(Value::from(env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(get("telemetry.sdk.language"), Some(Value::from("rust")));
}

#[tokio::test]
async fn a_dispatch_links_to_the_request_that_queued_its_job() {
    let (traces, recorder, _metrics, _guard) = started(1.0, 64);
    let request = tracing::info_span!(target: "airlock::web", "request");
    let stored = request
        .in_scope(|| traces.current_trace_parent())
        .expect("a sampled request has a traceparent");
    drop(request);
    let dispatch = tracing::info_span!(target: "airlock_services::queue", "dispatch");
    traces.link(&dispatch, &stored);
    dispatch.in_scope(|| {});
    drop(dispatch);
    // Nothing to store outside an exported span, nothing linked to garbage.
    assert_eq!(traces.current_trace_parent(), None);
    let other = tracing::info_span!(target: "airlock_services::queue", "dispatch");
    traces.link(&other, "00-not-a-trace-01");
    drop(other);
    traces.flush().await;
    let spans = recorder.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let (request, dispatch, other) = (&spans[0], &spans[1], &spans[2]);
    assert_eq!(
        stored,
        format!(
            "00-{}-{}-01",
            request.span_context.trace_id(),
            request.span_context.span_id()
        )
    );
    assert_ne!(
        dispatch.span_context.trace_id(),
        request.span_context.trace_id(),
        "a trace of its own"
    );
    let linked: Vec<_> = dispatch
        .links
        .iter()
        .map(|link| (link.span_context.trace_id(), link.span_context.span_id()))
        .collect();
    assert_eq!(
        linked,
        [(
            request.span_context.trace_id(),
            request.span_context.span_id()
        )]
    );
    assert!(other.links.is_empty());
}
