use super::*;
use tracing_subscriber::layer::SubscriberExt;

fn sample() -> SpanData {
    SpanData {
        trace_id: [0xab; 16],
        span_id: [1, 2, 3, 4, 5, 6, 7, 8],
        parent_id: Some([0x0f; 8]),
        name: "airbyte.call",
        kind: Kind::Client,
        start_ns: 1_700_000_000_000_000_000,
        end_ns: 1_700_000_000_500_000_000,
        attributes: vec![
            ("route", AttrValue::Str("POST /jobs".to_owned())),
            ("status", AttrValue::Int(503)),
            ("ratio", AttrValue::Double(0.5)),
            ("retried", AttrValue::Bool(true)),
        ],
    }
}

#[test]
fn encodes_otlp_json() {
    let body = encode("airlock-test", &[sample()]);
    let resource = &body["resourceSpans"][0];
    assert_eq!(
        resource["resource"]["attributes"][0],
        json!({"key": "service.name", "value": {"stringValue": "airlock-test"}})
    );
    assert_eq!(resource["scopeSpans"][0]["scope"]["name"], "airlock");
    let span = &resource["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "ab".repeat(16));
    assert_eq!(span["spanId"], "0102030405060708");
    assert_eq!(span["parentSpanId"], "0f".repeat(8));
    assert_eq!(span["name"], "airbyte.call");
    assert_eq!(span["kind"], 3);
    assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
    assert_eq!(span["endTimeUnixNano"], "1700000000500000000");
    assert_eq!(
        span["attributes"],
        json!([
            {"key": "route", "value": {"stringValue": "POST /jobs"}},
            {"key": "status", "value": {"intValue": "503"}},
            {"key": "ratio", "value": {"doubleValue": 0.5}},
            {"key": "retried", "value": {"boolValue": true}},
        ])
    );
    assert_eq!(span["status"], json!({"code": 2}), "a 5xx is an error");

    let mut root = sample();
    root.parent_id = None;
    root.attributes.clear();
    let span = &encode("airlock", &[root])["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert!(span.get("parentSpanId").is_none());
    assert_eq!(span["status"], json!({}));
}

#[test]
fn ids_are_w3c_sized_random_and_not_zero() {
    let a: [u8; 16] = random_id();
    let b: [u8; 16] = random_id();
    assert_ne!(a, b);
    assert_eq!(hex::encode(a).len(), 32);
    assert_eq!(hex::encode(random_id::<8>()).len(), 16);
    assert!(
        hex::encode(a)
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn only_airlocks_own_spans_are_exported() {
    assert_eq!(
        exported_names(),
        std::collections::HashSet::from(["request", "dispatch", "airbyte.call", "airbyte.token"])
    );
}

/// A subscriber with an activated layer whose queue the test reads.
fn recording(ratio: f64) -> (impl Subscriber + Send + Sync, mpsc::Receiver<SpanData>) {
    let traces = Arc::new(Traces::default());
    let (spans, queue) = mpsc::channel(16);
    let (flush, _) = mpsc::channel(1);
    traces
        .sink
        .set(Sink {
            spans,
            flush,
            sample_ratio: ratio,
        })
        .expect("fresh");
    let subscriber = tracing_subscriber::registry().with(traces.layer());
    (subscriber, queue)
}

fn drain(queue: &mut mpsc::Receiver<SpanData>) -> Vec<SpanData> {
    std::iter::from_fn(|| queue.try_recv().ok()).collect()
}

#[test]
fn spans_carry_late_fields_parents_and_kinds() {
    let (subscriber, mut queue) = recording(1.0);
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!(
            target: "airlock::api::request_id",
            "request",
            request_id = "r-1",
            subject = tracing::field::Empty,
        );
        let _entered = request.enter();
        request.record("subject", "alice");
        // Not exported: another name, another crate.
        let inner = tracing::info_span!(target: "airlock_store", "query");
        let _inner = inner.enter();
        let call = tracing::debug_span!(
            target: "airbyte_client::client",
            "airbyte.call",
            route = "POST /jobs",
            status = tracing::field::Empty,
        );
        call.record("status", 200_u64);
        drop(call);
        tracing::info_span!(target: "hyper::client", "request").in_scope(|| {});
    });
    let spans = drain(&mut queue);
    assert_eq!(spans.len(), 2, "{spans:?}");
    let (call, request) = (&spans[0], &spans[1]);
    assert_eq!(request.name, "request");
    assert_eq!(request.kind, Kind::Server);
    assert_eq!(request.parent_id, None);
    assert_eq!(
        request.attributes,
        vec![
            ("request_id", AttrValue::Str("r-1".to_owned())),
            ("subject", AttrValue::Str("alice".to_owned())),
        ]
    );
    assert_eq!(call.kind, Kind::Client);
    assert_eq!(call.trace_id, request.trace_id);
    assert_eq!(
        call.parent_id,
        Some(request.span_id),
        "skips the unexported span"
    );
    assert!(call.attributes.contains(&("status", AttrValue::Int(200))));
    assert!(call.start_ns >= request.start_ns && call.end_ns <= request.end_ns);
}

#[test]
fn a_trace_left_out_by_the_sampler_is_left_out_whole() {
    let (subscriber, mut queue) = recording(0.0);
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!(target: "airlock_services::queue::dispatcher", "dispatch").in_scope(
            || {
                tracing::debug_span!(target: "airbyte_client::client", "airbyte.call")
                    .in_scope(|| {});
            },
        );
    });
    assert!(drain(&mut queue).is_empty());
}

#[test]
fn an_inactive_layer_records_nothing() {
    let traces = Arc::new(Traces::default());
    let subscriber = tracing_subscriber::registry().with(traces.layer());
    tracing::subscriber::with_default(subscriber, || {
        tracing::info_span!(target: "airlock", "request").in_scope(|| {});
    });
    assert_eq!(traces.dropped(), 0);
}

#[test]
fn a_full_queue_drops_and_counts() {
    let traces = Arc::new(Traces::default());
    let (spans, _queue) = mpsc::channel(1);
    let (flush, _) = mpsc::channel(1);
    traces
        .sink
        .set(Sink {
            spans,
            flush,
            sample_ratio: 1.0,
        })
        .expect("fresh");
    let subscriber = tracing_subscriber::registry().with(traces.layer());
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            tracing::info_span!(target: "airlock", "request").in_scope(|| {});
        }
    });
    assert_eq!(traces.dropped(), 2);
}
