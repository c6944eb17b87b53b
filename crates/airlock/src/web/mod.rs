//! What every HTTP door shares: the application state, the request layer
//! (request ids, spans, the request log, problem+json bodies), the body
//! reader, the per-identity limiter, console sessions, the `Caller`
//! extractor that authenticates, authorizes and audits, and `Routes`, the
//! declarations that make both a door's router and its OpenAPI document.
//!
//! The doors themselves (`api`, `front`, `mcp`, `console`) sit on top of
//! this module and never on each other; `http` assembles them.

pub mod auth;
pub mod limits;
pub mod problem;
pub mod request_id;
pub mod routes;
pub mod session;

use std::sync::{Arc, RwLock};

use airbyte_client::AirbyteClient;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use tokio::sync::Notify;

use crate::server::ServerConfig;
use airlock_domain::clock::SharedClock;
use airlock_domain::identity::Authenticator;
use airlock_domain::jobs::JobsConfig;
use airlock_domain::policy::Policy;
use airlock_services::connections::Catalog;
use airlock_services::metrics::Metrics;
use airlock_store::Store;

pub use auth::{Caller, ChannelTag};
pub use problem::{ApiError, Problem};
pub use request_id::{RequestId, RequestLog};

/// Largest request body Airlock reads (triggers and compatible-front writes
/// are small JSON documents).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The parts of [`AppState`], built by the composition root.
#[derive(Debug)]
pub struct Parts {
    /// `[server]`: the per-identity cap and the body deadline.
    pub server: ServerConfig,
    /// `[jobs]`: attempts of triggered jobs.
    pub jobs: JobsConfig,
    /// `[audit] record_reads`: successful reads are recorded too.
    pub record_reads: bool,
    /// How browsers see Airlock (console sessions, CSRF origin checks).
    pub site: session::Site,
    pub store: Store,
    pub airbyte: AirbyteClient,
    pub catalog: Arc<Catalog>,
    pub authenticator: Arc<Authenticator>,
    pub policy: Policy,
    /// Wakes the dispatcher when a job is queued.
    pub dispatch: Arc<Notify>,
    pub clock: SharedClock,
    /// The process's metrics (also the Airbyte client's observer).
    pub metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Inner {
    parts: Parts,
    /// Swapped whole on reload; readers keep the one they took.
    policy: RwLock<Arc<Policy>>,
    /// Requests in flight per identity.
    limiter: limits::IdentityLimiter,
    /// The console's sessions (cookie authentication).
    sessions: session::Sessions,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(parts: Parts) -> Self {
        let policy = RwLock::new(Arc::new(parts.policy.clone()));
        let limiter = limits::IdentityLimiter::new(parts.server.max_concurrent_per_identity);
        let sessions = session::Sessions::new(parts.store.clone());
        Self {
            inner: Arc::new(Inner {
                parts,
                policy,
                limiter,
                sessions,
            }),
        }
    }

    /// `[jobs]`, as the server started with it.
    pub fn jobs_config(&self) -> &JobsConfig {
        &self.inner.parts.jobs
    }

    /// Whether successful reads are audited (`[audit] record_reads`).
    pub fn records_reads(&self) -> bool {
        self.inner.parts.record_reads
    }

    /// How browsers see Airlock.
    pub fn site(&self) -> &session::Site {
        &self.inner.parts.site
    }

    /// The job store.
    pub fn store(&self) -> &Store {
        &self.inner.parts.store
    }

    /// Airlock's own client of Airbyte.
    pub fn airbyte(&self) -> &AirbyteClient {
        &self.inner.parts.airbyte
    }

    /// Airbyte's connections as Airlock shows them.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.parts.catalog
    }

    /// Token verification.
    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.parts.authenticator
    }

    /// Requests in flight per identity.
    pub fn limiter(&self) -> &limits::IdentityLimiter {
        &self.inner.limiter
    }

    /// The console's sessions.
    pub fn sessions(&self) -> &session::Sessions {
        &self.inner.sessions
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(
            &self
                .inner
                .policy
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Replaces the policy (reload); requests in flight keep the old one.
    pub fn set_policy(&self, policy: Policy) {
        *self
            .inner
            .policy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(policy);
    }

    /// Tells the dispatcher that a job is waiting.
    pub fn wake_dispatcher(&self) {
        self.inner.parts.dispatch.notify_one();
    }

    /// Writes a record that goes with no other change (a denial, a read).
    /// A failure is logged: the request's answer does not change.
    pub async fn audit(&self, entry: &airlock_domain::audit::Entry) {
        if let Err(error) = self.store().append_audit(entry, self.now_ms()).await {
            tracing::error!(error = %error, action = %entry.action, "cannot write the audit record");
        }
    }

    /// The clock.
    pub fn now_ms(&self) -> i64 {
        self.inner.parts.clock.now_ms()
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.parts.metrics
    }
}

/// `routes` with the request layer that Airlock's routes share: the
/// request id, span and log line outermost, then the timed body read, then
/// the body limit.
pub fn layered(routes: Router, state: AppState) -> Router {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body_in_time,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            request_id::layer,
        ))
}

/// Reads a request's body before the handler runs, within
/// `[server] body_timeout_secs` and [`MAX_BODY_BYTES`]: a client that sends
/// slowly gets 408 instead of holding a worker, one that sends too much 413.
pub async fn read_body_in_time(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let has_body = parts
        .headers
        .contains_key(axum::http::header::CONTENT_LENGTH)
        || parts
            .headers
            .contains_key(axum::http::header::TRANSFER_ENCODING);
    if !has_body {
        return next
            .run(axum::extract::Request::from_parts(parts, body))
            .await;
    }
    let declared: Option<usize> = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return ApiError::PayloadTooLarge.into_response();
    }
    let deadline = std::time::Duration::from_secs(state.inner.parts.server.body_timeout_secs);
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(bytes)) => {
            next.run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await
        }
        // Chunked past the limit, or the client went away mid-body.
        Ok(Err(_)) if declared.is_none() => ApiError::PayloadTooLarge.into_response(),
        Ok(Err(_)) => {
            ApiError::BadRequest("the request body could not be read".into()).into_response()
        }
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}
