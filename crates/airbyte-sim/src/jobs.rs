//! Jobs: created by `POST /jobs` (or the scheduler), computed lazily from a plan.
//!
//! A job's whole life is drawn when it is created, deterministically from the seed
//! and the job id: how long it stays pending, how many attempts it makes, how long
//! each runs, which fail, how many rows each commits. Its state at any moment is a
//! pure function of that plan, its creation time, an optional cancellation time and
//! the simulated clock. Nothing ticks, so ten thousand running jobs cost nothing.

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::Millis;
use crate::rng::SplitMix64;
use crate::world::Outcome;

/// The two kinds of job the public API reports (`clear` is recorded as `reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobKind {
    Sync,
    Reset,
}

impl JobKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobKind::Sync => "sync",
            JobKind::Reset => "reset",
        }
    }
}

/// A job status as the public API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobStatus {
    Queued,
    Pending,
    Running,
    Incomplete,
    Failed,
    Succeeded,
    Cancelled,
}

impl JobStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Incomplete => "incomplete",
            JobStatus::Failed => "failed",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "queued" => JobStatus::Queued,
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "incomplete" => JobStatus::Incomplete,
            "failed" => JobStatus::Failed,
            "succeeded" => JobStatus::Succeeded,
            "cancelled" => JobStatus::Cancelled,
            _ => return None,
        })
    }

    pub(crate) fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Failed | JobStatus::Succeeded | JobStatus::Cancelled
        )
    }
}

/// Who started a job; only `Api` jobs count in `jobs_created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Origin {
    Api,
    Scheduler,
    Admin,
    History,
}

#[derive(Debug, Clone)]
struct Attempt {
    /// Start, relative to the job's creation.
    start: Millis,
    run: Millis,
    succeeds: bool,
    rows: i64,
    bytes: i64,
}

impl Attempt {
    fn end(&self) -> Millis {
        self.start + self.run
    }
}

#[derive(Debug, Clone)]
struct Plan {
    queued: Millis,
    pending: Millis,
    /// Never empty.
    attempts: Vec<Attempt>,
}

/// What a plan is drawn from besides the seed and the job id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanParams {
    pub(crate) seed: u64,
    pub(crate) time_scale: f64,
    pub(crate) emit_queued: bool,
}

impl Plan {
    fn draw(id: i64, kind: JobKind, outcome: &Outcome, p: PlanParams) -> Plan {
        let mut r = SplitMix64::derive(p.seed, "job", id as u64);
        let scale = |ms: u64| -> Millis { ((ms as f64) * p.time_scale).round().max(1.0) as Millis };
        let queued = if p.emit_queued { 1_000 } else { 0 };
        let pending = scale(r.range(1_000, 3_000));
        let fails = r.chance(outcome.failure_rate);
        let attempts_n = if fails {
            3
        } else {
            let mut failed = 0;
            while failed < 2 && r.chance(outcome.attempt_failure_rate) {
                failed += 1;
            }
            failed + 1
        };
        let total_rows = match kind {
            JobKind::Sync => r.range(outcome.rows.0, outcome.rows.1) as i64,
            JobKind::Reset => 0,
        };
        let bytes_per_row = r.range(180, 900) as i64;
        let mut t = queued + pending;
        let mut attempts = Vec::with_capacity(attempts_n);
        for i in 0..attempts_n {
            let run_ms = r.range(
                outcome.duration_secs.0 * 1_000,
                outcome.duration_secs.1 * 1_000,
            );
            let run_ms = match kind {
                JobKind::Sync => run_ms,
                JobKind::Reset => (run_ms / 4).max(1_000),
            };
            let run = scale(run_ms);
            let succeeds = !fails && i + 1 == attempts_n;
            let rows = if succeeds {
                total_rows
            } else {
                total_rows * r.range(0, 60) as i64 / 100
            };
            attempts.push(Attempt {
                start: t,
                run,
                succeeds,
                rows,
                bytes: rows * bytes_per_row,
            });
            t += run;
            if i + 1 < attempts_n {
                t += scale(r.range(2_000, 10_000));
            }
        }
        Plan {
            queued,
            pending,
            attempts,
        }
    }
}

