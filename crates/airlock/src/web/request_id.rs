//! Request ids and the request log: the caller's `x-request-id` when it is
//! well-formed, a fresh one otherwise; echoed in every response and inside
//! every error body. Each request runs in a `request` span (request id,
//! method, route, subject, job ids and status once known: the span exported
//! as a trace, a child of the caller's `traceparent` when it sent one) and
//! ends with one `airlock::request` log line and its metrics.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Extensions, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;
use super::problem::{PROBLEM_JSON, Problem};

/// The header carrying the id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// Takes the caller's id when it is 1 to 128 characters of `[A-Za-z0-9._:-]`;
    /// anything else could inject into logs, so it is replaced.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 128
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            })
            .map_or_else(Self::generate, |s| Self(s.to_owned()))
    }

    /// A random (version 4) UUID from the thread's generator: `new_v4`
    /// would make a `getrandom` system call for every request.
    fn generate() -> Self {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        Self(uuid.simple().to_string())
    }
}

/// Marks a response whose body must reach the caller as it is: the
/// Airbyte-compatible front's answers (Airbyte's own, or in Airbyte's error
/// shape), which are not problem+json.
#[derive(Debug, Clone, Copy)]
pub struct PassThrough;

/// What the request's log line says beyond what the middleware sees: who
/// called and which job it was about. Handlers fill it in through the
/// request's extensions (see [`RequestLog::of`]); clones share one record.
#[derive(Debug, Clone)]
pub struct RequestLog {
    notes: Arc<Mutex<Notes>>,
    span: tracing::Span,
}

#[derive(Debug, Default)]
struct Notes {
    subject: Option<String>,
    job_id: Option<String>,
    airbyte_job_id: Option<i64>,
}

impl RequestLog {
    fn new(span: tracing::Span) -> Self {
        Self {
            notes: Arc::default(),
            span,
        }
    }

    /// The request's record, or a detached one (noted, never logged) when
    /// the request did not come through [`layer`].
    pub fn of(extensions: &Extensions) -> Self {
        extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self::new(tracing::Span::none()))
    }

    fn notes(&self) -> std::sync::MutexGuard<'_, Notes> {
        self.notes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The verified caller's subject (never a token or a claim set).
    pub fn subject(&self, subject: &str) {
        self.span.record("subject", subject);
        self.notes().subject = Some(subject.to_owned());
    }

    /// The job the request was about: Airlock's id, and Airbyte's once known.
    pub fn job(&self, job_id: &str, airbyte_job_id: Option<i64>) {
        self.span.record("job_id", job_id);
        if let Some(airbyte_job_id) = airbyte_job_id {
            self.span.record("airbyte_job_id", airbyte_job_id);
        }
        let mut notes = self.notes();
        notes.job_id = Some(job_id.to_owned());
        if airbyte_job_id.is_some() {
            notes.airbyte_job_id = airbyte_job_id;
        }
    }
}

/// Middleware: assigns the id, runs the request in its span, renders
/// problem bodies, sets the header, then logs one line and counts it.
///
/// The line (target `airlock::request`, level info) carries `request_id`,
/// `method`, `route` (the matched template, `unmatched` otherwise: never the
/// raw path or the query), `status`, `latency_ms` (until the response head)
/// and, when known, `subject`, `job_id` and `airbyte_job_id`.
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = RequestId::from_header(request.headers().get(&X_REQUEST_ID));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    // HTTP's fields under OpenTelemetry's names (the span is a trace's
    // server span); Airlock's own under its own.
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        request_id = %id.0,
        http.request.method = %method,
        http.route = %route,
        subject = tracing::field::Empty,
        job_id = tracing::field::Empty,
        airbyte_job_id = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    crate::telemetry::adopt_parent(&span, request.headers());
    let log = RequestLog::new(span.clone());
    request.extensions_mut().insert(id.clone());
    request.extensions_mut().insert(log.clone());
    let mut response = next.run(request).instrument(span).await;
    if let Some(problem) = response.extensions_mut().remove::<Problem>() {
        response = problem.into_response_with(&id.0);
    } else if (response.status().is_client_error() || response.status().is_server_error())
        && response.extensions().get::<PassThrough>().is_none()
    {
        // Errors produced by the framework itself (unknown route, bad method,
        // body too large) get the same short shape.
        let is_problem = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
        if !is_problem {
            response = framework_problem(response.status()).into_response_with(&id.0);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    let latency = started.elapsed();
    let status = response.status().as_u16();
    // As an i64, which trace exporters carry as an integer.
    log.span
        .record("http.response.status_code", i64::from(status));
    if status >= 500 {
        log.span.record("otel.status_code", "error");
    }
    state
        .metrics()
        .request(method.as_str(), &route, status, latency);
    let notes = log.notes();
    tracing::info!(
        target: "airlock::request",
        request_id = %id.0,
        method = %method,
        route = %route,
        status,
        latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
        subject = notes.subject.as_deref(),
        job_id = notes.job_id.as_deref(),
        airbyte_job_id = notes.airbyte_job_id,
        "request"
    );
    drop(notes);
    response
}

fn framework_problem(status: axum::http::StatusCode) -> Problem {
    use axum::http::StatusCode;
    let (code, title) = match status {
        StatusCode::NOT_FOUND => ("not_found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "Payload too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("unprocessable", "Unprocessable request"),
        StatusCode::BAD_REQUEST => ("bad_request", "Bad request"),
        s if s.is_server_error() => ("internal", "Internal server error"),
        _ => ("error", "Request failed"),
    };
    Problem {
        status,
        title,
        code,
        detail: None,
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_well_formed_ids_and_replaces_others() {
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::from_header(Some(&keep)).0, "abc-123_x.y:z");
        for bad in ["", "has space", "new\tline", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).ok();
            let id = RequestId::from_header(value.as_ref());
            assert_ne!(id.0, bad);
            assert_eq!(id.0.len(), 32, "a fresh uuid");
        }
    }
}
