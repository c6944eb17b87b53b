//! A simulator of Airbyte's public API that the official clients cannot tell apart
//! from a real server, for tests, the demo and development without Airbyte.
//!
//! # Tour
//!
//! - [`config`]: [`SimConfig`], the TOML the simulator starts from; `error`:
//!   [`SimError`].
//! - `world`: the simulated instance: workspaces, sources, destinations, connections
//!   with tags, schedules and stream catalogs, read from a fixture (the built-in one
//!   is `src/default_world.toml`) and changed by the public API's writes with
//!   Airbyte's rules (tombstones, deprecated connections, discovered streams).
//! - `jobs`: jobs whose whole life is drawn at creation from the seed and computed
//!   lazily from the simulated clock, so thousands of running jobs cost nothing.
//! - `clock`: simulated time (wall clock or frozen, plus `/_sim/advance`).
//! - `auth`: the store of client-credential tokens, which expire.
//! - [`faults`]: latency, 5xx, 429, dropped connections, black holes and token
//!   expiry, per route.
//! - [`counters`]: what the simulator saw, for assertions.
//! - `state`: the one shared state every handler receives.
//! - `api`: the HTTP routes Airbyte serves (`/api/public/v1/...`: reads, jobs, and
//!   the writes of workspaces, sources, destinations and connections, with
//!   `/streams`; and the one Configuration API route Dagster reads), with Airbyte's
//!   shapes and error bodies,
//!   including the token route, the bearer check with Airbyte's 401 body, and the
//!   faults middleware.
//! - `admin`: the `/_sim/...` control API (faults, counters, clock, bulk data).
//! - `server`: the accept loop behind [`Sim::serve`].
//!
//! The modules form a one-way stack, no module using one above it: the model
//! (`clock`, `rng`, `counters`, `error`, `faults`, `auth`, `config`, `world`, `jobs`)
//! knows neither the shared state nor HTTP; `state` holds the model; `api` and then
//! `admin` serve it over HTTP; `server` is a transport that knows none of them.
//!
//! # A request's path
//!
//! The accept loop hands each request a handle that can close its connection; the
//! faults layer counts the request, then may delay, drop, refuse or black-hole it;
//! the auth layer checks the bearer token against the simulated clock; the handler
//! reads the world and the job store (computing job states at "now") and answers
//! with Airbyte's JSON; the faults layer counts the response.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = airbyte_sim::spawn(airbyte_sim::SimConfig::default()).await?;
//! println!("Airbyte at {}", sim.base_url());
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod admin;
mod api;
mod auth;
mod clock;
pub mod config;
pub mod counters;
mod error;
pub mod faults;
mod jobs;
mod rng;
mod server;
mod state;
mod world;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{SimConfig, SimError};
pub use counters::{Counters, Traced};
pub use faults::{BadBody, FaultSpec, Faults};

use crate::auth::TokenStore;
use crate::clock::Clock;
use crate::jobs::JobStore;
use crate::rng::SplitMix64;
use crate::state::{Shared, lock, read};
use crate::world::World;

/// How often the optional scheduler considers starting syncs, in real time.
const SCHEDULER_TICK: Duration = Duration::from_secs(3);
/// The chance per tick that an idle scheduled connection starts a sync.
const SCHEDULER_CHANCE: f64 = 0.04;

/// The built-in world fixture, for people writing their own.
pub fn default_world_toml() -> &'static str {
    world::DEFAULT_WORLD
}

