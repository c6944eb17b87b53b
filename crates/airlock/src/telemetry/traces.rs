//! Traces through the OpenTelemetry SDK: `tracing-opentelemetry` turns
//! Airlock's own spans (`request`, `dispatch`, `track`, `airbyte.call`,
//! `airbyte.token`) into OpenTelemetry spans, the SDK samples them and
//! gives them ids, and the OTLP exporter sends them over HTTP/protobuf or
//! gRPC. W3C trace context crosses both edges: an incoming `traceparent`
//! is the request span's parent, and every call to Airbyte carries the
//! `traceparent` of its `airbyte.call` span.
//!
//! The bridge is installed with the subscriber at start-up behind a filter
//! that enables nothing, so that until [`Traces::start`] (only `serve`
//! starts it) no span reaches it and a request pays nothing for traces. Finished spans wait in a bounded queue ([`queue`]): when it
//! is full a span is dropped and counted, never waited for.

mod queue;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::{EnvResourceDetector, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{
    Sampler, SamplingResult, SdkTracerProvider, ShouldSample, SpanData, SpanExporter, SpanProcessor,
};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber, level_filters::LevelFilter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use airlock_services::metrics::SpanCounters;

use super::config::{Export, Sampling};

use queue::Flush;

/// The spans exported: Airlock's request span, the dispatcher's dispatch
/// span, the tracker's span of each change it records, and the Airbyte
/// client's call and token spans. Everything else stays local.
const EXPORTED: [(&str, &str); 5] = [
    ("airlock", "request"),
    ("airlock_services", "dispatch"),
    ("airlock_services", "track"),
    ("airbyte_client", "airbyte.call"),
    ("airbyte_client", "airbyte.token"),
];

/// The instrumentation scope of every span.
const SCOPE: &str = "airlock";

/// The process's traces: the SDK's tracer provider, built at start-up with
/// a sampler and a span processor that stand in for the configured ones
/// until [`Traces::start`], and the switch of the bridge's filter.
///
/// The bridge cannot be put in later (a reloadable layer would hide it from
/// `tracing-opentelemetry`'s span extension, which finds the bridge by
/// downcasting through the subscriber), so it is there from the start and
/// what it needs from the configuration is filled in when it is known.
pub struct Traces {
    on: Arc<AtomicBool>,
    sampler: Later<Sampler>,
    processor: Later<queue::Queued>,
    flush: OnceLock<Flush>,
    /// Kept so that the tracer stays alive.
    _provider: SdkTracerProvider,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces")
            .field("on", &self.is_on())
            .finish_non_exhaustive()
    }
}

/// A part of the provider given once the configuration is known.
#[derive(Debug)]
struct Later<T>(Arc<OnceLock<T>>);

impl<T> Clone for Later<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for Later<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl ShouldSample for Later<Sampler> {
    fn should_sample(
        &self,
        parent: Option<&opentelemetry::Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        match self.0.get() {
            Some(sampler) => sampler.should_sample(parent, trace_id, name, kind, attributes, links),
            // Unreachable in practice: the bridge sees no span before start.
            None => {
                Sampler::AlwaysOff.should_sample(parent, trace_id, name, kind, attributes, links)
            }
        }
    }
}

