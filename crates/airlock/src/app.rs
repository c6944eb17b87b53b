//! The composition root: builds every part from the configuration, starts
//! the background loops (dispatcher, tracker, catalog and key refresh) and
//! serves HTTP until asked to stop.

use std::sync::Arc;
use std::time::Duration;

use airbyte_client::{AirbyteClient, CallObserver};
use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::web::{AppState, Parts};
use airlock_domain::clock::{SharedClock, SystemClock};
use airlock_domain::identity::{Authenticator, HttpKeySource, IssuerConfig, KeySource};
use airlock_domain::jobs::JobsConfig;
use airlock_services::airbyte::AirbyteConfig;
use airlock_services::connections::Catalog;
use airlock_services::metrics::Metrics;
use airlock_services::queue::dispatcher::Dispatcher;
use airlock_services::queue::tracker::Tracker;
use airlock_store::Store;

/// How long requests in flight may take to finish after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Extra parts the demo (or a test) adds to what the configuration says.
#[derive(Debug, Default)]
pub struct Extras {
    /// Issuers whose keys are known in-process (the demo provider).
    pub issuers: Vec<(IssuerConfig, Arc<dyn KeySource>)>,
    /// Routes mounted next to Airlock's own (the demo provider's).
    pub routes: Option<Router>,
    /// The clock; the system clock when `None`.
    pub clock: Option<SharedClock>,
    /// Name of this replica in job leases; generated when `None`.
    pub replica: Option<String>,
}

/// A built application, ready to serve.
#[derive(Debug)]
pub struct App {
    state: AppState,
    /// The Airbyte-compatible front's own state.
    front: Arc<crate::front::Front>,
    /// The web console's login clients.
    console: Arc<crate::console::Console>,
    extra_routes: Option<Router>,
    dispatcher: Dispatcher,
    tracker: Tracker,
    catalog: Arc<Catalog>,
    authenticator: Arc<Authenticator>,
    refresh_every: Duration,
    webhooks: airlock_services::webhooks::Deliverer,
    /// This replica's name in job leases.
    replica: String,
    /// `[jobs] poll_interval_secs`: how often the tracker polls Airbyte.
    poll_every: Duration,
    /// `[server]`'s limits per connection.
    limits: crate::server::Limits,
    /// `[mcp]`: which hosts and origins `/mcp` answers.
    mcp: crate::mcp::McpConfig,
}

/// Airlock's Airbyte client, from `[airbyte]`; `observer` (the metrics) is
/// told about every call.
pub fn airbyte_client(
    config: &AirbyteConfig,
    lookup_env: &dyn Fn(&str) -> Option<String>,
    observer: Option<Arc<dyn CallObserver>>,
) -> anyhow::Result<AirbyteClient> {
    let mut settings = config.client_config(lookup_env, observer)?;
    settings.trace_context = Some(Arc::new(crate::telemetry::AirbyteTraceContext));
    AirbyteClient::new(settings).context("cannot build the Airbyte client")
}

/// The token verifier: the configured issuers (keys fetched over HTTP),
/// the `extra` ones (the demo's, tests'), and the front's service-account
/// issuer; every issuer's keys loaded once before serving.
async fn authenticator(
    configured: &[IssuerConfig],
    extra: Vec<(IssuerConfig, Arc<dyn KeySource>)>,
    front: &crate::front::Front,
    clock: &SharedClock,
) -> anyhow::Result<Arc<Authenticator>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client for identity providers")?;
    let mut issuers: Vec<(IssuerConfig, Arc<dyn KeySource>)> = configured
        .iter()
        .map(|issuer| {
            let source: Arc<dyn KeySource> = Arc::new(HttpKeySource::new(http.clone(), issuer));
            (issuer.clone(), source)
        })
        .collect();
    issuers.extend(extra);
    issuers.extend(front.issuer());
    let authenticator = Arc::new(Authenticator::new(issuers, Arc::clone(clock))?);
    authenticator.refresh_all().await;
    Ok(authenticator)
}

/// The job queue's workers, the dispatcher and the tracker, and the signal
/// that wakes the dispatcher (a trigger, a job that ended).
fn job_queue(
    store: &Store,
    airbyte: &AirbyteClient,
    config: &JobsConfig,
    clock: &SharedClock,
    catalog: &Arc<Catalog>,
    replica: &str,
) -> (Dispatcher, Tracker, Arc<Notify>) {
    let dispatch = Arc::new(Notify::new());
    let mut dispatcher = Dispatcher::new(
        store.clone(),
        airbyte.clone(),
        config.clone(),
        Arc::clone(clock),
        replica.to_owned(),
    );
    dispatcher.set_waker(Arc::clone(&dispatch));
    dispatcher.set_trace_links(Arc::new(crate::telemetry::JobTraceLinks));
    let mut tracker = Tracker::new(
        store.clone(),
        airbyte.clone(),
        config.clone(),
        Arc::clone(clock),
        Arc::clone(catalog) as Arc<dyn airlock_services::queue::tracker::KnownConnections>,
    );
    tracker.set_waker(Arc::clone(&dispatch));
    tracker.set_trace_links(Arc::new(crate::telemetry::JobTraceLinks));
    (dispatcher, tracker, dispatch)
}