/// A simulated Airbyte instance; cheap to clone, all clones share one state.
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.shared.config.seed)
            .field("jobs", &lock(&self.shared.jobs).len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Builds the simulator: loads the world (fixture or built-in) and, if asked,
    /// invents a job history.
    pub fn new(config: SimConfig) -> Result<Sim, SimError> {
        config.validate()?;
        let world = match &config.world {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SimError::Read {
                    path: path.clone(),
                    source,
                })?;
                World::from_toml(&text, config.seed)?
            }
            None => World::from_toml(world::DEFAULT_WORLD, config.seed)?,
        };
        let start = config.start_time.unwrap_or_else(|| {
            let now = OffsetDateTime::now_utc();
            now.replace_nanosecond(0).unwrap_or(now)
        });
        let clock = Clock::new(start, config.manual_clock);
        let mut faults = config.faults.clone();
        faults.clamp();
        faults.expire_tokens = false;
        let shared = Shared {
            clock,
            world: RwLock::new(world),
            jobs: Mutex::new(JobStore::new(config.seed)),
            tokens: Mutex::new(TokenStore::default()),
            faults: RwLock::new(faults),
            counters: Mutex::new(Counters::default()),
            rng: Mutex::new(SplitMix64::derive(config.seed, "faults", 0)),
            config,
        };
        shared.seed_history(shared.config.history_jobs);
        Ok(Sim {
            shared: Arc::new(shared),
        })
    }

    /// Reads a configuration file and builds the simulator from it.
    pub fn from_file(path: &Path) -> Result<Sim, SimError> {
        Sim::new(SimConfig::from_file(path)?)
    }

    /// Every route: the public API, the Configuration API route and `/_sim`.
    /// Mounting this in another server works, except that the `drop` fault then
    /// fails the response body instead of closing the connection cleanly.
    pub fn router(&self) -> axum::Router {
        api::router(self.shared.clone()).merge(admin::router(self.shared.clone()))
    }

    /// Serves on `listener` until `shutdown` resolves; runs the scheduler if the
    /// configuration asks for it. In-flight requests are dropped at shutdown.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let scheduler = self.shared.config.scheduler.then(|| {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SCHEDULER_TICK);
                loop {
                    tick.tick().await;
                    let started = shared.scheduler_tick(SCHEDULER_CHANCE);
                    if started > 0 {
                        tracing::debug!(started, "simulator: scheduler started syncs");
                    }
                }
            })
        });
        let result = server::serve(self.router(), listener, shutdown).await;
        if let Some(task) = scheduler {
            task.abort();
        }
        result
    }

    /// Replaces the injected faults (and carries out `expire_tokens` if set).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// The faults currently injected.
    pub fn faults(&self) -> Faults {
        read(&self.shared.faults).clone()
    }

    /// A snapshot of what the simulator has seen so far.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Forgets the counters, so a test can count from a known point.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }

    /// The `(client_id, client_secret)` pair that `POST /applications/token` accepts.
    pub fn credentials(&self) -> (String, String) {
        (
            self.shared.config.client_id.clone(),
            self.shared.config.client_secret.clone(),
        )
    }

    /// Moves simulated time forward, as `POST /_sim/advance` does.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4);
        self.shared.clock.advance(ms);
    }

    /// Expires every token issued so far; returns how many there were.
    pub fn expire_tokens(&self) -> usize {
        lock(&self.shared.tokens).expire_all()
    }
}

/// Starts a simulator on `127.0.0.1:0` in a background task: for tests and the demo.
pub async fn spawn(config: SimConfig) -> std::io::Result<RunningSim> {
    let sim = Sim::new(config).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sim.clone().serve(listener, async move {
        // A dropped sender stops the server too.
        let _ = stopped.await;
    }));
    tracing::debug!(%addr, "simulator: listening");
    Ok(RunningSim {
        sim,
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

/// A simulator serving in the background; dropping it stops the server.
#[derive(Debug)]
pub struct RunningSim {
    /// The simulator, for faults, counters and credentials.
    pub sim: Sim,
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// The public API's base URL: `http://ADDR/api/public/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/public/v1", self.addr)
    }

    /// The Configuration API's base URL: `http://ADDR/api/v1`.
    pub fn config_api_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// The admin API's base URL: `http://ADDR/_sim`.
    pub fn admin_url(&self) -> String {
        format!("http://{}/_sim", self.addr)
    }

    /// Stops the server and waits until it has closed every connection.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take()
            && let Ok(Err(e)) = task.await
        {
            tracing::warn!(error = %e, "simulator: server ended with an error");
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_starts_syncs_only_on_idle_active_scheduled_connections() -> Result<(), SimError> {
        let sim = Sim::new(SimConfig {
            manual_clock: true,
            ..SimConfig::default()
        })?;
        // Six connections of the built-in world are active and scheduled.
        assert_eq!(sim.shared.scheduler_tick(1.0), 6);
        assert_eq!(sim.shared.scheduler_tick(1.0), 0, "all of them are busy");
        let counters = sim.counters();
        assert_eq!(counters.total_jobs_created(), 0);
        assert_eq!(counters.jobs_started_by_airbyte.values().sum::<u64>(), 6);
        Ok(())
    }

    #[test]
    fn history_jobs_are_finished_and_in_the_past() -> Result<(), SimError> {
        let sim = Sim::new(SimConfig {
            manual_clock: true,
            history_jobs: 3,
            ..SimConfig::default()
        })?;
        let now = sim.shared.now();
        let views = lock(&sim.shared.jobs).list(&jobs::JobFilter::default(), now);
        // Eight live connections in the built-in world, three jobs each.
        assert_eq!(views.len(), 24);
        assert!(
            views
                .iter()
                .all(|v| v.status.is_terminal() && v.created < now)
        );
        Ok(())
    }
}
