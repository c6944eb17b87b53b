//! The tracker: follows jobs in Airbyte until they end.
//!
//! It lists rather than asks for jobs one by one. Each pass lists, per
//! workspace, the Airbyte jobs updated since the previous pass (minus some
//! slack), a page of 100 at a time (after a failed pass, since the last one
//! that succeeded); every few passes it lists the active jobs instead, to
//! catch anything a time filter could miss, and lists what changed since
//! the tracked jobs it did not see there were last heard of. Only a job no
//! listing accounts for (deleted in Airbyte) is asked for by id. So the
//! calls per pass grow with workspaces and changes, not with the number of
//! tracked jobs. Jobs that Airbyte started by itself on known connections
//! are recorded too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use airbyte_client::{AirbyteClient, JobFilter, JobOrder, JobStatus};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use airlock_domain::clock::SharedClock;
use airlock_domain::jobs::JobsConfig;
use airlock_domain::jobs::{Job, JobState, JobType, map_status};
use airlock_store::jobs::{AirbyteReport, JobChange, Requeue};
use airlock_store::{Store, StoreError};

/// Overlap between passes, so a change stamped just before a pass began is
/// not missed (clocks differ between hosts).
const OVERLAP_MS: i64 = 60_000;

/// Every this many passes, list active jobs instead of recent changes.
const FULL_PASS_EVERY: u64 = 12;

/// What a pass did (for logs and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub workspaces: usize,
    pub airbyte_calls: usize,
    pub jobs_seen: usize,
    pub updated: usize,
    pub discovered: usize,
    pub full: bool,
}

/// Where the set of known connections comes from (the connection catalog).
pub trait KnownConnections: Send + Sync + std::fmt::Debug {
    /// The workspace of a known connection.
    fn workspace_of(&self, connection_id: &str) -> Option<String>;
    /// Every workspace that has known connections.
    fn workspaces(&self) -> Vec<String>;
}

/// Follows Airbyte jobs.
#[derive(Debug)]
pub struct Tracker {
    store: Store,
    airbyte: AirbyteClient,
    config: JobsConfig,
    clock: SharedClock,
    connections: Arc<dyn KnownConnections>,
    passes: u64,
    /// Start of the last pass that completed, per workspace.
    last_pass: HashMap<String, i64>,
    /// Poked when jobs end, so that the dispatcher starts the next job of
    /// their connections without waiting for its own poll.
    wake: Option<Arc<Notify>>,
    /// Links each recorded change's span to the request that queued the job.
    links: Option<Arc<dyn super::TraceLinks>>,
}

impl Tracker {
    /// A tracker; call [`Tracker::run`] or [`Tracker::pass`].
    pub fn new(
        store: Store,
        airbyte: AirbyteClient,
        config: JobsConfig,
        clock: SharedClock,
        connections: Arc<dyn KnownConnections>,
    ) -> Self {
        Self {
            store,
            airbyte,
            config,
            clock,
            connections,
            passes: 0,
            last_pass: HashMap::new(),
            wake: None,
            links: None,
        }
    }

    /// Links the span of every change it records to the trace of the
    /// request that queued the job, through `links`.
    pub fn set_trace_links(&mut self, links: Arc<dyn super::TraceLinks>) {
        self.links = Some(links);
    }

    /// Uses `wake` (the dispatcher's waker) to announce ended jobs.
    pub fn set_waker(&mut self, wake: Arc<Notify>) {
        self.wake = Some(wake);
    }

