//! What the simulator saw: requests per route, responses per status, injected faults,
//! tokens issued and jobs created per connection. Tests assert on these numbers
//! ("exactly one Airbyte job per trigger") through [`crate::Sim::counters`] or
//! `GET /_sim/counters`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A snapshot of the simulator's counters. Route keys are `"METHOD TEMPLATE"` with
/// the template relative to `/api/public/v1` (`"POST /jobs"`, `"GET /jobs/{jobId}"`,
/// `"POST /applications/token"`), or absolute for the Configuration API
/// (`"POST /api/v1/connections/get"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Requests received per route, counted before any fault is injected.
    pub requests: BTreeMap<String, u64>,
    /// Responses sent per route and status (`"200"`, `"409"`...), injected ones included.
    pub responses: BTreeMap<String, BTreeMap<String, u64>>,
    /// Faults injected per route and kind (`"latency"`, `"error"`, `"rate_limit"`,
    /// `"drop"`, `"blackhole"`, `"expire_token"`).
    pub faults: BTreeMap<String, BTreeMap<String, u64>>,
    /// Tokens issued by `POST /applications/token`.
    pub tokens_issued: u64,
    /// Jobs created through `POST /jobs`, per connection.
    pub jobs_created: BTreeMap<Uuid, u64>,
    /// Jobs Airbyte started on its own (scheduler, admin bulk starts, history).
    pub jobs_started_by_airbyte: BTreeMap<Uuid, u64>,
    /// Jobs cancelled through `DELETE /jobs/{jobId}`.
    pub jobs_cancelled: u64,
    /// The last requests' `METHOD path?query`, exactly as received, oldest
    /// first (at most [`TARGETS_KEPT`]): what a proxy in front really sent.
    pub targets: Vec<String>,
    /// The last requests that carried a W3C `traceparent`, oldest first (at
    /// most [`TARGETS_KEPT`]): how a tracing client's context arrived.
    pub traced: Vec<Traced>,
}

/// A request that carried trace context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traced {
    /// Its route key (`"POST /jobs"`).
    pub route: String,
    /// Its `traceparent` header, as received.
    pub traceparent: String,
}

/// How many request targets [`Counters::targets`] keeps.
pub const TARGETS_KEPT: usize = 1_000;

impl Counters {
    /// Requests received on one route key, e.g. `"POST /jobs"`.
    pub fn requests_to(&self, route: &str) -> u64 {
        self.requests.get(route).copied().unwrap_or(0)
    }

    /// Responses with `status` sent on one route key.
    pub fn responses_to(&self, route: &str, status: u16) -> u64 {
        self.responses
            .get(route)
            .and_then(|m| m.get(&status.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Faults of one kind injected on one route key.
    pub fn faults_on(&self, route: &str, kind: &str) -> u64 {
        self.faults
            .get(route)
            .and_then(|m| m.get(kind))
            .copied()
            .unwrap_or(0)
    }

    /// Jobs created through the API for one connection.
    pub fn jobs_created_for(&self, connection_id: Uuid) -> u64 {
        self.jobs_created.get(&connection_id).copied().unwrap_or(0)
    }

    /// Jobs created through the API, all connections together.
    pub fn total_jobs_created(&self) -> u64 {
        self.jobs_created.values().sum()
    }

    /// Requests whose target starts with `METHOD path` (`"GET /api/public/v1/streams"`),
    /// as received, query included.
    pub fn targets_of(&self, method_and_path: &str) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|t| {
                t.strip_prefix(method_and_path)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
            })
            .map(String::as_str)
            .collect()
    }

    pub(crate) fn request(&mut self, route: &str, target: &str, traceparent: Option<&str>) {
        *self.requests.entry(route.to_owned()).or_default() += 1;
        if self.targets.len() >= TARGETS_KEPT {
            self.targets.remove(0);
        }
        let method = route.split(' ').next().unwrap_or_default();
        self.targets.push(format!("{method} {target}"));
        if let Some(traceparent) = traceparent {
            if self.traced.len() >= TARGETS_KEPT {
                self.traced.remove(0);
            }
            self.traced.push(Traced {
                route: route.to_owned(),
                traceparent: traceparent.to_owned(),
            });
        }
    }

    pub(crate) fn response(&mut self, route: &str, status: u16) {
        *self
            .responses
            .entry(route.to_owned())
            .or_default()
            .entry(status.to_string())
            .or_default() += 1;
    }

    pub(crate) fn fault(&mut self, route: &str, kind: &str) {
        *self
            .faults
            .entry(route.to_owned())
            .or_default()
            .entry(kind.to_owned())
            .or_default() += 1;
    }
}