/// The front, its service accounts signing with the key kept in the
/// database when that is where the key comes from.
async fn front(
    config: &Config,
    store: &Store,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> anyhow::Result<crate::front::Front> {
    let setup = config.front_setup();
    let shared = match crate::front::accounts::shared_key_secret(&setup, lookup)? {
        Some(secret) => Some(shared_signing_key(store, secret).await?),
        None => None,
    };
    Ok(crate::front::Front::from_config(
        &setup,
        lookup,
        shared.as_deref(),
    )?)
}

/// The service accounts' signing key that every replica shares: kept in
/// the database sealed under `secret` (`[front] signing_key_secret`); the
/// first replica to start makes it, the others (and restarts) open it.
/// Sealing and opening cost a PBKDF2 derivation each, off the async threads.
async fn shared_signing_key(
    store: &Store,
    secret: airlock_domain::secret::Secret,
) -> anyhow::Result<Vec<u8>> {
    use crate::front::accounts::{AccountsError, SHARED_KEY_NAME, generate_signing_key};
    use airlock_domain::secret::sealed;
    let stored = match store.sealed_value(SHARED_KEY_NAME).await? {
        Some(stored) => stored,
        None => {
            let mine = {
                let secret = secret.clone();
                off_thread(move || {
                    let key = generate_signing_key()?;
                    sealed::seal(&secret, SHARED_KEY_NAME, &key)
                        .map_err(|e| AccountsError::SharedKey(e.to_string()))
                })
                .await?
            };
            let stored = store
                .store_sealed_value_once(SHARED_KEY_NAME, &mine, airlock_store::now_ms())
                .await?;
            if stored == mine {
                tracing::info!("made the service accounts' signing key and stored it, sealed");
            }
            stored
        }
    };
    off_thread(move || {
        sealed::open(&secret, SHARED_KEY_NAME, &stored).map_err(|e| {
            AccountsError::SharedKey(format!("the signing key kept in the database: {e}"))
        })
    })
    .await
}

/// Runs `work` (a key derivation) on a blocking thread.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::front::AccountsError> + Send + 'static,
) -> anyhow::Result<T> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .context("the signing key's task")??)
}

impl App {
    /// Builds everything; connects to the database (running migrations).
    pub async fn build(config: Config, extras: Extras) -> anyhow::Result<Self> {
        let lookup = |name: &str| std::env::var(name).ok();
        let clock = extras.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let store = Store::connect(&config.storage.url)
            .await
            .with_context(|| format!("cannot open storage {}", redact_url(&config.storage.url)))?;
        let metrics = Arc::new(Metrics::new());
        let airbyte = airbyte_client(
            &config.airbyte,
            &lookup,
            Some(Arc::clone(&metrics) as Arc<dyn CallObserver>),
        )?;
        let policy = config.policy()?;
        let catalog = Arc::new(Catalog::new(
            airbyte.clone(),
            store.clone(),
            config.connections.slugs.clone(),
            Arc::clone(&clock),
        ));
        catalog.set_workspace_names(policy.workspace_names());
        if let Err(error) = catalog.refresh().await {
            tracing::warn!(error = %error, "cannot list Airbyte connections yet; will retry");
        }
        // Service accounts: Airlock's own issuer, verified like any other.
        let front = Arc::new(front(&config, &store, &lookup).await?);
        let authenticator = authenticator(&config.issuers, extras.issuers, &front, &clock).await?;
        let replica: String = extras
            .replica
            .unwrap_or_else(|| format!("{}-{}", hostname(), uuid::Uuid::new_v4().simple()));
        let (dispatcher, tracker, dispatch) =
            job_queue(&store, &airbyte, &config.jobs, &clock, &catalog, &replica);
        let refresh_every = Duration::from_secs(config.connections.refresh_secs);
        let webhooks = airlock_services::webhooks::Deliverer::new(
            &config.webhooks,
            &lookup,
            store.clone(),
            Arc::clone(&clock),
            Arc::clone(&catalog) as Arc<dyn airlock_services::webhooks::Directory>,
        )?;
        let console = Arc::new(
            crate::console::Console::new(config.console.clone(), authenticator.issuers(), &lookup)
                .context("cannot set up the console")?,
        );
        let state = AppState::new(Parts {
            server: config.server.clone(),
            jobs: config.jobs.clone(),
            approvals: config.approvals.clone(),
            record_reads: config.audit.record_reads,
            site: config.site(),
            store,
            airbyte,
            catalog: Arc::clone(&catalog),
            authenticator: Arc::clone(&authenticator),
            policy,
            dispatch,
            clock,
            metrics,
        });
        Ok(Self {
            state,
            front,
            console,
            extra_routes: extras.routes,
            dispatcher,
            tracker,
            catalog,
            authenticator,
            refresh_every,
            webhooks,
            replica,
            poll_every: Duration::from_secs(config.jobs.poll_interval_secs),
            limits: crate::server::Limits {
                header_timeout: Duration::from_secs(config.server.header_timeout_secs),
            },
            mcp: config.mcp,
        })
    }