/// One job: identity, plan and the only thing that can change it, a cancellation.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: i64,
    pub(crate) connection_id: Uuid,
    pub(crate) workspace_id: Uuid,
    pub(crate) kind: JobKind,
    pub(crate) created: Millis,
    pub(crate) origin: Origin,
    plan: Plan,
    cancelled: Option<Millis>,
}

/// A job as seen at one moment.
#[derive(Debug, Clone)]
pub(crate) struct JobView {
    pub(crate) id: i64,
    pub(crate) connection_id: Uuid,
    pub(crate) workspace_id: Uuid,
    pub(crate) kind: JobKind,
    pub(crate) status: JobStatus,
    pub(crate) created: Millis,
    /// The last state change at or before the moment looked at.
    pub(crate) updated: Millis,
    pub(crate) rows: Option<i64>,
    pub(crate) bytes: Option<i64>,
    pub(crate) attempts: u32,
    pub(crate) origin: Origin,
}

struct Natural {
    status: JobStatus,
    updated: Millis,
    stats: Option<(i64, i64)>,
    attempts: u32,
}

impl Job {
    fn natural(&self, t: Millis) -> Natural {
        let rel = t - self.created;
        let plan = &self.plan;
        if rel < plan.queued {
            return Natural {
                status: JobStatus::Queued,
                updated: self.created,
                stats: None,
                attempts: 0,
            };
        }
        if rel < plan.queued + plan.pending {
            return Natural {
                status: JobStatus::Pending,
                updated: self.created + plan.queued,
                stats: None,
                attempts: 0,
            };
        }
        let mut previous: Option<&Attempt> = None;
        for (i, a) in plan.attempts.iter().enumerate() {
            if rel < a.start
                && let Some(prev) = previous
            {
                return Natural {
                    status: JobStatus::Incomplete,
                    updated: self.created + prev.end(),
                    stats: Some((prev.rows, prev.bytes)),
                    attempts: i as u32,
                };
            }
            if rel < a.end() {
                let done = (rel - a.start).max(0) as f64 / a.run.max(1) as f64;
                return Natural {
                    status: JobStatus::Running,
                    updated: self.created + a.start,
                    stats: Some((
                        (a.rows as f64 * done) as i64,
                        (a.bytes as f64 * done) as i64,
                    )),
                    attempts: i as u32 + 1,
                };
            }
            previous = Some(a);
        }
        let Some(last) = plan.attempts.last() else {
            // Plans always have an attempt; an empty one would just never start.
            return Natural {
                status: JobStatus::Pending,
                updated: self.created + plan.queued,
                stats: None,
                attempts: 0,
            };
        };
        Natural {
            status: if last.succeeds {
                JobStatus::Succeeded
            } else {
                JobStatus::Failed
            },
            updated: self.created + last.end(),
            stats: Some((last.rows, last.bytes)),
            attempts: plan.attempts.len() as u32,
        }
    }

    /// The job as it is at simulated time `t`.
    pub(crate) fn view(&self, t: Millis) -> JobView {
        let (status, updated, stats, attempts) = match self.cancelled {
            Some(c) if t >= c => {
                let n = self.natural(c);
                (JobStatus::Cancelled, c, n.stats, n.attempts)
            }
            _ => {
                let n = self.natural(t);
                (n.status, n.updated, n.stats, n.attempts)
            }
        };
        JobView {
            id: self.id,
            connection_id: self.connection_id,
            workspace_id: self.workspace_id,
            kind: self.kind,
            status,
            created: self.created,
            updated,
            rows: stats.map(|s| s.0),
            bytes: stats.map(|s| s.1),
            attempts,
            origin: self.origin,
        }
    }
}

/// What a new job is, before its plan is drawn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewJob {
    pub(crate) connection_id: Uuid,
    pub(crate) workspace_id: Uuid,
    pub(crate) kind: JobKind,
    pub(crate) created: Millis,
    pub(crate) origin: Origin,
}

/// Why a cancellation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelError {
    NotFound,
    NotRunning,
}

/// Ordering of `GET /jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderField {
    CreatedAt,
    UpdatedAt,
}

