//! The HTTP server: Airlock's own API, its middleware and error shape.
//!
//! Every request passes through the request-id middleware (id, span,
//! problem+json bodies, the request log line and its metrics), then its
//! handler. The server is built from a listener and a
//! shutdown future, so tests bind port 0 and stop it cleanly.

pub(crate) mod audit;
pub(crate) mod auth;
mod connections;
mod events;
mod jobs;
pub mod limits;
pub mod openapi;
pub mod problem;
pub mod request_id;
pub mod session;
mod whoami;

use std::future::Future;
use std::sync::{Arc, RwLock};

use airbyte_client::AirbyteClient;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::connections::Catalog;
use crate::identity::Authenticator;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::store::Store;

pub use audit::render as render_audit;
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

/// The parts of [`AppState`], built by the composition root (`crate::app`).
#[derive(Debug)]
pub struct Parts {
    pub config: Config,
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
    /// The Airbyte-compatible front's state (set by `crate::app`).
    front: std::sync::OnceLock<Arc<crate::front::Front>>,
    /// Requests in flight per identity.
    limiter: limits::IdentityLimiter,
    /// The console's sessions (cookie authentication).
    sessions: session::Sessions,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(parts: Parts) -> Self {
        let policy = RwLock::new(Arc::new(parts.policy.clone()));
        let limiter = limits::IdentityLimiter::new(parts.config.server.max_concurrent_per_identity);
        let sessions = session::Sessions::new(parts.store.clone());
        Self {
            inner: Arc::new(Inner {
                parts,
                policy,
                front: std::sync::OnceLock::new(),
                limiter,
                sessions,
            }),
        }
    }

    /// The Airbyte-compatible front's state: service accounts, token
    /// exchange, job memory. Built from the configuration on first use when
    /// the composition root did not set one.
    pub fn front(&self) -> Arc<crate::front::Front> {
        Arc::clone(
            self.inner
                .front
                .get_or_init(|| Arc::new(crate::front::Front::fallback(self.config()))),
        )
    }

    /// Sets the front's state (once, before serving); false if already set.
    pub fn set_front(&self, front: Arc<crate::front::Front>) -> bool {
        self.inner.front.set(front).is_ok()
    }

    /// The configuration the server started with.
    pub fn config(&self) -> &Config {
        &self.inner.parts.config
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
    pub async fn audit(&self, entry: &crate::audit::Entry) {
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

/// The whole router, with middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document_json))
        .route("/docs", get(openapi::docs))
        .route("/v1/whoami", get(whoami::whoami))
        .route("/v1/connections", get(connections::list))
        .route("/v1/connections/{reference}", get(connections::get))
        .route("/v1/connections/{reference}/sync", post(jobs::trigger_sync))
        .route(
            "/v1/connections/{reference}/reset",
            post(jobs::trigger_reset),
        )
        .route("/v1/audit", get(audit::list))
        .route("/v1/jobs", get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/events", get(events::stream))
        .merge(crate::front::router())
        .with_state(state.clone())
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
async fn read_body_in_time(
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
    let deadline = std::time::Duration::from_secs(state.config().server.body_timeout_secs);
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

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The process is up. Says nothing about its dependencies (see `/readyz`).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process is up",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus metrics in the text format. Unauthenticated, like the health
/// checks: it names route templates, permissions and states, never ids,
/// subjects or secrets.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4"))
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = crate::metrics::render(state.metrics(), state.store()).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        body,
    )
}

/// What `/readyz` found.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Readiness {
    /// Every check passed.
    ready: bool,
    checks: ReadinessChecks,
    issuers: Vec<IssuerReadiness>,
}

/// Each dependency's check.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct ReadinessChecks {
    database: bool,
    airbyte: bool,
    /// Every issuer's keys are loaded.
    issuer_keys: bool,
}

/// One identity provider's signing keys.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct IssuerReadiness {
    issuer: String,
    keys_loaded: bool,
}

/// Ready to serve: the database answers, Airbyte answers, and every issuer's
/// keys are loaded. Says which check failed.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the database, Airbyte and the issuers' keys",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; `checks` says which failed", body = Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.store().ping().await.is_ok();
    let airbyte = state.airbyte().health().await.is_ok();
    let issuers: Vec<IssuerReadiness> = state
        .authenticator()
        .readiness()
        .into_iter()
        .map(|r| IssuerReadiness {
            issuer: r.issuer,
            keys_loaded: r.ready,
        })
        .collect();
    let keys = state.authenticator().is_ready();
    let ready = database && airbyte && keys;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        checks: ReadinessChecks {
            database,
            airbyte,
            issuer_keys: keys,
        },
        issuers,
    };
    (status, Json(body))
}
