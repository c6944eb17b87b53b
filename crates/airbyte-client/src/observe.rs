//! Hooks for the application's telemetry, without this crate knowing how it
//! counts or traces: what every exchange with Airbyte cost and how it ended
//! ([`CallObserver`], for metrics), and the trace context every request
//! carries ([`TraceContext`]).

use std::time::Duration;

/// Told about every HTTP exchange with Airbyte and every token refresh, so that
/// the application can count them (Airlock's Prometheus metrics).
///
/// Called on the task making the call, right after the exchange: keep it cheap
/// and never block. It is given no URL, header or body, only the route template.
pub trait CallObserver: Send + Sync {
    /// One attempt of a call ended. `route` is the call's template, such as
    /// `GET /jobs/{jobId}` or `POST /applications/token`; `status` is Airbyte's
    /// answer, `None` when none came (connect error, timeout, lost connection);
    /// `latency` is the attempt's own duration and `attempt` its 1-based number
    /// within the call (retries and the send after a 401 are further attempts).
    fn on_call(&self, route: &str, status: Option<u16>, latency: Duration, attempt: u32);

    /// A token refresh ended: `ok` is false when no token came of it.
    fn on_token_refresh(&self, ok: bool);
}

/// Adds the W3C trace context (`traceparent`, `tracestate`) to every
/// request to Airbyte, so that Airbyte's side of a call joins the caller's
/// trace.
///
/// Called for every attempt, on the task making the call, inside its
/// `airbyte.call` span, before the credential is set: keep it cheap, and
/// add only trace-context headers.
pub trait TraceContext: Send + Sync {
    /// Adds the headers of the current span's context, if any.
    fn inject(&self, headers: &mut http::HeaderMap);
}

/// An optional trace-context hook, shared by a client and its token manager.
pub(crate) type Tracing = Option<std::sync::Arc<dyn TraceContext>>;

/// Puts the current trace context on an attempt, if anyone traces, over any
/// the caller's headers carried.
pub(crate) fn trace_context(tracing: &Tracing, headers: &mut http::HeaderMap) {
    let Some(hook) = tracing else {
        return;
    };
    let mut context = http::HeaderMap::new();
    hook.inject(&mut context);
    for (name, value) in context {
        if let Some(name) = name {
            headers.insert(name, value);
        }
    }
}

/// An optional observer, shared by a client and its token manager.
pub(crate) type Observer = Option<std::sync::Arc<dyn CallObserver>>;

/// Reports one attempt, if anyone listens.
pub(crate) fn call(
    observer: &Observer,
    route: &str,
    status: Option<u16>,
    latency: Duration,
    attempt: u32,
) {
    if let Some(observer) = observer {
        observer.on_call(route, status, latency, attempt);
    }
}
