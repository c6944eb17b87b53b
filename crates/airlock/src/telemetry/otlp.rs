//! Traces over OTLP/HTTP JSON, without the OpenTelemetry SDK: a
//! `tracing_subscriber` layer that turns Airlock's own spans (`request`,
//! `dispatch`, `airbyte.call`, `airbyte.token`) into OTLP spans, and a
//! background task that POSTs them in batches to `{endpoint}/v1/traces`.
//!
//! The layer is installed with the subscriber at start-up but stays inert
//! (its filter enables nothing) until [`Traces::activate`] is given the
//! configuration; only `serve` activates it. Span ends are queued without
//! waiting: when the queue is full the span is dropped and counted, so a
//! slow or absent collector never slows a request. Span fields are the
//! ones Airlock already logs (never a token, a header or a body).

use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Spans waiting for the exporter; beyond, new ones are dropped (and counted).
const QUEUE: usize = 4096;
/// Spans per POST at most.
const BATCH: usize = 512;
/// How long the exporter gathers spans before it POSTs what it has.
const LINGER: Duration = Duration::from_secs(2);
/// Timeout of one POST to the collector.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The spans exported: Airlock's request span, the dispatcher's dispatch span, and the
/// Airbyte client's call and token spans. Everything else stays local.
const EXPORTED: [(&str, &str); 4] = [
    ("airlock", "request"),
    ("airlock_services", "dispatch"),
    ("airbyte_client", "airbyte.call"),
    ("airbyte_client", "airbyte.token"),
];

/// What the exporter needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The collector's base URL; spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
    /// The share of traces kept, decided at each trace's root.
    pub sample_ratio: f64,
}

/// The switch between the layer and the exporter: empty until activated.
#[derive(Debug, Default)]
pub struct Traces {
    sink: OnceLock<Sink>,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Sink {
    spans: mpsc::Sender<SpanData>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
    sample_ratio: f64,
}

impl Traces {
    /// The layer to install in the subscriber, inert until activation.
    pub fn layer<S>(self: &Arc<Self>) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        OtlpLayer {
            traces: Arc::clone(self),
        }
        .with_filter(OtlpFilter {
            traces: Arc::clone(self),
        })
    }

    /// Starts exporting (once; later calls are ignored) with a background
    /// task on the current Tokio runtime. Returns whether this call did it.
    pub fn activate(&self, settings: Settings, http: reqwest::Client) -> bool {
        let (spans, queue) = mpsc::channel(QUEUE);
        let (flush, flushes) = mpsc::channel(1);
        let sink = Sink {
            spans,
            flush,
            sample_ratio: settings.sample_ratio,
        };
        if self.sink.set(sink).is_err() {
            return false;
        }
        let url = format!("{}/v1/traces", settings.endpoint.trim_end_matches('/'));
        tokio::spawn(export(
            queue,
            flushes,
            Exporter {
                http,
                url,
                service_name: settings.service_name,
                failing: AtomicBool::new(false),
            },
        ));
        // Span callsites registered while inactive were told "sometimes";
        // nothing cached needs rebuilding, but the level hint changed.
        tracing::callsite::rebuild_interest_cache();
        true
    }

