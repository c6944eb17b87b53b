//! The dispatcher: hands queued jobs to Airbyte, exactly once each.
//!
//! A worker claims a job with a lease (one `UPDATE`, no open transaction,
//! which is also the durable note that a `POST /jobs` is about to go out),
//! sends the request while a heartbeat renews the lease, and records the
//! answer. When the answer is lost (the client reports it *ambiguous*) or a
//! dispatcher dies mid-way, whoever holds the job next first looks for an
//! Airbyte job created for the connection since the request went out, and
//! adopts it instead of starting a second one.

use std::sync::Arc;
use std::time::Duration;

use airbyte_client::{AirbyteClient, ConflictKind, Error as AirbyteError, JobFilter, JobOrder};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use airlock_domain::clock::SharedClock;
use airlock_domain::jobs::JobsConfig;
use airlock_domain::jobs::{Job, JobState, JobType, map_status};
use airlock_store::jobs::{Claim, JobChange, Requeue};
use airlock_store::{Store, StoreError};

/// How far back, before a `POST /jobs` went out, an Airbyte job may have
/// been created and still be the answer to it (clock skew between hosts).
const RECONCILE_SLACK_MS: i64 = 120_000;

/// How soon an idle worker looks at the queue again, at first.
const IDLE_MIN: Duration = Duration::from_millis(500);
/// The longest an idle worker goes without looking at the queue.
const IDLE_MAX: Duration = Duration::from_secs(4);

/// Starts queued jobs in Airbyte.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    store: Store,
    airbyte: AirbyteClient,
    config: JobsConfig,
    clock: SharedClock,
    /// This replica's name in leases.
    owner: String,
    /// Poked when a job is queued, so it starts without waiting for a poll.
    wake: Arc<Notify>,
    /// Links each dispatch's span to the request that queued the job.
    links: Option<Arc<dyn super::TraceLinks>>,
}

/// What became of one claimed job (for logs and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Airbyte accepted it (or had already, found by reconciling).
    Started { airbyte_job_id: i64, adopted: bool },
    /// Back in the queue for later.
    Requeued,
    /// Failed for good.
    Failed,
    /// Cancelled before it reached Airbyte.
    Cancelled,
    /// The lease was lost to another dispatcher; nothing was recorded.
    LostLease,
}

impl Dispatcher {
    /// A dispatcher for this replica (`owner` names it in leases).
    pub fn new(
        store: Store,
        airbyte: AirbyteClient,
        config: JobsConfig,
        clock: SharedClock,
        owner: String,
    ) -> Self {
        Self {
            store,
            airbyte,
            config,
            clock,
            owner,
            wake: Arc::new(Notify::new()),
            links: None,
        }
    }

    /// Links every dispatch's span to the trace of the request that
    /// queued its job, through `links`.
    pub fn set_trace_links(&mut self, links: Arc<dyn super::TraceLinks>) {
        self.links = Some(links);
    }

    /// The handle that makes idle workers look at the queue now.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Uses `wake` (shared with the API) as the waker.
    pub fn set_waker(&mut self, wake: Arc<Notify>) {
        self.wake = wake;
    }

    /// Runs `dispatch_concurrency` workers until `stop` is notified.
    pub async fn run(self, stop: Arc<Notify>) {
        let mut workers = tokio::task::JoinSet::new();
        for index in 0..self.config.dispatch_concurrency {
            let me = self.clone();
            let stop = Arc::clone(&stop);
            workers.spawn(async move { me.worker(index, stop).await });
        }
        while workers.join_next().await.is_some() {}
    }

    async fn worker(&self, index: usize, stop: Arc<Notify>) {
        // Between wake-ups, an idle worker looks at the queue again after
        // `idle`, doubled after every look that found nothing (up to
        // `IDLE_MAX`): what no wake-up announces (another replica's jobs,
        // a retry whose backoff ran out) waits at most that long, and a
        // queue whose every connection is busy costs a claim (a walk of
        // those connections) every few seconds rather than twice a second
        // per worker.
        let mut idle = IDLE_MIN;
        // Registered now, so that a stop asked for while this worker is
        // busy counts (a job being started is finished first).
        let stopped = stop.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        loop {
            let worked = match self.dispatch_one().await {
                Ok(Some(_)) => true,
                Ok(None) => false,
                Err(error) => {
                    tracing::warn!(worker = index, error = %error, "dispatcher cannot reach the database");
                    false
                }
            };
            if worked {
                idle = IDLE_MIN;
                // Between two jobs, stop if asked to.
                tokio::select! {
                    biased;
                    () = &mut stopped => return,
                    () = std::future::ready(()) => continue,
                }
            }
            tokio::select! {
                () = &mut stopped => return,
                () = self.wake.notified() => idle = IDLE_MIN,
                () = tokio::time::sleep(idle) => idle = (idle * 2).min(IDLE_MAX),
            }
        }
    }

