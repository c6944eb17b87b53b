//! Prometheus metrics, served at `GET /metrics` in Prometheus's text format
//! (version 0.0.4), through `prometheus-client`: the families Airlock keeps
//! in memory ([`Metrics`]), and [`render`], which adds what is read from the
//! database at scrape time (jobs by state, the queue depth, the audit
//! trail's length).
//!
//! Labels never carry ids, paths or anything a caller chose: every value
//! comes from a closed set in the code (methods, route templates, status
//! codes, permissions, reason codes, Airbyte's route templates), so no
//! family can grow without bound.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use airlock_domain::policy::Permission;

mod exposition;

pub use exposition::{StoreFigures, render};

/// The content type of the text exposition format (0.0.4).
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Latency buckets in seconds, from 5 ms to 30 s (Airbyte's default timeout).
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A family of latency histograms with [`LATENCY_BUCKETS`].
type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: &'static str,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Authorization {
    permission: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthenticationFailure {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AirbyteCall {
    route: String,
    status: AirbyteStatus,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AirbyteRoute {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Airbyte's status code, or `none` when no answer came.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct AirbyteStatus(Option<u16>);

impl EncodeLabelValue for AirbyteStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            Some(status) => EncodeLabelValue::encode(&status, encoder),
            None => EncodeLabelValue::encode(&"none", encoder),
        }
    }
}

/// The families Airlock keeps in memory, one set per process. Cheap to share
/// behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: Family<Request, Counter>,
    http_duration: Latencies<Route>,
    authorizations: Family<Authorization, Counter>,
    authentication_failures: Family<AuthenticationFailure, Counter>,
    airbyte_requests: Family<AirbyteCall, Counter>,
    airbyte_duration: Latencies<AirbyteRoute>,
    airbyte_retries: Family<AirbyteRoute, Counter>,
    airbyte_token_refreshes: Family<Outcome, Counter>,
    trace_spans: Family<Outcome, Counter>,
}

/// What became of the finished spans of sampled traces: the trace
/// exporter's counters, in `airlock_trace_spans_total`.
#[derive(Debug, Clone)]
pub struct SpanCounters {
    exported: Counter,
    dropped: Counter,
    failed: Counter,
}

impl SpanCounters {
    /// Spans the collector took.
    pub fn exported(&self, spans: u64) {
        self.exported.inc_by(spans);
    }

    /// Spans dropped because the export queue was full.
    pub fn dropped(&self, spans: u64) {
        self.dropped.inc_by(spans);
    }

    /// Spans lost because the collector refused them or could not be reached.
    pub fn failed(&self, spans: u64) {
        self.failed.inc_by(spans);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty families, registered under their names. A counter's name gains
    /// `_total`, a histogram's its unit (`_seconds`), as Prometheus names them.
    pub fn new() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            authorizations: Family::default(),
            authentication_failures: Family::default(),
            airbyte_requests: Family::default(),
            airbyte_duration: Family::new_with_constructor(latency_histogram),
            airbyte_retries: Family::default(),
            airbyte_token_refreshes: Family::default(),
            trace_spans: Family::default(),
        };
        metrics.registered()
    }

    fn registered(mut self) -> Self {
        let registry = &mut self.registry;
        registry.register(
            "airlock_http_requests",
            "HTTP requests served, by method, route template and status",
            self.http_requests.clone(),
        );
        registry.register_with_unit(
            "airlock_http_request_duration",
            "Time to answer an HTTP request (until the response head), by method and route template",
            Unit::Seconds,
            self.http_duration.clone(),
        );
        registry.register(
            "airlock_authorization_decisions",
            "Authorization decisions taken for verified callers, by permission and outcome (allow or deny)",
            self.authorizations.clone(),
        );
        registry.register(
            "airlock_authentication_failures",
            "Requests refused with 401, by reason code",
            self.authentication_failures.clone(),
        );
        registry.register(
            "airlock_airbyte_requests",
            "HTTP exchanges with Airbyte (each attempt), by route template and status (none: no answer came)",
            self.airbyte_requests.clone(),
        );
        registry.register_with_unit(
            "airlock_airbyte_request_duration",
            "Duration of each exchange with Airbyte, by route template",
            Unit::Seconds,
            self.airbyte_duration.clone(),
        );
        registry.register(
            "airlock_airbyte_retries",
            "Exchanges with Airbyte that repeated an earlier attempt of the same call, by route template",
            self.airbyte_retries.clone(),
        );
        registry.register(
            "airlock_airbyte_token_refreshes",
            "Airbyte access token refreshes, by outcome (ok or error)",
            self.airbyte_token_refreshes.clone(),
        );
        registry.register(
            "airlock_trace_spans",
            "Finished spans of sampled traces, by outcome (exported; dropped: the export queue was full; failed: the collector refused them or was not reached)",
            self.trace_spans.clone(),
        );
        self
    }

    /// The trace exporter's counters; from this call on, the family shows
    /// all three outcomes, zeros included.
    pub fn span_counters(&self) -> SpanCounters {
        let counter = |outcome| self.trace_spans.get_or_create(&Outcome { outcome }).clone();
        SpanCounters {
            exported: counter("exported"),
            dropped: counter("dropped"),
            failed: counter("failed"),
        }
    }

    /// One request served: `route` is the matched route template (or
    /// `unmatched`), never the raw path.
    pub fn request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let key = Route {
            method: known_method(method),
            route: route.to_owned(),
        };
        self.http_duration
            .get_or_create(&key)
            .observe(latency.as_secs_f64());
        self.http_requests
            .get_or_create(&Request {
                method: key.method,
                route: key.route,
                status,
            })
            .inc();
    }

    /// One authorization decision.
    pub fn authorization(&self, permission: Permission, allowed: bool) {
        let outcome = if allowed { "allow" } else { "deny" };
        self.authorizations
            .get_or_create(&Authorization {
                permission: permission.as_str(),
                outcome,
            })
            .inc();
    }

    /// One 401, with the verifier's reason code.
    pub fn authentication_failure(&self, reason: &'static str) {
        self.authentication_failures
            .get_or_create(&AuthenticationFailure { reason })
            .inc();
    }

    /// How many requests of `method` on `route` were answered `status`.
    pub fn requests_answered(&self, method: &'static str, route: &str, status: u16) -> u64 {
        let labels = Request {
            method,
            route: route.to_owned(),
            status,
        };
        self.http_requests
            .get(&labels)
            .map_or(0, |counter| counter.get())
    }

    /// The in-memory families in the text format.
    pub fn encode(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
    }
}

