//! What every HTTP door shares: the application state, the request layer
//! (request ids, spans, the request log, problem+json bodies), the body
//! reader, the per-identity limiter, console sessions, the `Caller`
//! extractor that authenticates, authorizes and audits, and `Routes`, the
//! declarations that make both a door's router and its OpenAPI document.
//!
//! The doors themselves (`api`, `front`, `mcp`, `console`) sit on top of
//! this module and never on each other; `http` assembles them.

pub mod auth;
pub mod body;
pub mod limits;
pub mod panics;
pub mod params;
pub mod problem;
pub mod refusals;
pub mod request_id;
pub mod routes;
pub mod session;

use std::sync::{Arc, RwLock};

use airbyte_client::AirbyteClient;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::sync::Notify;

use crate::server::ServerConfig;
use airlock_domain::approvals::ApprovalsConfig;
use airlock_domain::clock::SharedClock;
use airlock_domain::identity::Authenticator;
use airlock_domain::jobs::JobsConfig;
use airlock_domain::policy::Policy;
use airlock_services::connections::Catalog;
use airlock_services::memo::Memo;
use airlock_services::metrics::Metrics;
use airlock_services::metrics::StoreFigures;
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
    /// `[approvals]`: which actions wait for a second person.
    pub approvals: ApprovalsConfig,
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
    /// Event streams open per identity.
    streams: limits::IdentityLimiter,
    /// The console's sessions (cookie authentication).
    sessions: session::Sessions,
    /// Refusals of unidentified requests, counted per window.
    refusals: refusals::Refusals,
    /// What the unauthenticated endpoints read, kept for a moment.
    recent: Recent,
}

/// What unauthenticated endpoints read, worked out at most once per
/// [`RECENT_FOR`]: anyone may call them, as often as they like.
#[derive(Debug)]
struct Recent {
    figures: Memo<StoreFigures>,
    airbyte_up: Memo<bool>,
    database_up: Memo<bool>,
}

/// How long the health checks' and the metrics' database figures are
/// reused.
pub const RECENT_FOR: std::time::Duration = std::time::Duration::from_secs(1);

impl AppState {
    /// Builds the state from its parts.
    pub fn new(parts: Parts) -> Self {
        let policy = RwLock::new(Arc::new(parts.policy.clone()));
        let limiter = limits::IdentityLimiter::new(parts.server.max_concurrent_per_identity);
        let streams = limits::IdentityLimiter::new(parts.server.max_streams_per_identity);
        let sessions = session::Sessions::new(parts.store.clone());
        let refusals = refusals::Refusals::new(
            parts.server.refusal_window_secs,
            parts.server.refusals_per_address,
        );
        Self {
            inner: Arc::new(Inner {
                parts,
                policy,
                limiter,
                streams,
                sessions,
                refusals,
                recent: Recent {
                    figures: Memo::new(RECENT_FOR),
                    airbyte_up: Memo::new(RECENT_FOR),
                    database_up: Memo::new(RECENT_FOR),
                },
            }),
        }
    }

    /// `[jobs]`, as the server started with it.
    pub fn jobs_config(&self) -> &JobsConfig {
        &self.inner.parts.jobs
    }

    /// `[approvals]`, as the server started with it.
    pub fn approvals_config(&self) -> &ApprovalsConfig {
        &self.inner.parts.approvals
    }

    /// How long a client may take to send a request body.
    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.inner.parts.server.body_timeout_secs)
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

    /// Event streams open per identity.
    pub fn streams(&self) -> &limits::IdentityLimiter {
        &self.inner.streams
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
    /// The catalog learns the workspace names the new grants use and binds
    /// them first (a listing), so that a new name covers its workspace as
    /// soon as the grants apply; when Airbyte cannot be listed, such a name
    /// covers nothing until the next refresh.
    pub async fn set_policy(&self, policy: Policy) {
        let catalog = self.catalog();
        catalog.set_workspace_names(policy.workspace_names());
        if let Err(error) = catalog.refresh().await {
            tracing::warn!(error = %error, "cannot bind the new grants' names yet; they cover nothing until the next refresh");
        }
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

    /// Audits the refusal of a request nobody is identified for (see
    /// [`refusals`]): the first of its address and reason this window now,
    /// the rest counted; charged to each of `charged` (address or client
    /// keys) towards their throttle.
    pub async fn refused(
        &self,
        entry: airlock_domain::audit::Entry,
        subject: Option<&str>,
        charged: &[&str],
    ) {
        let noted = self
            .inner
            .refusals
            .note(self.now_ms(), entry, subject, charged);
        for entry in noted.closed.iter().chain(noted.write.iter()) {
            self.audit(entry).await;
        }
    }

    /// Charges one costly action anyone may ask for (a console login's
    /// start) to `key`; false once `key` is over `[server]
    /// refusals_per_address` this window.
    pub async fn spend(&self, key: &str) -> bool {
        let (allowed, closed) = self.inner.refusals.spend(self.now_ms(), key);
        for entry in &closed {
            self.audit(entry).await;
        }
        allowed
    }

    /// Whether any address or client id is throttled now (no lock taken):
    /// callers skip working out their key when none is.
    pub fn any_throttled(&self) -> bool {
        self.inner.refusals.any_throttled()
    }

    /// Whether `key` (a source address or client key) has caused too many
    /// refusals this window.
    pub fn throttled(&self, key: &str) -> bool {
        self.inner.refusals.throttled(self.now_ms(), key)
    }

    /// Writes the counts of refusals of every window that has closed, until
    /// `stop` is notified; then those of the open one.
    pub async fn run_refusal_windows(&self, stop: Arc<Notify>) {
        let every = std::time::Duration::from_secs(self.inner.refusals.window_secs().max(1));
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => self.close_refusal_window(false).await,
                () = stop.notified() => break,
            }
        }
        self.close_refusal_window(true).await;
    }

    async fn close_refusal_window(&self, force: bool) {
        for entry in self.inner.refusals.close(self.now_ms(), force) {
            self.audit(&entry).await;
        }
    }

    /// The database's figures for `/metrics` (at most [`RECENT_FOR`] old).
    pub async fn store_figures(&self) -> StoreFigures {
        let store = self.store();
        self.inner
            .recent
            .figures
            .get(|| StoreFigures::read(store))
            .await
    }

    /// Whether Airbyte answered its health check (at most [`RECENT_FOR`]
    /// ago).
    pub async fn airbyte_up(&self) -> bool {
        let airbyte = self.airbyte();
        self.inner
            .recent
            .airbyte_up
            .get(|| async { airbyte.health().await.is_ok() })
            .await
    }

    /// Whether the database answered (at most [`RECENT_FOR`] ago).
    pub async fn database_up(&self) -> bool {
        let store = self.store();
        self.inner
            .recent
            .database_up
            .get(|| async { store.ping().await.is_ok() })
            .await
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
/// request id, span and log line outermost, then a panic caught as a 500
/// (`panics`), then the timed body read, then the body limit.
pub fn layered(routes: Router, state: AppState) -> Router {
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::read_in_time,
        ))
        .layer(panics::layer())
        .layer(axum::middleware::from_fn_with_state(
            state,
            request_id::layer,
        ))
}