    /// Claims and handles one job; `None` when nothing was ready.
    pub async fn dispatch_one(&self) -> Result<Option<(Job, Outcome)>, StoreError> {
        let lease_ms = duration_ms(Duration::from_secs(self.config.lease_secs));
        // Each claim is its own owner (`replica#claim`): if this worker's
        // lease runs out and another worker of the same replica takes the
        // job over, the first one's later writes find they lost it.
        let claim = Self {
            owner: format!("{}#{}", self.owner, Uuid::new_v4().simple()),
            ..self.clone()
        };
        let Some(Claim {
            job,
            earlier_request,
        }) = claim
            .store
            .claim_job(&claim.owner, lease_ms, claim.clock.now_ms())
            .await?
        else {
            return Ok(None);
        };
        // One span per dispatch, the root of a trace that holds the POST
        // /jobs (or the reconciling list) and names both jobs, linked to
        // the trace of the request that queued it.
        let span = tracing::info_span!(
            "dispatch",
            job_id = %job.id,
            connection_id = %job.connection_id,
            airbyte_job_id = tracing::field::Empty,
        );
        if let (Some(links), Some(parent)) = (&claim.links, &job.trace_parent) {
            links.link(&span, parent);
        }
        let outcome = claim.handle(&job, earlier_request).instrument(span).await?;
        tracing::info!(
            job_id = %job.id,
            connection_id = %job.connection_id,
            outcome = ?outcome,
            "dispatched"
        );
        Ok(Some((job, outcome)))
    }

    /// Starts `job`. `earlier_request` is when an earlier `POST /jobs`
    /// for it may have gone out; otherwise the claim noted this one.
    async fn handle(&self, job: &Job, earlier_request: Option<i64>) -> Result<Outcome, StoreError> {
        let Ok(connection_id) = Uuid::parse_str(&job.connection_id) else {
            return self.fail(job, "the connection id is not a UUID").await;
        };
        // A POST may already have gone out for this job: adopt its result,
        // even when the job is to be cancelled (the tracker then cancels
        // it in Airbyte; cancelling here would leave that sync running).
        if let Some(requested_at) = earlier_request
            && let Some(outcome) = self
                .adopt_earlier_start(job, connection_id, requested_at)
                .await?
        {
            return Ok(outcome);
        }
        if job.cancel_requested {
            return self.cancel_unstarted(job).await;
        }
        // The claim noted (durably) that this POST is going out, keeping
        // an earlier note's time: the earliest time a POST may have gone out.
        let requested_at = job
            .start_requested_at
            .unwrap_or_else(|| self.clock.now_ms());
        let job_type = match job.job_type {
            JobType::Sync => airbyte_client::JobType::Sync,
            JobType::Reset => airbyte_client::JobType::Reset,
        };
        let Some(answer) = self
            .with_heartbeat(job, self.airbyte.create_job(connection_id, job_type))
            .await
        else {
            // The next owner reconciles before it sends anything.
            return Ok(Outcome::LostLease);
        };
        self.record_answer(job, connection_id, earlier_request, requested_at, answer)
            .await
    }

    /// Looks for the Airbyte job an earlier `POST /jobs` (sent at
    /// `requested_at`) started: the outcome when that settles the job (the
    /// Airbyte job found, adopted; or back to the queue, still to
    /// reconcile, when Airbyte cannot tell), `None` when there is none.
    async fn adopt_earlier_start(
        &self,
        job: &Job,
        connection_id: Uuid,
        requested_at: i64,
    ) -> Result<Option<Outcome>, StoreError> {
        match self.find_started(job, connection_id, requested_at).await {
            Ok(Some(found)) => self.started(job, found, true).await.map(Some),
            Ok(None) => Ok(None),
            Err(error) => self
                .requeue(
                    job,
                    &format!("cannot reconcile with Airbyte: {error}"),
                    false,
                    true,
                )
                .await
                .map(Some),
        }
    }