    /// The shared state (for tests that drive the router in memory).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `shutdown` resolves; then lets requests in
    /// flight finish (for at most [`SHUTDOWN_GRACE`]), stops the background
    /// loops and releases this replica's job leases.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        tasks.spawn(self.dispatcher.run(Arc::clone(&stop)));
        tasks.spawn(track_while_leading(
            self.tracker,
            self.state.store().clone(),
            self.poll_every,
            Arc::clone(&stop),
        ));
        tasks.spawn(self.webhooks.run(Arc::clone(&stop)));
        tasks.spawn(Arc::clone(&self.catalog).run(self.refresh_every, Arc::clone(&stop)));
        let refusals = self.state.clone();
        let refusals_stop = Arc::clone(&stop);
        tasks.spawn(async move { refusals.run_refusal_windows(refusals_stop).await });
        tasks.spawn(crate::service::approvals::run_expiry(
            self.state.clone(),
            Arc::clone(&stop),
        ));
        let authenticator = Arc::clone(&self.authenticator);
        let key_stop = Arc::clone(&stop);
        tasks.spawn(async move {
            authenticator
                .run_refresh(async move { key_stop.notified().await })
                .await
        });

        let mut router = crate::http::router(
            &self.state,
            Arc::clone(&self.front),
            Arc::clone(&self.console),
            &self.mcp,
        );
        if let Some(extra) = self.extra_routes {
            router = router.merge(extra);
        }
        // On the signal: stop accepting, let requests in flight finish, but
        // not forever (a held `?wait=` or an event stream would keep the
        // process up): after the grace period the rest are dropped.
        let (fired, mut fired_seen) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            let _ = fired.send(true);
        };
        let server = crate::server::serve(listener, router, self.limits, shutdown);
        let grace_over = async move {
            if fired_seen.wait_for(|fired| *fired).await.is_err() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        let served = tokio::select! {
            served = server => served,
            () = grace_over => {
                tracing::warn!(grace_secs = SHUTDOWN_GRACE.as_secs(), "requests still in flight after the grace period; stopping");
                Ok(())
            }
        };
        stop_loops(&stop, tasks).await;
        release_leases(&self.state, &self.replica).await;
        served.context("server failed")
    }
}

/// Background loops stop when they next wait: a loop busy with a pass
/// misses one notification, so keep notifying until all have ended (or the
/// bound passes and they are aborted with the set).
async fn stop_loops(stop: &Notify, mut tasks: JoinSet<()>) {
    let _finished = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            stop.notify_waiters();
            tokio::select! {
                next = tasks.join_next() => if next.is_none() { break },
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    })
    .await;
}

/// Hands this replica's job leases back, so that another replica need not
/// wait for them to expire.
async fn release_leases(state: &AppState, replica: &str) {
    match state.store().release_leases(replica, state.now_ms()).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "released job leases"),
        Err(error) => {
            tracing::warn!(error = %error, "cannot release job leases; they expire on their own")
        }
    }
}

/// Runs tracker passes while this replica leads the tracking (one replica
/// of several on one Postgres polls Airbyte; the others stand by and take
/// over when the leader's connection goes away).
async fn track_while_leading(
    mut tracker: Tracker,
    store: Store,
    interval: Duration,
    stop: Arc<Notify>,
) {
    let mut lead = None;
    // Passes start every interval (right after the previous one when a
    // pass takes longer), not an interval after the previous one ended.
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.notified() => return,
            _ = ticks.tick() => {}
        }
        if lead.is_none() {
            match store.try_lead("airlock.tracker").await {
                Ok(Some(won)) => {
                    tracing::info!("this replica now tracks Airbyte jobs");
                    lead = Some(won);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(error = %error, "cannot run the tracker election"),
            }
        }
        if let Some(held) = lead.as_mut() {
            if held.still_leading().await {
                match tracker.pass().await {
                    Ok(report) if report.updated > 0 || report.discovered > 0 => {
                        tracing::debug!(?report, "tracker pass");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = %error, "tracker pass failed"),
                }
            } else {
                tracing::warn!("lost the tracker lead");
                lead = None;
            }
        }
    }
}

/// Loads `path` and swaps in its roles and grants (the reload of SIGHUP);
/// returns the number of grants. A file that does not load, or whose policy
/// is invalid, changes nothing. Other settings need a restart.
pub async fn reload_policy(
    state: &AppState,
    path: &std::path::Path,
    env: &[(String, String)],
) -> anyhow::Result<usize> {
    let config = Config::load(Some(path), env)?;
    let policy = config.policy()?;
    let grants = policy.grants().len();
    state.set_policy(policy).await;
    Ok(grants)
}

/// A storage URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:[redacted]{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "airlock".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_urls_lose_their_password() {
        assert_eq!(
            super::redact_url("postgres://app:hunter2@db/airlock"),
            "postgres://app:[redacted]@db/airlock"
        );
        assert_eq!(
            super::redact_url("sqlite://airlock.db"),
            "sqlite://airlock.db"
        );
    }
}
