//! Fault injection: latency, server errors, rate limiting, dropped connections,
//! black-holed requests and expired tokens, per route or for all of them.
//!
//! The [`layer`] middleware wraps every Airbyte route (public and Configuration API,
//! not `/_sim`). It counts the request first, so counters include faulted requests,
//! then applies the route's [`FaultSpec`] in this order: latency, drop, rate limit,
//! server error, token expiry, black hole.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

use crate::api::error::problem;
use crate::state::{Shared, lock};

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

/// Handed to each request by the server loop: triggering it closes the connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    pub(crate) fn trigger(&self) {
        self.0.notify_one();
    }

    pub(crate) async fn triggered(&self) {
        self.0.notified().await;
    }
}

/// The counter and fault key of a request: `"POST /jobs"`.
pub(crate) fn route_key(req: &Request) -> String {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    let path = path
        .strip_prefix("/api/public/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(&path);
    format!("{} {}", req.method(), path)
}

enum Injected {
    Drop,
    RateLimit,
    Error(u16),
    ExpireToken,
    Blackhole,
}

fn draw(shared: &Shared, spec: &FaultSpec) -> Option<Injected> {
    let mut rng = lock(&shared.rng);
    if rng.chance(spec.drop_rate) {
        return Some(Injected::Drop);
    }
    if rng.chance(spec.rate_limit_rate) {
        return Some(Injected::RateLimit);
    }
    if rng.chance(spec.error_rate) {
        let code = [500, 502, 503][rng.range(0, 2) as usize];
        return Some(Injected::Error(code));
    }
    if rng.chance(spec.expire_token_rate) {
        return Some(Injected::ExpireToken);
    }
    if rng.chance(spec.blackhole_rate) {
        return Some(Injected::Blackhole);
    }
    None
}

/// The middleware described in the module documentation.
pub(crate) async fn layer(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let route = route_key(&req);
    lock(&shared.counters).request(&route);
    let spec = shared.fault_spec(&route);
    if spec.latency_ms > 0 {
        lock(&shared.counters).fault(&route, "latency");
        tokio::time::sleep(Duration::from_millis(spec.latency_ms)).await;
    }
    let injected = draw(&shared, &spec);
    let record = |kind: &str| lock(&shared.counters).fault(&route, kind);
    let response = match injected {
        Some(Injected::Drop) => {
            record("drop");
            tracing::debug!(%route, "fault: dropping the connection");
            let kill = req.extensions().get::<ConnectionKill>().cloned();
            drop(req);
            return drop_connection(kill).await;
        }
        Some(Injected::RateLimit) => {
            record("rate_limit");
            rate_limited()
        }
        Some(Injected::Error(code)) => {
            record("error");
            server_error(code)
        }
        Some(Injected::Blackhole) => {
            record("blackhole");
            tracing::debug!(%route, "fault: processing, then never answering");
            let _processed = next.run(req).await;
            return std::future::pending().await;
        }
        Some(Injected::ExpireToken) => {
            record("expire_token");
            if let Some(token) = crate::auth::bearer(req.headers()) {
                lock(&shared.tokens).revoke(token);
            }
            next.run(req).await
        }
        None => next.run(req).await,
    };
    lock(&shared.counters).response(&route, response.status().as_u16());
    response
}

async fn drop_connection(kill: Option<ConnectionKill>) -> Response {
    if let Some(kill) = kill {
        kill.trigger();
        // The server loop drops this connection, and this future with it.
        return std::future::pending().await;
    }
    // Served by someone else's loop: fail the body so that no complete response
    // goes out and the connection is torn down.
    Response::new(Body::new(FailingBody))
}

struct FailingBody;

impl hyper::body::Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "simulated dropped connection",
        ))))
    }
}

fn rate_limited() -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({"message": "You are being rate limited."})),
    )
        .into_response();
    response.headers_mut().remove(header::RETRY_AFTER);
    response
}

fn server_error(code: u16) -> Response {
    match code {
        502 => {
            // What the ingress in front of Airbyte answers: HTML, not JSON.
            let body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
            let mut response = (StatusCode::BAD_GATEWAY, body).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            response
        }
        503 => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "https://reference.airbyte.com/reference/errors",
            "service-unavailable",
            "The server is currently unable to handle the request.",
            json!({"message": "Service Unavailable"}),
        ),
        _ => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "https://reference.airbyte.com/reference/errors",
            "unexpected-problem",
            "An unexpected problem has occurred. If this is an error that needs to be addressed, please submit a pull request or github issue.",
            json!({"message": "Internal Server Error"}),
        ),
    }
}