    /// Cancelled before it reached Airbyte.
    async fn cancel_unstarted(&self, job: &Job) -> Result<Outcome, StoreError> {
        self.store
            .update_job(
                &job.id,
                &JobChange::to(JobState::Cancelled),
                self.clock.now_ms(),
            )
            .await?;
        Ok(Outcome::Cancelled)
    }

    /// Records Airbyte's answer to the `POST /jobs` sent for `job` (noted
    /// at `requested_at`; `earlier_request` as in [`Dispatcher::handle`]).
    async fn record_answer(
        &self,
        job: &Job,
        connection_id: Uuid,
        earlier_request: Option<i64>,
        requested_at: i64,
        answer: Result<airbyte_client::Job, AirbyteError>,
    ) -> Result<Outcome, StoreError> {
        match answer {
            Ok(created) => self.started(job, created, false).await,
            Err(error) if error.is_ambiguous() => {
                tracing::warn!(job_id = %job.id, error = %error, "POST /jobs outcome unknown; reconciling");
                match self.find_started(job, connection_id, requested_at).await {
                    Ok(Some(found)) => self.started(job, found, true).await,
                    // Not there (yet): try again later, reconciling first.
                    Ok(None) | Err(_) => {
                        self.requeue(job, "Airbyte's answer was lost", false, true)
                            .await
                    }
                }
            }
            Err(AirbyteError::Conflict {
                kind: ConflictKind::SyncRunning,
                ..
            }) => {
                // The sync running there may be ours, started by an earlier
                // POST whose answer was lost.
                if earlier_request.is_some()
                    && let Some(outcome) = self
                        .adopt_earlier_start(job, connection_id, requested_at)
                        .await?
                {
                    return Ok(outcome);
                }
                self.wait_busy(job, earlier_request.is_some()).await
            }
            Err(
                error @ (AirbyteError::NotFound { .. }
                | AirbyteError::BadRequest { .. }
                | AirbyteError::InvalidInput(_)),
            ) => {
                self.fail(job, &format!("Airbyte refused the job: {error}"))
                    .await
            }
            // Refused before Airbyte did anything (rate limit, credentials,
            // unreachable): counts as an attempt. An earlier POST whose
            // answer was lost still needs reconciling, so its mark stays.
            Err(error) => {
                self.requeue(
                    job,
                    &format!("cannot start in Airbyte: {error}"),
                    true,
                    earlier_request.is_some(),
                )
                .await
            }
        }
    }

    /// Runs `call` while renewing the lease every third of its length;
    /// `None` when the call was given up because the lease is lost (another
    /// dispatcher took the job over) or may run out before it can be renewed
    /// (the database away). The `POST /jobs` it makes is retried inside the
    /// client (429, a connection refused, a token to refresh): sent after the
    /// lease ran out, a retry would start a second sync next to the one the
    /// job's next owner starts once it has found none to adopt.
    async fn with_heartbeat<T>(&self, job: &Job, call: impl Future<Output = T>) -> Option<T> {
        let lease = Duration::from_secs(self.config.lease_secs);
        let lease_ms = duration_ms(lease);
        let beat = async {
            // Until when the lease surely holds: the claim's, then each renewal's.
            let mut held_until = job
                .lease_until
                .unwrap_or_else(|| self.clock.now_ms() + lease_ms);
            loop {
                tokio::time::sleep(lease / 3).await;
                let now = self.clock.now_ms();
                let renewal = self.store.heartbeat(&job.id, &self.owner, lease_ms, now);
                match tokio::time::timeout(lease / 6, renewal).await {
                    Ok(Ok(true)) => held_until = now + lease_ms,
                    Ok(Ok(false)) => {
                        tracing::warn!(job_id = %job.id, "lease lost to another dispatcher; start given up");
                        return;
                    }
                    Ok(Err(_)) | Err(_) => {
                        // The next renewal could come after the lease ran out.
                        if held_until - self.clock.now_ms() < lease_ms / 2 {
                            tracing::warn!(job_id = %job.id, "lease not renewed in time; start given up");
                            return;
                        }
                        tracing::warn!(job_id = %job.id, "lease not renewed");
                    }
                }
            }
        };
        tokio::select! {
            result = call => Some(result),
            () = beat => None,
        }
    }

