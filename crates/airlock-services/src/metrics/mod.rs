//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! A small registry instead of a metrics crate: [`Counter`] and [`Histogram`]
//! families keyed by label values (a mutex'd map of atomics; the lock is held
//! only to find a series), the families Airlock keeps in [`Metrics`], and
//! [`render`], which adds what is read from the database at scrape time (jobs
//! by state, the queue depth, the audit trail's length).
//!
//! Labels never carry ids, paths or anything a caller chose: routes are
//! templates, and a family that would grow past [`MAX_SERIES`] label sets
//! folds the rest into one `_overflow` series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use airlock_domain::policy::Permission;

mod exposition;

pub use exposition::{StoreFigures, render};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Most label sets one family keeps; later ones share an `_overflow` series.
pub const MAX_SERIES: usize = 1_000;

/// Latency buckets in seconds, from 5 ms to 30 s (Airbyte's default timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Label values to series, shared by both kinds of family.
#[derive(Debug)]
struct Series<T> {
    labels: &'static [&'static str],
    map: Mutex<BTreeMap<Vec<String>, Arc<T>>>,
}

impl<T> Series<T> {
    fn new(labels: &'static [&'static str]) -> Self {
        Self {
            labels,
            map: Mutex::new(BTreeMap::new()),
        }
    }

    /// The series of these label values, made by `make` on first use.
    fn get(&self, values: &[&str], make: impl FnOnce() -> T) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len(), "label values");
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        if let Some(series) = map.get(&key) {
            return Arc::clone(series);
        }
        let key = if map.len() < MAX_SERIES {
            key
        } else {
            vec!["_overflow".to_owned(); self.labels.len()]
        };
        Arc::clone(map.entry(key).or_insert_with(|| Arc::new(make())))
    }

    fn snapshot(&self) -> Vec<(Vec<String>, Arc<T>)> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }
}

/// A family of monotonic counters.
#[derive(Debug)]
pub struct Counter {
    name: &'static str,
    help: &'static str,
    series: Series<AtomicU64>,
}

impl Counter {
    /// An empty family; `name` ends in `_total` by convention.
    pub fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Self {
            name,
            help,
            series: Series::new(labels),
        }
    }

    /// Adds one to the series of `values` (one per label, in order).
    pub fn inc(&self, values: &[&str]) {
        self.series
            .get(values, || AtomicU64::new(0))
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The current value of a series (0 when it was never touched).
    pub fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        self.series
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .map_or(0, |value| value.load(Ordering::Relaxed))
    }

    fn encode(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (values, value) in self.series.snapshot() {
            sample(
                out,
                self.name,
                self.series.labels,
                &values,
                None,
                &value.load(Ordering::Relaxed).to_string(),
            );
        }
    }
}

/// One histogram series: a count per bucket (not cumulative; the last one is
/// `+Inf`) and the sum of observations in nanoseconds.
#[derive(Debug)]
struct Buckets {
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
}

/// A family of histograms of durations, exposed in seconds.
#[derive(Debug)]
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    series: Series<Buckets>,
}

impl Histogram {
    /// An empty family with upper `bounds` in seconds (ascending); `name`
    /// ends in `_seconds` by convention.
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Self {
            name,
            help,
            bounds,
            series: Series::new(labels),
        }
    }

    /// Records one duration in the series of `values`.
    pub fn observe(&self, values: &[&str], duration: Duration) {
        let series = self.series.get(values, || Buckets {
            counts: (0..=self.bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        });
        let seconds = duration.as_secs_f64();
        let index = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(bucket) = series.counts.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        series.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// How many durations the series of `values` has recorded.
    pub fn count(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        self.series
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .map_or(0, |b| {
                b.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
            })
    }

    fn encode(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let bucket_name = format!("{}_bucket", self.name);
        for (values, buckets) in self.series.snapshot() {
            let mut cumulative = 0u64;
            for (i, count) in buckets.counts.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let le = self
                    .bounds
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |bound| bound.to_string());
                sample(
                    out,
                    &bucket_name,
                    self.series.labels,
                    &values,
                    Some(("le", &le)),
                    &cumulative.to_string(),
                );
            }
            let sum = Duration::from_nanos(buckets.sum_nanos.load(Ordering::Relaxed));
            sample(
                out,
                &format!("{}_sum", self.name),
                self.series.labels,
                &values,
                None,
                &sum.as_secs_f64().to_string(),
            );
            sample(
                out,
                &format!("{}_count", self.name),
                self.series.labels,
                &values,
                None,
                &cumulative.to_string(),
            );
        }
    }
}

