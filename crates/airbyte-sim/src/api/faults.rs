//! The fault-injection middleware, [`layer`]. It wraps every Airbyte route (public
//! and Configuration API, not `/_sim`), counts the request first, so counters include
//! faulted requests, then draws and carries out the route's [`FaultSpec`] in this
//! order: latency, drop, rate limit, server error, token expiry, black hole. What to
//! inject is set through the `faults` module. With no fault drawn, a route with a
//! bad body set answers it instead of processing the request.

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
use serde_json::json;

use crate::api::auth::bearer;
use crate::api::error::problem;
use crate::faults::{BadBody, FaultSpec};
use crate::server::ConnectionKill;
use crate::state::{Shared, lock};

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
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|value| value.to_str().ok());
    lock(&shared.counters).request(&route, &target, traceparent);
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
            if let Some(token) = bearer(req.headers()) {
                lock(&shared.tokens).revoke(token);
            }
            next.run(req).await
        }
        None => match spec.bad_body {
            Some(bad) => {
                record("bad_body");
                bad_body(bad)
            }
            None => next.run(req).await,
        },
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

fn bad_body(bad: BadBody) -> Response {
    let (content_type, body) = bad.content();
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
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
