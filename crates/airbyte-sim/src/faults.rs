//! Fault injection: latency, server errors, rate limiting, dropped connections,
//! black-holed requests and expired tokens, per route or for all of them.
//!
//! This module holds the settings, [`Faults`]. The simulator's faults middleware
//! wraps every Airbyte route (public and Configuration API, not `/_sim`). It counts
//! the request first, so counters include faulted requests, then applies the route's
//! [`FaultSpec`] in this order: latency, drop, rate limit, server error, token
//! expiry, black hole, bad body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The route keys that faults may target, one per Airbyte endpoint served.
pub const ROUTES: &[&str] = &[
    "GET /health",
    "POST /applications/token",
    "GET /workspaces",
    "GET /workspaces/{workspaceId}",
    "GET /sources",
    "GET /sources/{sourceId}",
    "GET /destinations",
    "GET /destinations/{destinationId}",
    "GET /connections",
    "GET /connections/{connectionId}",
    "GET /tags",
    "GET /jobs",
    "POST /jobs",
    "GET /jobs/{jobId}",
    "DELETE /jobs/{jobId}",
    "POST /api/v1/connections/get",
];

/// Faults to inject: a default for every route, and per-route replacements.
///
/// As JSON (`PUT /_sim/faults`) or TOML (`[faults]`):
/// `{"default": {"latency_ms": 50}, "routes": {"POST /jobs": {"blackhole_rate": 1.0}}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Applies to every route without an entry in `routes`.
    pub default: FaultSpec,
    /// Per-route specs keyed by route template (see [`ROUTES`]); an entry replaces
    /// `default` for that route entirely.
    pub routes: BTreeMap<String, FaultSpec>,
    /// An action rather than a setting: when true, every token issued so far is
    /// expired at once; the flag is then cleared.
    pub expire_tokens: bool,
}

/// What can go wrong on one route. Rates are probabilities per request in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// Delay before anything else happens, in milliseconds.
    pub latency_ms: u64,
    /// Answer 500, 502 or 503 without processing the request.
    pub error_rate: f64,
    /// Answer 429 `{"message":"You are being rate limited."}` without `Retry-After`.
    pub rate_limit_rate: f64,
    /// Close the connection without a response, before processing the request.
    pub drop_rate: f64,
    /// Process the request, then never answer: the ambiguous timeout (a job created
    /// by `POST /jobs` exists although the caller never hears of it).
    pub blackhole_rate: f64,
    /// Expire the caller's token just before checking it, so the request gets 401.
    pub expire_token_rate: f64,
    /// Answer 200 with a body that is not what the route promises, without
    /// processing the request (when no other fault was drawn).
    pub bad_body: Option<BadBody>,
}

/// A success whose body a client cannot use as the route promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BadBody {
    /// Not JSON, though labelled `application/json`.
    NotJson,
    /// A page of items, labelled `text/plain`.
    NotLabelledJson,
    /// JSON, but an array rather than an object.
    NotAnObject,
    /// An object without `data`.
    NoData,
    /// `data` that is not an array.
    DataNotAnArray,
    /// Items without their ids.
    ItemsWithoutIds,
}

impl BadBody {
    /// Every kind, for tests that try them all.
    pub const ALL: [BadBody; 6] = [
        BadBody::NotJson,
        BadBody::NotLabelledJson,
        BadBody::NotAnObject,
        BadBody::NoData,
        BadBody::DataNotAnArray,
        BadBody::ItemsWithoutIds,
    ];

    /// The content type and body answered. The items name a workspace and
    /// a connection no grant covers.
    pub fn content(self) -> (&'static str, &'static str) {
        macro_rules! item {
            () => {
                r#"{"workspaceId":"00000000-0000-4000-8000-000000000000","connectionId":"00000000-0000-4000-8000-000000000001","name":"hidden"}"#
            };
        }
        match self {
            Self::NotJson => ("application/json", "<html><body>OK</body></html>"),
            Self::NotLabelledJson => ("text/plain", concat!(r#"{"data":["#, item!(), "]}")),
            Self::NotAnObject => ("application/json", concat!("[", item!(), "]")),
            Self::NoData => ("application/json", r#"{"items":[],"next":""}"#),
            Self::DataNotAnArray => ("application/json", concat!(r#"{"data":"#, item!(), "}")),
            Self::ItemsWithoutIds => ("application/json", r#"{"data":[{"name":"hidden"}]}"#),
        }
    }
}

impl Faults {
    /// No faults at all (the default).
    pub fn none() -> Faults {
        Faults::default()
    }

    /// The same faults with one route's spec replaced.
    pub fn with_route(mut self, route: &str, spec: FaultSpec) -> Faults {
        self.routes.insert(route.to_owned(), spec);
        self
    }

    /// Rejects rates outside [0, 1] and unknown route keys, naming the culprit.
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.default.validate("default")?;
        for (route, spec) in &self.routes {
            if !ROUTES.contains(&route.as_str()) {
                return Err(format!(
                    "unknown fault route {route:?}; known routes: {}",
                    ROUTES.join(", ")
                ));
            }
            spec.validate(route)?;
        }
        Ok(())
    }

    pub(crate) fn clamp(&mut self) {
        self.default.clamp();
        for spec in self.routes.values_mut() {
            spec.clamp();
        }
    }
}

impl FaultSpec {
    fn rates(&self) -> [(&'static str, f64); 5] {
        [
            ("error_rate", self.error_rate),
            ("rate_limit_rate", self.rate_limit_rate),
            ("drop_rate", self.drop_rate),
            ("blackhole_rate", self.blackhole_rate),
            ("expire_token_rate", self.expire_token_rate),
        ]
    }

    fn validate(&self, at: &str) -> Result<(), String> {
        for (name, rate) in self.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "faults {at}: {name} must be between 0 and 1, got {rate}"
                ));
            }
        }
        Ok(())
    }

    fn clamp(&mut self) {
        for r in [
            &mut self.error_rate,
            &mut self.rate_limit_rate,
            &mut self.drop_rate,
            &mut self.blackhole_rate,
            &mut self.expire_token_rate,
        ] {
            *r = if r.is_finite() {
                r.clamp(0.0, 1.0)
            } else {
                0.0
            };
        }
    }
}