    /// Sends what is queued now and waits for it (bounded), for a clean stop.
    pub async fn flush(&self) {
        let Some(sink) = self.sink.get() else { return };
        let (done, finished) = oneshot::channel();
        if sink.flush.send(done).await.is_ok() {
            let _ = tokio::time::timeout(POST_TIMEOUT, finished).await;
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn active(&self) -> Option<&Sink> {
        self.sink.get()
    }
}

fn is_exported(metadata: &Metadata<'_>) -> bool {
    metadata.is_span()
        && EXPORTED.iter().any(|(crate_name, name)| {
            metadata.name() == *name
                && metadata
                    .target()
                    .strip_prefix(crate_name)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// Enables the exported spans, and only once the exporter runs.
#[derive(Debug)]
struct OtlpFilter {
    traces: Arc<Traces>,
}

impl<S> Filter<S> for OtlpFilter {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.traces.active().is_some() && is_exported(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_exported(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        // The Airbyte client's spans are at debug.
        Some(if self.traces.active().is_some() {
            tracing::level_filters::LevelFilter::DEBUG
        } else {
            tracing::level_filters::LevelFilter::OFF
        })
    }
}

/// Records exported spans and queues them when they close.
#[derive(Debug)]
struct OtlpLayer {
    traces: Arc<Traces>,
}

/// Marks a span of a trace the sampler left out (and so its children).
struct Unsampled;

/// OTLP span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq)]
enum AttrValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// One span, as the layer records it and the exporter encodes it.
#[derive(Debug, Clone)]
struct SpanData {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_id: Option<[u8; 8]>,
    name: &'static str,
    kind: Kind,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<(&'static str, AttrValue)>,
}

impl SpanData {
    fn set(&mut self, key: &'static str, value: AttrValue) {
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }

    /// OTLP's status: an error for 5xx answers (`status` field), else unset.
    fn is_error(&self) -> bool {
        self.attributes.iter().any(|(key, value)| {
            *key == "status" && matches!(value, AttrValue::Int(code) if *code >= 500)
        })
    }
}

impl Visit for SpanData {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), AttrValue::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), AttrValue::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        let value =
            i64::try_from(value).map_or_else(|_| AttrValue::Str(value.to_string()), AttrValue::Int);
        self.set(field.name(), value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), AttrValue::Double(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), AttrValue::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), AttrValue::Str(format!("{value:?}")));
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A random id that is not all zeros (W3C: all zeros is invalid).
fn random_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id.iter().any(|b| *b != 0) {
            return id;
        }
    }
}

fn kind_of(name: &str) -> Kind {
    match name {
        "request" => Kind::Server,
        "airbyte.call" | "airbyte.token" => Kind::Client,
        _ => Kind::Internal,
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(sink) = self.traces.active() else {
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        // The parent as this layer sees it: the nearest exported ancestor.
        let parent = span.parent();
        let inherited = match &parent {
            Some(parent) => {
                let extensions = parent.extensions();
                if extensions.get::<Unsampled>().is_some() {
                    None
                } else {
                    extensions
                        .get::<SpanData>()
                        .map(|data| (data.trace_id, Some(data.span_id)))
                }
            }
            None => (rand::random::<f64>() < sink.sample_ratio).then(|| (random_id(), None)),
        };
        let mut extensions = span.extensions_mut();
        let Some((trace_id, parent_id)) = inherited else {
            extensions.insert(Unsampled);
            return;
        };
        let name = attrs.metadata().name();
        let mut data = SpanData {
            trace_id,
            span_id: random_id(),
            parent_id,
            name,
            kind: kind_of(name),
            start_ns: now_ns(),
            end_ns: 0,
            attributes: Vec::new(),
        };
        attrs.record(&mut data);
        extensions.insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(data) = span.extensions_mut().get_mut::<SpanData>()
        {
            values.record(data);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(sink) = self.traces.active() else {
            return;
        };
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        data.end_ns = now_ns();
        if sink.spans.try_send(data).is_err() {
            self.traces.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Where and as whom the exporter sends.
#[derive(Debug)]
struct Exporter {
    http: reqwest::Client,
    url: String,
    service_name: String,
    /// Whether the last POST failed: failures are logged when they start.
    failing: AtomicBool,
}

impl Exporter {
    async fn send(&self, spans: &[SpanData]) {
        if spans.is_empty() {
            return;
        }
        let body = encode(&self.service_name, spans);
        let sent = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(POST_TIMEOUT)
            .body(body.to_string())
            .send()
            .await;
        let failed = !matches!(&sent, Ok(answer) if answer.status().is_success());
        if self.failing.swap(failed, Ordering::Relaxed) == failed {
            return;
        }
        match sent {
            Ok(answer) if answer.status().is_success() => {
                tracing::info!("the trace collector takes spans again");
            }
            Ok(answer) => tracing::warn!(
                status = answer.status().as_u16(),
                spans = spans.len(),
                "the trace collector refused spans"
            ),
            Err(error) => tracing::warn!(
                error = %error.without_url(),
                spans = spans.len(),
                "cannot send spans to the trace collector"
            ),
        }
    }
}

/// The exporter's loop: waits for a span, gathers more for up to
/// [`LINGER`] or [`BATCH`] spans, POSTs them; a flush request sends what
/// is queued at once.
async fn export(
    mut queue: mpsc::Receiver<SpanData>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
    exporter: Exporter,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let mut flushed = None;
        tokio::select! {
            span = queue.recv() => match span {
                Some(span) => batch.push(span),
                None => return,
            },
            Some(done) = flushes.recv() => flushed = Some(done),
        }
        if flushed.is_none() {
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                tokio::select! {
                    span = queue.recv() => match span {
                        Some(span) => batch.push(span),
                        None => break,
                    },
                    Some(done) = flushes.recv() => {
                        flushed = Some(done);
                        break;
                    }
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        if flushed.is_some() {
            while let Ok(span) = queue.try_recv() {
                batch.push(span);
            }
        }
        for chunk in batch.chunks(BATCH) {
            exporter.send(chunk).await;
        }
        batch.clear();
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

fn attribute(key: &str, value: &AttrValue) -> Value {
    let value = match value {
        AttrValue::Str(s) => json!({ "stringValue": s }),
        // Protobuf's JSON mapping writes 64-bit integers as strings.
        AttrValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttrValue::Double(d) => json!({ "doubleValue": d }),
        AttrValue::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}

/// The OTLP/HTTP JSON body of an export request for `spans`.
fn encode(service_name: &str, spans: &[SpanData]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|span| {
            let mut value = json!({
                "traceId": hex::encode(span.trace_id),
                "spanId": hex::encode(span.span_id),
                "name": span.name,
                "kind": span.kind as u8,
                "startTimeUnixNano": span.start_ns.to_string(),
                "endTimeUnixNano": span.end_ns.to_string(),
                "attributes": span
                    .attributes
                    .iter()
                    .map(|(key, value)| attribute(key, value))
                    .collect::<Vec<_>>(),
                "status": if span.is_error() { json!({ "code": 2 }) } else { json!({}) },
            });
            if let Some(parent) = span.parent_id {
                value["parentSpanId"] = json!(hex::encode(parent));
            }
            value
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [attribute("service.name", &AttrValue::Str(service_name.to_owned()))]
            },
            "scopeSpans": [{
                "scope": { "name": "airlock", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }]
        }]
    })
}

/// Keeps the set of names checked in tests honest.
#[cfg(test)]
fn exported_names() -> std::collections::HashSet<&'static str> {
    EXPORTED.iter().map(|(_, name)| *name).collect()
}

#[cfg(test)]
mod tests;