impl SpanProcessor for Later<queue::Queued> {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if let Some(queued) = self.0.get() {
            queued.push(span);
        }
    }

    /// The SDK's flush is synchronous and would block a runtime thread;
    /// Airlock flushes through [`Traces::flush`] instead.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl Traces {
    /// The traces, and the bridge to install in the subscriber, inert until
    /// [`Traces::start`].
    pub fn new<S>() -> (Self, impl Layer<S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let sampler = Later::default();
        let processor = Later::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler.clone())
            .with_span_processor(processor.clone())
            .build();
        let scope = InstrumentationScope::builder(SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let on = Arc::new(AtomicBool::new(false));
        let bridge = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer_with_scope(scope))
            .with_context_activation(false)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(Exported {
                on: Arc::clone(&on),
            });
        let traces = Self {
            on,
            sampler,
            processor,
            flush: OnceLock::new(),
            _provider: provider,
        };
        (traces, bridge)
    }

    /// Whether spans are being exported.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Starts exporting to `exporter` (once; later calls return false),
    /// with a background task on the current Tokio runtime.
    pub fn start<E: SpanExporter + 'static>(
        &self,
        mut exporter: E,
        export: &Export,
        counters: SpanCounters,
    ) -> bool {
        // The sampler is set once: whoever sets it is the one start.
        if self.sampler.0.set(sampler(export.sampling)).is_err() {
            return false;
        }
        exporter.set_resource(&resource(export));
        let (queued, flush) = queue::start(exporter, export.queue, counters);
        let _ = self.processor.0.set(queued);
        let _ = self.flush.set(flush);
        self.on.store(true, Ordering::Relaxed);
        // Callsites registered while off were told "sometimes"; the level
        // hint changed.
        tracing::callsite::rebuild_interest_cache();
        true
    }

    /// Sends what is queued now and waits for it (bounded), for a clean stop.
    pub async fn flush(&self) {
        if let Some(flush) = self.flush.get() {
            flush.now().await;
        }
    }

    /// Makes the caller's trace, from `traceparent` (and `tracestate`), the
    /// parent of `span`, which must not have started yet. Nothing when
    /// traces are off or the header is absent or malformed.
    pub fn adopt_parent(&self, span: &tracing::Span, headers: &axum::http::HeaderMap) {
        if !self.is_on() || !headers.contains_key("traceparent") {
            return;
        }
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        if parent.span().span_context().is_valid() {
            // Fails only when the span is not exported, which is no error.
            let _ = span.set_parent(parent);
        }
    }

    /// The current span's `traceparent`, when it is exported and sampled.
    pub fn current_trace_parent(&self) -> Option<String> {
        if !self.is_on() {
            return None;
        }
        let context = tracing::Span::current().context();
        if !context.span().span_context().is_sampled() {
            return None;
        }
        let mut carrier = std::collections::HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        carrier.remove("traceparent")
    }

    /// Links `span`, not yet entered, to the span `trace_parent` names;
    /// nothing when traces are off or it does not parse.
    pub fn link(&self, span: &tracing::Span, trace_parent: &str) {
        if !self.is_on() {
            return;
        }
        let carrier =
            std::collections::HashMap::from([("traceparent".to_owned(), trace_parent.to_owned())]);
        let linked = TraceContextPropagator::new().extract(&carrier);
        let linked = linked.span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }

    /// Sets `traceparent` (and `tracestate`) of the current span, when it
    /// is exported, on an outgoing request.
    pub fn inject_current(&self, headers: &mut axum::http::HeaderMap) {
        if !self.is_on() {
            return;
        }
        let context = tracing::Span::current().context();
        if context.span().span_context().is_valid() {
            TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
        }
    }
}

/// `service.name` and the other attributes of the process: the SDK's own,
/// the file's, `OTEL_RESOURCE_ATTRIBUTES`, then the service name the
/// configuration settled on.
fn resource(export: &Export) -> Resource {
    let mut builder = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .with_attributes(
            export
                .resource_attributes
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .with_detector(Box::new(EnvResourceDetector::new()));
    if let Some(name) = &export.service_name {
        builder = builder.with_service_name(name.clone());
    }
    builder.build()
}

/// The SDK's sampler for a [`Sampling`].
fn sampler(sampling: Sampling) -> Sampler {
    let own = if sampling.ratio >= 1.0 {
        Sampler::AlwaysOn
    } else if sampling.ratio <= 0.0 {
        Sampler::AlwaysOff
    } else {
        Sampler::TraceIdRatioBased(sampling.ratio)
    };
    if sampling.parent_based {
        Sampler::ParentBased(Box::new(own))
    } else {
        own
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

/// Lets the exported spans reach the bridge, and only once it runs.
#[derive(Debug)]
struct Exported {
    on: Arc<AtomicBool>,
}

impl<S> Filter<S> for Exported {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        self.on.load(Ordering::Relaxed) && is_exported(metadata)
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if is_exported(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The Airbyte client's spans are at debug.
        Some(if self.on.load(Ordering::Relaxed) {
            LevelFilter::DEBUG
        } else {
            LevelFilter::OFF
        })
    }
}

#[cfg(test)]
mod tests;