    /// Runs a pass every poll interval until `stop` is notified.
    /// Passes start every poll interval (or right after the previous one,
    /// when a pass takes longer).
    pub async fn run(mut self, stop: Arc<Notify>) {
        // Registered now, so that a stop asked for during a pass counts.
        let stopped = stop.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        let mut ticks = tokio::time::interval(Duration::from_secs(self.config.poll_interval_secs));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stopped => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = &mut stopped => return,
                result = self.pass() => match result {
                    Ok(report) if report.updated > 0 || report.discovered > 0 => {
                        tracing::debug!(?report, "tracker pass");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = %error, "tracker pass failed"),
                },
            }
        }
    }

    /// One pass over every workspace with tracked jobs or known connections.
    pub async fn pass(&mut self) -> Result<PassReport, TrackError> {
        let started = self.clock.now_ms();
        let mut report = PassReport::default();
        self.send_pending_cancels(&mut report).await?;
        let mut by_airbyte_id = self.tracked_by_airbyte_id().await?;
        let workspaces = self.workspaces_to_list(&by_airbyte_id);
        let full = self.passes.is_multiple_of(FULL_PASS_EVERY);
        self.passes += 1;
        report.workspaces = workspaces.len();
        report.full = full;
        let mut failed = None;
        for workspace in workspaces {
            if let Some(error) = self
                .list_workspace(workspace, full, started, &mut by_airbyte_id, &mut report)
                .await?
            {
                failed = Some(error);
            }
        }
        if full && failed.is_none() && !by_airbyte_id.is_empty() {
            failed = self
                .list_changes_since_last_heard(&mut by_airbyte_id, &mut report)
                .await?;
        }
        if full && failed.is_none() {
            failed = self
                .ask_for_each_unaccounted(by_airbyte_id, &mut report)
                .await?;
        }
        if report.updated > 0
            && let Some(wake) = &self.wake
        {
            wake.notify_waiters();
        }
        match failed {
            Some(error) => Err(TrackError::Airbyte(error)),
            None => Ok(report),
        }
    }

    /// The jobs Airbyte runs for us, by Airbyte job id.
    async fn tracked_by_airbyte_id(&self) -> Result<HashMap<i64, Job>, StoreError> {
        let tracked = self.store.jobs_in_airbyte().await?;
        Ok(tracked
            .into_iter()
            .filter_map(|job| job.airbyte_job_id.map(|id| (id, job)))
            .collect())
    }

    /// The workspaces of the tracked jobs and of the known connections.
    fn workspaces_to_list(&self, tracked: &HashMap<i64, Job>) -> BTreeSet<String> {
        let mut workspaces: BTreeSet<String> =
            tracked.values().map(|j| j.workspace_id.clone()).collect();
        workspaces.extend(self.connections.workspaces());
        workspaces
    }

    /// Lists one workspace's jobs (the active ones in a full pass or when
    /// it was never listed, otherwise what changed since its last pass)
    /// and records what the listing says; the listing's error, if one
    /// failed. The pass's start becomes the workspace's last pass only
    /// when every listing succeeded.
    async fn list_workspace(
        &mut self,
        workspace: String,
        full: bool,
        started: i64,
        tracked: &mut HashMap<i64, Job>,
        report: &mut PassReport,
    ) -> Result<Option<airbyte_client::Error>, StoreError> {
        let Ok(workspace_uuid) = Uuid::parse_str(&workspace) else {
            return Ok(None);
        };
        let since = self.last_pass.get(&workspace).copied();
        let filters = match (full, since) {
            (false, Some(since)) => vec![changed_since(workspace_uuid, since)],
            _ => active_jobs(workspace_uuid),
        };
        let mut failed = None;
        for filter in filters {
            if let Some(error) = self.list_and_apply(&filter, tracked, report).await? {
                failed = Some(error);
            }
        }
        // After a failure, the next pass lists what changed since the
        // last pass that succeeded, so nothing that ended in between is
        // missed (listing active jobs instead would miss those).
        if failed.is_none() {
            self.last_pass.insert(workspace, started);
        }
        Ok(failed)
    }

    /// A tracked job that a full pass did not see as active has ended
    /// without our noticing (while Airlock was down, say): lists what
    /// changed in its workspace since we last heard of it, a page per
    /// hundred jobs rather than a call per job. The last listing's error,
    /// if one failed.
    async fn list_changes_since_last_heard(
        &self,
        tracked: &mut HashMap<i64, Job>,
        report: &mut PassReport,
    ) -> Result<Option<airbyte_client::Error>, StoreError> {
        let mut oldest: BTreeMap<String, i64> = BTreeMap::new();
        for job in tracked.values() {
            let at = oldest
                .entry(job.workspace_id.clone())
                .or_insert(job.updated_at);
            *at = (*at).min(job.updated_at);
        }
        let mut failed = None;
        for (workspace, since) in oldest {
            let Ok(workspace_uuid) = Uuid::parse_str(&workspace) else {
                continue;
            };
            let filter = changed_since(workspace_uuid, since);
            if let Some(error) = self.list_and_apply(&filter, tracked, report).await? {
                failed = Some(error);
            }
        }
        Ok(failed)
    }

    /// Still unaccounted for (deleted in Airbyte, or a clock far off):
    /// asks for each directly. The last error Airbyte answered other than
    /// not found, if any.
    async fn ask_for_each_unaccounted(
        &self,
        tracked: HashMap<i64, Job>,
        report: &mut PassReport,
    ) -> Result<Option<airbyte_client::Error>, StoreError> {
        let mut failed = None;
        for job in tracked.into_values() {
            let Some(airbyte_id) = job.airbyte_job_id else {
                continue;
            };
            report.airbyte_calls += 1;
            match self.airbyte.get_job(airbyte_id).await {
                Ok(seen) => {
                    let mut none = HashMap::from([(airbyte_id, job)]);
                    self.apply(&seen, &mut none, report).await?;
                }
                Err(airbyte_client::Error::NotFound { .. }) => {
                    self.fail_gone(&job, airbyte_id, report).await?;
                }
                Err(error) => failed = Some(error),
            }
        }
        Ok(failed)
    }

    /// Gone from Airbyte: it will never end there, and it would hold its
    /// connection's queue forever, so it fails.
    async fn fail_gone(
        &self,
        job: &Job,
        airbyte_id: i64,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let error = format!("Airbyte no longer knows job {airbyte_id}");
        if self
            .store
            .update_job(
                &job.id,
                &JobChange {
                    error: Some(&error),
                    ..JobChange::to(JobState::Failed)
                },
                self.clock.now_ms(),
            )
            .await?
        {
            report.updated += 1;
        }
        Ok(())
    }

    /// Lists every page of `filter` and records what it says; the listing's
    /// error, if it failed part-way.
    async fn list_and_apply(
        &self,
        filter: &JobFilter,
        tracked: &mut HashMap<i64, Job>,
        report: &mut PassReport,
    ) -> Result<Option<airbyte_client::Error>, StoreError> {
        let mut pages = self.airbyte.list_jobs_pages(filter);
        loop {
            report.airbyte_calls += 1;
            match pages.next_page().await {
                Ok(Some(jobs)) => {
                    for seen in jobs {
                        report.jobs_seen += 1;
                        self.apply(&seen, tracked, report).await?;
                    }
                }
                Ok(None) => return Ok(None),
                Err(error) => return Ok(Some(error)),
            }
        }
    }

    /// Cancels asked for while Airbyte could not be reached are sent again.
    async fn send_pending_cancels(&self, report: &mut PassReport) -> Result<(), StoreError> {
        for job in self.store.cancels_pending().await? {
            let Some(airbyte_id) = job.airbyte_job_id else {
                continue;
            };
            report.airbyte_calls += 1;
            match self.airbyte.cancel_job(airbyte_id).await {
                Ok(_) => {
                    if self
                        .store
                        .update_job(
                            &job.id,
                            &JobChange::to(JobState::Cancelled),
                            self.clock.now_ms(),
                        )
                        .await?
                    {
                        report.updated += 1;
                    }
                }
                // It ended first: the listing records how.
                Err(error) if error.conflict_kind().is_some() => {}
                Err(error) => {
                    tracing::warn!(job_id = %job.id, error = %error, "cancel not delivered yet")
                }
            }
        }
        Ok(())
    }

    /// Records what Airbyte says of one job.
    async fn apply(
        &self,
        seen: &airbyte_client::Job,
        tracked: &mut HashMap<i64, Job>,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let Some(state) = map_status(&seen.status) else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let known = match tracked.remove(&seen.job_id) {
            Some(job) => Some(job),
            None => self.store.get_job_by_airbyte_id(seen.job_id).await?,
        };
        let Some(job) = known else {
            return self.discover(seen, state, report).await;
        };
        let report_of = AirbyteReport {
            airbyte_job_id: seen.job_id,
            state,
            rows_synced: seen.rows_synced,
            bytes_synced: seen.bytes_synced,
            duration: seen.duration.as_deref(),
        };
        if job.state.is_terminal() {
            return Ok(());
        }
        if job.state == state {
            if seen.rows_synced.is_some() && seen.rows_synced != job.rows_synced {
                self.store.update_progress(&job.id, &report_of, now).await?;
            }
            return Ok(());
        }
        // One span per change Airbyte reports, linked to the trace of the
        // request that queued the job: a trace shows what came of it.
        let span = tracing::info_span!(
            "track",
            job_id = %job.id,
            airbyte_job_id = seen.job_id,
            from = job.state.as_str(),
            to = state.as_str(),
        );
        if let (Some(links), Some(parent)) = (&self.links, &job.trace_parent) {
            links.link(&span, parent);
        }
        self.record_change(&job, seen, state, now, report)
            .instrument(span)
            .await
    }

    /// Records a change of state Airbyte reported: another attempt after a
    /// failure with attempts left, else the new state.
    async fn record_change(
        &self,
        job: &Job,
        seen: &airbyte_client::Job,
        state: JobState,
        now: i64,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        if state == JobState::Failed && job.attempts < job.max_attempts && !job.cancel_requested {
            // Another attempt: a new Airbyte job after the backoff.
            let delay = self.config.backoff(job.attempts - 1);
            let error = format!("Airbyte job {} failed", seen.job_id);
            let requeue = Requeue {
                run_after: now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                count_attempt: false,
                error: &error,
                start_may_exist: false,
            };
            if self.store.requeue(&job.id, None, &requeue, now).await? {
                report.updated += 1;
            }
            return Ok(());
        }
        let error =
            (state == JobState::Failed).then(|| format!("Airbyte job {} failed", seen.job_id));
        let changed = self
            .store
            .update_job(
                &job.id,
                &JobChange {
                    state,
                    rows_synced: seen.rows_synced,
                    bytes_synced: seen.bytes_synced,
                    duration: seen.duration.as_deref(),
                    error: error.as_deref(),
                },
                now,
            )
            .await?;
        if changed && job.state != state {
            report.updated += 1;
        }
        Ok(())
    }

    /// A job Airbyte started by itself on a known connection.
    async fn discover(
        &self,
        seen: &airbyte_client::Job,
        state: JobState,
        report: &mut PassReport,
    ) -> Result<(), StoreError> {
        let connection_id = seen.connection_id.to_string();
        let Some(workspace_id) = self.connections.workspace_of(&connection_id) else {
            return Ok(());
        };
        // An earlier, failed attempt of one of ours (its job has moved on
        // to a new Airbyte job since): not Airbyte's own.
        if self
            .store
            .job_of_airbyte_attempt(&connection_id, seen.job_id)
            .await?
            .is_some()
        {
            return Ok(());
        }
        // One of ours may be this very job, its POST answer lost: leave it
        // to the dispatcher, which reconciles.
        let unresolved = self
            .store
            .unfinished_jobs_of(&connection_id)
            .await?
            .iter()
            .any(|job| job.start_requested_at.is_some() && job.airbyte_job_id.is_none());
        if unresolved {
            return Ok(());
        }
        let job_type = match seen.job_type {
            airbyte_client::JobType::Sync => JobType::Sync,
            airbyte_client::JobType::Reset | airbyte_client::JobType::Clear => JobType::Reset,
            _ => return Ok(()),
        };
        let seen = AirbyteReport {
            airbyte_job_id: seen.job_id,
            state,
            rows_synced: seen.rows_synced,
            bytes_synced: seen.bytes_synced,
            duration: seen.duration.as_deref(),
        };
        let inserted = self
            .store
            .insert_external_job(
                &connection_id,
                &workspace_id,
                job_type,
                &seen,
                self.clock.now_ms(),
            )
            .await?;
        if inserted.is_some() {
            report.discovered += 1;
        }
        Ok(())
    }
}

/// What a tracker pass can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Airbyte: {0}")]
    Airbyte(#[from] airbyte_client::Error),
}

/// The workspace's jobs updated since `since` (minus the overlap), oldest
/// change first, a page of 100 at a time.
fn changed_since(workspace: Uuid, since: i64) -> JobFilter {
    JobFilter {
        workspace_ids: vec![workspace],
        updated_at_start: Some(to_time(since - OVERLAP_MS)),
        order_by: Some(JobOrder::UpdatedAtAsc),
        limit: Some(100),
        ..JobFilter::default()
    }
}

/// The workspace's active jobs, one listing per active status.
fn active_jobs(workspace: Uuid) -> Vec<JobFilter> {
    [
        JobStatus::Pending,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Incomplete,
    ]
    .into_iter()
    .map(|status| JobFilter {
        workspace_ids: vec![workspace],
        status: Some(status),
        limit: Some(100),
        ..JobFilter::default()
    })
    .collect()
}

fn to_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
