//! A hook for metrics: what every exchange with Airbyte cost and how it ended,
//! reported to the application without this crate knowing how it counts.

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