/// The filters of `GET /jobs`, parsed.
#[derive(Debug, Clone)]
pub(crate) struct JobFilter {
    pub(crate) connection_id: Option<Uuid>,
    pub(crate) workspace_ids: Vec<Uuid>,
    pub(crate) kind: Option<JobKind>,
    pub(crate) status: Option<JobStatus>,
    pub(crate) created_start: Option<Millis>,
    pub(crate) created_end: Option<Millis>,
    pub(crate) updated_start: Option<Millis>,
    pub(crate) updated_end: Option<Millis>,
    pub(crate) order: OrderField,
    pub(crate) ascending: bool,
}

impl Default for JobFilter {
    fn default() -> Self {
        JobFilter {
            connection_id: None,
            workspace_ids: Vec::new(),
            kind: None,
            status: None,
            created_start: None,
            created_end: None,
            updated_start: None,
            updated_end: None,
            order: OrderField::CreatedAt,
            ascending: true,
        }
    }
}

impl JobFilter {
    fn matches(&self, v: &JobView) -> bool {
        let within = |t: Millis, lo: Option<Millis>, hi: Option<Millis>| {
            lo.is_none_or(|lo| t >= lo) && hi.is_none_or(|hi| t <= hi)
        };
        self.connection_id.is_none_or(|c| c == v.connection_id)
            && (self.workspace_ids.is_empty() || self.workspace_ids.contains(&v.workspace_id))
            && self.kind.is_none_or(|k| k == v.kind)
            && self.status.is_none_or(|s| s == v.status)
            && within(v.created, self.created_start, self.created_end)
            && within(v.updated, self.updated_start, self.updated_end)
    }
}

/// All jobs, in creation order; ids are consecutive from `first_id`.
#[derive(Debug)]
pub(crate) struct JobStore {
    first_id: i64,
    jobs: Vec<Job>,
    by_connection: HashMap<Uuid, Vec<usize>>,
}

impl JobStore {
    pub(crate) fn new(seed: u64) -> JobStore {
        // Real instances have a history; start the ids somewhere plausible.
        let first_id =
            1_000 + SplitMix64::derive(seed, "first-job-id", 0).range(0, 8_999) as i64 * 10;
        JobStore {
            first_id,
            jobs: Vec::new(),
            by_connection: HashMap::new(),
        }
    }