impl airbyte_client::CallObserver for Metrics {
    fn on_call(&self, route: &str, status: Option<u16>, latency: Duration, attempt: u32) {
        let route = AirbyteRoute {
            route: route.to_owned(),
        };
        self.airbyte_duration
            .get_or_create(&route)
            .observe(latency.as_secs_f64());
        if attempt > 1 {
            self.airbyte_retries.get_or_create(&route).inc();
        }
        self.airbyte_requests
            .get_or_create(&AirbyteCall {
                route: route.route,
                status: AirbyteStatus(status),
            })
            .inc();
    }

    fn on_token_refresh(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.airbyte_token_refreshes
            .get_or_create(&Outcome { outcome })
            .inc();
    }
}

/// Standard methods as they are; anything else is `other`, so that a caller
/// cannot make up label values.
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(metrics: &Metrics) -> String {
        let mut out = String::new();
        metrics.encode(&mut out).expect("encodes");
        out
    }

    #[test]
    fn families_are_named_as_prometheus_names_them() {
        let metrics = Metrics::new();
        metrics.request("GET", "/v1/whoami", 200, Duration::from_millis(3));
        metrics.authorization(Permission::JobsSync, false);
        let out = encoded(&metrics);
        assert!(
            out.contains("# TYPE airlock_http_requests_total counter\n"),
            "{out}"
        );
        assert!(
            out.contains("airlock_http_requests_total{method=\"GET\",route=\"/v1/whoami\",status=\"200\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("# TYPE airlock_http_request_duration_seconds histogram\n"));
        assert!(out.contains(
            "airlock_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/whoami\",le=\"0.005\"} 1\n"
        ));
        assert!(out.contains(
            "airlock_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/whoami\"} 1\n"
        ));
        assert!(out.contains(
            "airlock_authorization_decisions_total{permission=\"jobs:sync\",outcome=\"deny\"} 1\n"
        ));
        // One period at the end of a help text, as written.
        assert!(!out.contains(".."), "{out}");
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let metrics = Metrics::new();
        for ms in [3, 40, 700, 60_000] {
            metrics.request("POST", "/v1/x", 202, Duration::from_millis(ms));
        }
        let out = encoded(&metrics);
        let bucket = |le: &str| {
            let prefix = format!(
                "airlock_http_request_duration_seconds_bucket{{method=\"POST\",route=\"/v1/x\",le=\"{le}\"}} "
            );
            out.lines()
                .find_map(|line| line.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no bucket {le}: {out}"))
                .to_owned()
        };
        assert_eq!(bucket("0.005"), "1");
        assert_eq!(bucket("0.05"), "2");
        assert_eq!(bucket("1"), "3");
        assert_eq!(bucket("30"), "3");
        assert_eq!(bucket("+Inf"), "4");
    }

    #[test]
    fn airbyte_calls_without_an_answer_are_labelled_none() {
        use airbyte_client::CallObserver as _;
        let metrics = Metrics::new();
        metrics.on_call("GET /jobs", None, Duration::from_millis(1), 1);
        metrics.on_call("GET /jobs", Some(503), Duration::from_millis(1), 2);
        let out = encoded(&metrics);
        assert!(
            out.contains("airlock_airbyte_requests_total{route=\"GET /jobs\",status=\"none\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("airlock_airbyte_requests_total{route=\"GET /jobs\",status=\"503\"} 1\n")
        );
        assert!(out.contains("airlock_airbyte_retries_total{route=\"GET /jobs\"} 1\n"));
    }

    #[test]
    fn methods_are_a_closed_set() {
        let metrics = Metrics::new();
        metrics.request("BREW", "/v1/whoami", 405, Duration::from_millis(1));
        metrics.request("GET", "/v1/whoami", 200, Duration::from_millis(1));
        assert_eq!(metrics.requests_answered("other", "/v1/whoami", 405), 1);
        assert_eq!(metrics.requests_answered("GET", "/v1/whoami", 200), 1);
        assert_eq!(metrics.requests_answered("BREW", "/v1/whoami", 405), 0);
    }
}