/// `# HELP` and `# TYPE` of a family.
fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _infallible = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line: `name{label="value",...} value`.
fn sample(
    out: &mut String,
    name: &str,
    labels: &[&str],
    values: &[String],
    extra: Option<(&str, &str)>,
    value: &str,
) {
    out.push_str(name);
    let pairs = labels
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .chain(extra);
    let mut first = true;
    for (label, value) in pairs {
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(label);
        out.push_str("=\"");
        for ch in value.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                ch => out.push(ch),
            }
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// The families Airlock keeps in memory, one set per process. Cheap to share
/// behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    http_requests: Counter,
    http_duration: Histogram,
    authorizations: Counter,
    authentication_failures: Counter,
    airbyte_requests: Counter,
    airbyte_duration: Histogram,
    airbyte_retries: Counter,
    airbyte_token_refreshes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty families.
    pub fn new() -> Self {
        Self {
            http_requests: Counter::new(
                "airlock_http_requests_total",
                "HTTP requests served, by method, route template and status.",
                &["method", "route", "status"],
            ),
            http_duration: Histogram::new(
                "airlock_http_request_duration_seconds",
                "Time to answer an HTTP request (until the response head), by method and route template.",
                &["method", "route"],
                LATENCY_BUCKETS,
            ),
            authorizations: Counter::new(
                "airlock_authorization_decisions_total",
                "Authorization decisions taken for verified callers, by permission and outcome (allow or deny).",
                &["permission", "outcome"],
            ),
            authentication_failures: Counter::new(
                "airlock_authentication_failures_total",
                "Requests refused with 401, by reason code.",
                &["reason"],
            ),
            airbyte_requests: Counter::new(
                "airlock_airbyte_requests_total",
                "HTTP exchanges with Airbyte (each attempt), by route template and status (none: no answer came).",
                &["route", "status"],
            ),
            airbyte_duration: Histogram::new(
                "airlock_airbyte_request_duration_seconds",
                "Duration of each exchange with Airbyte, by route template.",
                &["route"],
                LATENCY_BUCKETS,
            ),
            airbyte_retries: Counter::new(
                "airlock_airbyte_retries_total",
                "Exchanges with Airbyte that repeated an earlier attempt of the same call, by route template.",
                &["route"],
            ),
            airbyte_token_refreshes: Counter::new(
                "airlock_airbyte_token_refreshes_total",
                "Airbyte access token refreshes, by outcome (ok or error).",
                &["outcome"],
            ),
        }
    }

    /// One request served: `route` is the matched route template (or
    /// `unmatched`), never the raw path.
    pub fn request(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let method = known_method(method);
        self.http_requests
            .inc(&[method, route, &status.to_string()]);
        self.http_duration.observe(&[method, route], latency);
    }

    /// One authorization decision.
    pub fn authorization(&self, permission: Permission, allowed: bool) {
        let outcome = if allowed { "allow" } else { "deny" };
        self.authorizations.inc(&[permission.as_str(), outcome]);
    }

    /// One 401, with the verifier's reason code.
    pub fn authentication_failure(&self, reason: &str) {
        self.authentication_failures.inc(&[reason]);
    }

    /// The request counter, for tests and diagnostics.
    pub fn http_requests(&self) -> &Counter {
        &self.http_requests
    }

    /// The in-memory families in the text format.
    pub fn encode(&self, out: &mut String) {
        self.http_requests.encode(out);
        self.http_duration.encode(out);
        self.authorizations.encode(out);
        self.authentication_failures.encode(out);
        self.airbyte_requests.encode(out);
        self.airbyte_duration.encode(out);
        self.airbyte_retries.encode(out);
        self.airbyte_token_refreshes.encode(out);
    }
}

impl airbyte_client::CallObserver for Metrics {
    fn on_call(&self, route: &str, status: Option<u16>, latency: Duration, attempt: u32) {
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.airbyte_requests.inc(&[route, &status]);
        self.airbyte_duration.observe(&[route], latency);
        if attempt > 1 {
            self.airbyte_retries.inc(&[route]);
        }
    }

    fn on_token_refresh(&self, ok: bool) {
        self.airbyte_token_refreshes
            .inc(&[if ok { "ok" } else { "error" }]);
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

    #[test]
    fn counters_render_with_escaped_labels() {
        let counter = Counter::new("t_total", "A test\ncounter.", &["a", "b"]);
        counter.inc(&["x", "say \"hi\"\\\n"]);
        counter.inc(&["x", "say \"hi\"\\\n"]);
        counter.inc(&["y", ""]);
        let mut out = String::new();
        counter.encode(&mut out);
        assert_eq!(
            out,
            "# HELP t_total A test\\ncounter.\n# TYPE t_total counter\n\
             t_total{a=\"x\",b=\"say \\\"hi\\\"\\\\\\n\"} 2\n\
             t_total{a=\"y\",b=\"\"} 1\n"
        );
        assert_eq!(counter.get(&["y", ""]), 1);
        assert_eq!(counter.get(&["z", ""]), 0);
    }

    #[test]
    fn histograms_are_cumulative_and_end_with_inf() {
        let histogram = Histogram::new("d_seconds", "Durations.", &["r"], &[0.1, 1.0]);
        for ms in [50, 500, 700, 5_000] {
            histogram.observe(&["x"], Duration::from_millis(ms));
        }
        let mut out = String::new();
        histogram.encode(&mut out);
        assert_eq!(
            out,
            "# HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{r=\"x\",le=\"0.1\"} 1\n\
             d_seconds_bucket{r=\"x\",le=\"1\"} 3\n\
             d_seconds_bucket{r=\"x\",le=\"+Inf\"} 4\n\
             d_seconds_sum{r=\"x\"} 6.25\n\
             d_seconds_count{r=\"x\"} 4\n"
        );
        assert_eq!(histogram.count(&["x"]), 4);
    }

    #[test]
    fn families_stop_growing() {
        let counter = Counter::new("c_total", "C.", &["k"]);
        for i in 0..MAX_SERIES + 10 {
            counter.inc(&[&i.to_string()]);
        }
        assert_eq!(counter.get(&["_overflow"]), 10);
        let mut out = String::new();
        counter.encode(&mut out);
        assert_eq!(out.lines().count(), 2 + MAX_SERIES + 1);
    }

    #[test]
    fn methods_are_a_closed_set() {
        let metrics = Metrics::new();
        metrics.request("BREW", "/v1/whoami", 405, Duration::from_millis(1));
        metrics.request("GET", "/v1/whoami", 200, Duration::from_millis(1));
        assert_eq!(
            metrics.http_requests().get(&["other", "/v1/whoami", "405"]),
            1
        );
        assert_eq!(
            metrics.http_requests().get(&["GET", "/v1/whoami", "200"]),
            1
        );
    }
}
