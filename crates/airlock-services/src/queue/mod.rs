//! The job queue at work: how a queued job is handed to Airbyte exactly
//! once, and how its state is followed until it ends.
//!
//! - [`dispatcher`]: claims queued jobs and starts them in Airbyte.
//! - [`tracker`]: follows Airbyte's jobs per workspace until they end.

pub mod dispatcher;
pub mod tracker;

/// Links the spans of a job's work to the trace of the request that queued
/// it (the application's telemetry; without one, nothing is linked).
pub trait TraceLinks: Send + Sync + std::fmt::Debug {
    /// Adds a link from `span`, not yet entered, to the span `trace_parent`
    /// (a W3C `traceparent`) names.
    fn link(&self, span: &tracing::Span, trace_parent: &str);
}