    /// An Airbyte job of the connection created since `since` (minus slack)
    /// that no Airlock job has claimed: the answer to a lost `POST /jobs`.
    async fn find_started(
        &self,
        job: &Job,
        connection_id: Uuid,
        since: i64,
    ) -> Result<Option<airbyte_client::Job>, AirbyteError> {
        let from = OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(since - RECONCILE_SLACK_MS) * 1_000_000,
        )
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let filter = JobFilter {
            connection_id: Some(connection_id),
            created_at_start: Some(from),
            order_by: Some(JobOrder::CreatedAtAsc),
            limit: Some(100),
            ..JobFilter::default()
        };
        let candidates = self.airbyte.list_all_jobs(&filter).await?;
        for candidate in candidates {
            let same_type = matches!(
                (&candidate.job_type, job.job_type),
                (airbyte_client::JobType::Sync, JobType::Sync)
                    | (
                        airbyte_client::JobType::Reset | airbyte_client::JobType::Clear,
                        JobType::Reset
                    )
            );
            if !same_type {
                continue;
            }
            // Skip jobs that are, or were, an attempt of an Airlock job
            // (a failed attempt of this very job included).
            match self
                .store
                .job_of_airbyte_attempt(&job.connection_id, candidate.job_id)
                .await
            {
                Ok(None) => return Ok(Some(candidate)),
                Ok(Some(_)) => {}
                Err(error) => {
                    return Err(AirbyteError::InvalidResponse(format!("database: {error}")));
                }
            }
        }
        Ok(None)
    }

    async fn started(
        &self,
        job: &Job,
        created: airbyte_client::Job,
        adopted: bool,
    ) -> Result<Outcome, StoreError> {
        tracing::Span::current().record("airbyte_job_id", created.job_id);
        let state = map_status(&created.status).unwrap_or(JobState::Pending);
        // A job that already ended by the time we learn of it is recorded as
        // started; the tracker records its end on its next pass.
        let state = if state.is_terminal() {
            JobState::Running
        } else {
            state
        };
        if self
            .store
            .mark_started(
                &job.id,
                &self.owner,
                created.job_id,
                state,
                self.clock.now_ms(),
            )
            .await?
        {
            Ok(Outcome::Started {
                airbyte_job_id: created.job_id,
                adopted,
            })
        } else {
            Ok(Outcome::LostLease)
        }
    }

    /// Back to the queue until Airbyte's running sync ends. When an earlier
    /// POST's answer was lost (`start_may_exist`), the job keeps the mark
    /// that makes its next dispatcher reconcile first.
    async fn wait_busy(&self, job: &Job, start_may_exist: bool) -> Result<Outcome, StoreError> {
        let run_after =
            self.clock.now_ms() + duration_ms(Duration::from_secs(self.config.busy_retry_secs));
        let requeue = Requeue {
            run_after,
            count_attempt: false,
            error: "a sync is already running on this connection in Airbyte",
            start_may_exist,
        };
        self.put_back(job, &requeue).await
    }

    async fn requeue(
        &self,
        job: &Job,
        error: &str,
        count_attempt: bool,
        start_may_exist: bool,
    ) -> Result<Outcome, StoreError> {
        let attempts = job.attempts + i64::from(count_attempt);
        if count_attempt && attempts >= job.max_attempts {
            return self.fail(job, error).await;
        }
        let delay = if count_attempt {
            jitter(self.config.backoff(attempts - 1))
        } else {
            Duration::from_secs(1)
        };
        let requeue = Requeue {
            run_after: self.clock.now_ms() + duration_ms(delay),
            count_attempt,
            error,
            start_may_exist,
        };
        self.put_back(job, &requeue).await
    }

    /// Puts the job back in the queue while this dispatcher still holds it.
    async fn put_back(&self, job: &Job, requeue: &Requeue<'_>) -> Result<Outcome, StoreError> {
        let held = self
            .store
            .requeue(&job.id, Some(&self.owner), requeue, self.clock.now_ms())
            .await?;
        Ok(if held {
            Outcome::Requeued
        } else {
            Outcome::LostLease
        })
    }

    async fn fail(&self, job: &Job, error: &str) -> Result<Outcome, StoreError> {
        self.store
            .update_job(
                &job.id,
                &JobChange {
                    error: Some(error),
                    ..JobChange::to(JobState::Failed)
                },
                self.clock.now_ms(),
            )
            .await?;
        Ok(Outcome::Failed)
    }
}

/// Up to 25% off, so that retries of many jobs spread out.
fn jitter(delay: Duration) -> Duration {
    let factor = 0.75 + rand::random::<f64>() * 0.25;
    delay.mul_f64(factor)
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
