//! Logging: human-readable lines by default (control characters in
//! values escaped, so that no request can add a line), one JSON object per
//! line with `--log-format json`. The filter comes from `AIRLOCK_LOG` (then `RUST_LOG`),
//! `info` by default (`rmcp`, the MCP SDK, at `warn`). Lines go to standard
//! error through [`sink`], which `serve` lets gather the request log's lines
//! ([`gather_request_log`]).
//!
//! Traces: the subscriber's first layer is the OpenTelemetry bridge
//! ([`traces`]), inert until [`start_traces`] switches it on from
//! `[telemetry]` and the `OTEL_*` variables (only `serve` does). It is
//! installed here, before any configuration is read, and started later,
//! because the subscriber is the one global Airlock has and cannot be
//! replaced once installed; its own filter keeps it independent of
//! `AIRLOCK_LOG` (the Airbyte client's spans are at debug).

mod config;
mod fields;
mod sink;
mod traces;

use std::sync::OnceLock;
use std::time::Duration;

use clap::ValueEnum;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use airlock_services::metrics::SpanCounters;

pub use config::{Export, Protocol, TelemetryConfig};
use sink::Sink;
use traces::Traces;

/// The process's traces, installed by [`init`], started by [`start_traces`].
static TRACES: OnceLock<Traces> = OnceLock::new();

/// The log's writer, installed by [`init`]; [`gather_request_log`] and
/// [`flush_logs`] change how it writes.
static SINK: OnceLock<Sink> = OnceLock::new();

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the process-wide subscriber (the one global Airlock has).
/// Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init(format: LogFormat) {
    let (traces, bridge) = Traces::new();
    if TRACES.set(traces).is_err() {
        return;
    }
    let filter = std::env::var("AIRLOCK_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        // The MCP SDK logs every stateless request's start and end at info.
        .unwrap_or_else(|| EnvFilter::new("info,rmcp=warn"));
    // Colours only for a person at a terminal: escape codes in a file or a
    // log shipper are noise (and cost a little on every line).
    let sink = SINK.get_or_init(Sink::stderr).clone();
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(sink);
    let logs = match format {
        // Values from requests (client ids, paths, slugs) cannot forge a
        // line: every field is escaped ([`fields`]).
        LogFormat::Text => fmt
            .fmt_fields(fields::EscapedFields)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(bridge)
        .with(logs)
        .try_init();
    // An error only means a subscriber is already installed (tests).
    drop(result);
}

/// Holds the request log's lines (one per request) and writes them
/// together every `interval`, from a thread of its own; other lines are
/// still written at once. Zero keeps every line written at once. `serve`
/// calls it with `[server] request_log_flush_ms`, and [`flush_logs`] when it
/// stops.
pub fn gather_request_log(interval: Duration) -> anyhow::Result<()> {
    if let Some(sink) = SINK.get() {
        sink.gather(interval)
            .map_err(|e| anyhow::anyhow!("cannot start the log's writing thread: {e}"))?;
    }
    Ok(())
}

/// Writes every held log line; later lines are written at once.
pub fn flush_logs() {
    if let Some(sink) = SINK.get() {
        sink.stop();
    }
}

/// Starts exporting traces as `export` says (see
/// [`TelemetryConfig::export`]); does nothing when already started. Needs a
/// Tokio runtime.
pub fn start_traces(export: &Export, counters: SpanCounters) -> anyhow::Result<()> {
    let Some(traces) = TRACES.get() else {
        return Ok(());
    };
    let exporter = otlp_exporter(export)?;
    if traces.start(exporter, export, counters) {
        tracing::info!(
            collector = %shown(&export.endpoint),
            protocol = export.protocol.as_str(),
            sample_ratio = export.sampling.ratio,
            parent_based = export.sampling.parent_based,
            "exporting traces over OTLP"
        );
    }
    Ok(())
}

/// The OTLP exporter for `export`: HTTP/protobuf through reqwest, or gRPC
/// through tonic. Headers (`OTEL_EXPORTER_OTLP_HEADERS`), the timeout and
/// compression are the exporter's own variables.
fn otlp_exporter(export: &Export) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let built = match export.protocol {
        Protocol::HttpProtobuf => {
            let http = reqwest::Client::builder()
                .build()
                .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for traces: {e}"))?;
            builder
                .with_http()
                .with_http_client(http)
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(&export.endpoint)
                .build()
        }
        Protocol::Grpc => builder.with_tonic().with_endpoint(&export.endpoint).build(),
    };
    built.map_err(|e| anyhow::anyhow!("cannot set up the trace exporter: {e}"))
}

/// A URL as logs may show it: scheme and host only.
fn shown(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(
        |_| "?".to_owned(),
        |url| format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?")),
    )
}

/// Sends the spans still queued (bounded wait); for a clean stop.
pub async fn flush_traces() {
    if let Some(traces) = TRACES.get() {
        traces.flush().await;
    }
}

/// Makes the caller's `traceparent` the parent of a request span not yet
/// entered; nothing when traces are off.
pub fn adopt_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if let Some(traces) = TRACES.get() {
        traces.adopt_parent(span, headers);
    }
}

/// Carries the current span's trace context to Airbyte: the Airbyte
/// client calls it for every attempt, inside the call's span.
#[derive(Debug, Clone, Copy, Default)]
pub struct AirbyteTraceContext;

impl airbyte_client::TraceContext for AirbyteTraceContext {
    fn inject(&self, headers: &mut axum::http::HeaderMap) {
        if let Some(traces) = TRACES.get() {
            traces.inject_current(headers);
        }
    }
}

/// The W3C `traceparent` of the current span when it is exported and
/// sampled: stored with a job that a request queues, so that the job's
/// dispatch links back to it.
pub fn current_trace_parent() -> Option<String> {
    TRACES.get()?.current_trace_parent()
}

/// Links a job's dispatch span to the request that queued it.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobTraceLinks;

impl airlock_services::queue::TraceLinks for JobTraceLinks {
    fn link(&self, span: &tracing::Span, trace_parent: &str) {
        if let Some(traces) = TRACES.get() {
            traces.link(span, trace_parent);
        }
    }
}
