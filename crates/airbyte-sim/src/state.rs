//! The one shared state every handler receives, and the operations that touch more
//! than one part of it (starting a job reads the world and writes the job store).
//!
//! Locks are plain `std::sync` ones, never held across an `.await`. Lock order,
//! when two are needed: world, then jobs.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use uuid::Uuid;

use crate::auth::TokenStore;
use crate::clock::{Clock, Millis};
use crate::config::SimConfig;
use crate::counters::Counters;
use crate::faults::{FaultSpec, Faults};
use crate::jobs::{JobKind, JobStore, JobView, NewJob, Origin, PlanParams};
use crate::rng::SplitMix64;
use crate::world::{ConnectionStatus, World};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) clock: Clock,
    pub(crate) world: RwLock<World>,
    pub(crate) jobs: Mutex<JobStore>,
    pub(crate) tokens: Mutex<TokenStore>,
    pub(crate) faults: RwLock<Faults>,
    pub(crate) counters: Mutex<Counters>,
    /// Draws for faults and the scheduler: seeded, so a sequential test replays.
    pub(crate) rng: Mutex<SplitMix64>,
}

/// Why a job could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartError {
    UnknownConnection,
    SyncRunning,
}

/// A poisoned lock only means another request panicked; the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    pub(crate) fn plan_params(&self) -> PlanParams {
        PlanParams {
            seed: self.config.seed,
            time_scale: self.config.time_scale,
            emit_queued: self.config.emit_queued,
        }
    }

    /// Starts a sync or a reset the way Airbyte does: a sync is refused while the
    /// connection has an unfinished job; a reset cancels that job and runs instead.
    pub(crate) fn start_job(
        &self,
        connection_id: Uuid,
        kind: JobKind,
        origin: Origin,
    ) -> Result<JobView, StartError> {
        let world = read(&self.world);
        let connection = world
            .connection(connection_id)
            .filter(|c| c.status != ConnectionStatus::Deprecated)
            .ok_or(StartError::UnknownConnection)?;
        let now = self.now();
        let mut jobs = lock(&self.jobs);
        if let Some(active) = jobs.active_for(connection_id, now) {
            match kind {
                JobKind::Sync => return Err(StartError::SyncRunning),
                JobKind::Reset => {
                    let id = active.id;
                    // It was unfinished a moment ago under the same lock: cannot fail.
                    let _ = jobs.cancel(id, now);
                }
            }
        }
        let params = self.plan_params();
        let view = jobs
            .create(
                NewJob {
                    connection_id,
                    workspace_id: connection.workspace_id,
                    kind,
                    created: now,
                    origin,
                },
                &connection.outcome,
                params,
            )
            .view(now);
        drop(jobs);
        drop(world);
        let mut counters = lock(&self.counters);
        let map = match origin {
            Origin::Api => &mut counters.jobs_created,
            Origin::Scheduler | Origin::Admin | Origin::History => {
                &mut counters.jobs_started_by_airbyte
            }
        };
        *map.entry(connection_id).or_default() += 1;
        Ok(view)
    }

    /// Cancels the unfinished job of each connection a delete deprecated, as
    /// Airbyte stops a deleted connection's sync.
    pub(crate) fn cancel_jobs_of(&self, connections: &[Uuid]) {
        let now = self.now();
        let mut jobs = lock(&self.jobs);
        for &connection_id in connections {
            if let Some(id) = jobs.active_for(connection_id, now).map(|j| j.id) {
                // Unfinished a moment ago under the same lock: cannot fail.
                let _ = jobs.cancel(id, now);
            }
        }
    }

    /// Invents `n` finished jobs per live connection, in the simulated past.
    pub(crate) fn seed_history(&self, n: u32) {
        if n == 0 {
            return;
        }
        let world = read(&self.world);
        let now = self.now();
        let spacing = (6.0 * 3_600_000.0 * self.config.time_scale.max(1.0)) as Millis;
        let params = self.plan_params();
        let mut jobs = lock(&self.jobs);
        for k in (1..=i64::from(n)).rev() {
            for c in world
                .connections
                .iter()
                .filter(|c| c.status != ConnectionStatus::Deprecated)
            {
                jobs.create(
                    NewJob {
                        connection_id: c.id,
                        workspace_id: c.workspace_id,
                        kind: JobKind::Sync,
                        created: now - k * spacing,
                        origin: Origin::History,
                    },
                    &c.outcome,
                    params,
                );
            }
        }
    }

    /// The fault spec that applies to a route key such as `"POST /jobs"`.
    pub(crate) fn fault_spec(&self, route: &str) -> FaultSpec {
        let faults = read(&self.faults);
        faults.routes.get(route).copied().unwrap_or(faults.default)
    }

    /// Replaces the faults; `expire_tokens` is an action, carried out and not kept.
    pub(crate) fn set_faults(&self, mut faults: Faults) {
        faults.clamp();
        if faults.expire_tokens {
            lock(&self.tokens).expire_all();
            faults.expire_tokens = false;
        }
        *write(&self.faults) = faults;
    }

    /// One tick of the scheduler: each scheduled, active, idle connection starts a
    /// sync with probability `p`.
    pub(crate) fn scheduler_tick(&self, p: f64) -> usize {
        let candidates: Vec<Uuid> = {
            let world = read(&self.world);
            world
                .connections
                .iter()
                .filter(|c| c.status == ConnectionStatus::Active && c.schedule.kind() != "manual")
                .map(|c| c.id)
                .collect()
        };
        let chosen: Vec<Uuid> = {
            let mut rng = lock(&self.rng);
            candidates.into_iter().filter(|_| rng.chance(p)).collect()
        };
        chosen
            .into_iter()
            .filter(|&c| self.start_job(c, JobKind::Sync, Origin::Scheduler).is_ok())
            .count()
    }
}