    pub(crate) fn get(&self, id: i64) -> Option<&Job> {
        let idx = usize::try_from(id.checked_sub(self.first_id)?).ok()?;
        self.jobs.get(idx)
    }

    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }

    /// The connection's job that is not finished at `now`, if any.
    pub(crate) fn active_for(&self, connection_id: Uuid, now: Millis) -> Option<&Job> {
        let last = *self.by_connection.get(&connection_id)?.last()?;
        let job = self.jobs.get(last)?;
        (!job.view(now).status.is_terminal()).then_some(job)
    }

    /// Creates a job whose plan is drawn from the seed and its id.
    pub(crate) fn create(&mut self, new: NewJob, outcome: &Outcome, params: PlanParams) -> &Job {
        let id = self.first_id + self.jobs.len() as i64;
        let job = Job {
            id,
            connection_id: new.connection_id,
            workspace_id: new.workspace_id,
            kind: new.kind,
            created: new.created,
            origin: new.origin,
            plan: Plan::draw(id, new.kind, outcome, params),
            cancelled: None,
        };
        let idx = self.jobs.len();
        self.jobs.push(job);
        self.by_connection
            .entry(new.connection_id)
            .or_default()
            .push(idx);
        &self.jobs[idx]
    }

    /// Cancels a job that is not finished at `now`.
    pub(crate) fn cancel(&mut self, id: i64, now: Millis) -> Result<JobView, CancelError> {
        let idx = id
            .checked_sub(self.first_id)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.jobs.len())
            .ok_or(CancelError::NotFound)?;
        let job = &mut self.jobs[idx];
        if job.view(now).status.is_terminal() {
            return Err(CancelError::NotRunning);
        }
        job.cancelled = Some(now);
        Ok(job.view(now))
    }

    /// Every job matching `filter` at `now`, in the filter's order.
    pub(crate) fn list(&self, filter: &JobFilter, now: Millis) -> Vec<JobView> {
        let candidates: Box<dyn Iterator<Item = &Job>> = match filter.connection_id {
            Some(c) => Box::new(
                self.by_connection
                    .get(&c)
                    .into_iter()
                    .flatten()
                    .filter_map(|&i| self.jobs.get(i)),
            ),
            None => Box::new(self.jobs.iter()),
        };
        let mut out: Vec<JobView> = candidates
            .map(|j| j.view(now))
            .filter(|v| filter.matches(v))
            .collect();
        let key = |v: &JobView| match filter.order {
            OrderField::CreatedAt => (v.created, v.id),
            OrderField::UpdatedAt => (v.updated, v.id),
        };
        out.sort_by_key(key);
        if !filter.ascending {
            out.reverse();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(failure_rate: f64, attempt_failure_rate: f64) -> Outcome {
        Outcome {
            failure_rate,
            attempt_failure_rate,
            duration_secs: (10, 20),
            rows: (1_000, 2_000),
        }
    }

    fn new_sync() -> NewJob {
        NewJob {
            connection_id: Uuid::nil(),
            workspace_id: Uuid::nil(),
            kind: JobKind::Sync,
            created: 0,
            origin: Origin::Api,
        }
    }

    const PARAMS: PlanParams = PlanParams {
        seed: 7,
        time_scale: 1.0,
        emit_queued: false,
    };

    #[test]
    fn a_sync_walks_pending_running_succeeded() {
        let mut store = JobStore::new(7);
        let c = Uuid::nil();
        let job = store.create(new_sync(), &outcome(0.0, 0.0), PARAMS).clone();
        assert_eq!(job.view(0).status, JobStatus::Pending);
        assert_eq!(job.view(0).rows, None);
        let start = job.plan.attempts[0].start;
        let mid = job.view(start + 5_000);
        assert_eq!(mid.status, JobStatus::Running);
        let later = job.view(start + 9_000);
        assert!(later.rows >= mid.rows, "rows grow while running");
        let done = job.view(1_000_000);
        assert_eq!(done.status, JobStatus::Succeeded);
        assert!(done.rows.unwrap_or(0) >= 1_000);
        assert!(store.active_for(c, 1_000_000).is_none());
        assert!(store.active_for(c, 0).is_some());
    }

    #[test]
    fn a_failing_job_makes_three_attempts_through_incomplete() {
        let mut store = JobStore::new(7);
        let job = store.create(new_sync(), &outcome(1.0, 0.0), PARAMS).clone();
        assert_eq!(job.plan.attempts.len(), 3);
        let gap = job.plan.attempts[0].end() + 1;
        let v = job.view(gap);
        assert_eq!(v.status, JobStatus::Incomplete);
        assert_eq!(v.attempts, 1);
        let end = job.view(10_000_000);
        assert_eq!(end.status, JobStatus::Failed);
        assert_eq!(end.attempts, 3);
    }

    #[test]
    fn cancel_freezes_the_job_and_refuses_twice() {
        let mut store = JobStore::new(7);
        let id = store.create(new_sync(), &outcome(0.0, 0.0), PARAMS).id;
        let v = store.cancel(id, 100).expect("cancellable");
        assert_eq!(v.status, JobStatus::Cancelled);
        assert_eq!(v.updated, 100);
        assert_eq!(store.cancel(id, 200).unwrap_err(), CancelError::NotRunning);
        assert_eq!(
            store.cancel(id + 1, 200).unwrap_err(),
            CancelError::NotFound
        );
        assert_eq!(store.cancel(-5, 200).unwrap_err(), CancelError::NotFound);
    }

    #[test]
    fn plans_are_deterministic() {
        let o = outcome(0.3, 0.3);
        let a = Plan::draw(42, JobKind::Sync, &o, PARAMS);
        let b = Plan::draw(42, JobKind::Sync, &o, PARAMS);
        assert_eq!(a.attempts.len(), b.attempts.len());
        assert_eq!(a.attempts[0].run, b.attempts[0].run);
        assert_eq!(a.attempts[0].rows, b.attempts[0].rows);
    }
}
