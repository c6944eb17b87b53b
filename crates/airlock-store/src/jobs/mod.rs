//! Job rows: inserting triggers (with idempotency keys), claiming them for
//! dispatch under a lease, and recording what Airbyte says of them.
//!
//! - [`codec`]: the row's columns and its decoding.
//! - `insert`: triggers in batches, with idempotency keys; jobs Airbyte
//!   started by itself.
//! - `claim`: the dispatcher's claim under a lease, and what it records
//!   while it holds one.
//! - `changes`: state changes on the job's timeline, cancels, progress.
//! - here: the types callers pass and get, and the reads.
//!
//! Every function takes `now` (unix ms) from the caller, so that tests drive
//! leases, backoff and key expiry with their own clock.

pub(crate) mod batch;
mod changes;
mod claim;
pub(super) mod codec;
mod insert;

pub(crate) use changes::insert_event;
use changes::{attempt_detail, record_event};
use codec::new_job_row;
pub(super) use codec::{COLUMN_NAMES, COLUMNS, Columns, JOB_BY_ID, decode, decode_event};
pub(super) use insert::insert_batch;
use insert::is_unique_violation;

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};
use airlock_domain::jobs::model::{Job, JobId, JobState, JobType};

/// How long an idempotency key holds: 24 hours.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// An idempotency key as a trigger presents it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// Whose key it is (issuer and subject): keys never collide across callers.
    pub principal: String,
    pub key: String,
    /// A hash of what the request asked for, to catch a reused key.
    pub request_hash: String,
}

/// The outcome of storing a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new job, durably stored. `ready` when nothing else of its
    /// connection was queued or in Airbyte's hands: a dispatcher can take
    /// it now (otherwise it waits its turn, and waking one is wasted work).
    New { job: Job, ready: bool },
    /// The idempotency key was seen before with the same request: its job.
    Existing(Job),
    /// The idempotency key was seen before with a different request.
    KeyReused,
}

/// Filters of a job listing; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub connection_ids: Option<Vec<String>>,
    pub state: Option<JobState>,
    pub job_type: Option<JobType>,
    pub requested_by: Option<String>,
    /// Created at or after (unix ms).
    pub since: Option<i64>,
    /// Only jobs whose id sorts before this one (newest first pagination).
    pub before: Option<JobId>,
    pub limit: i64,
}

/// A job a dispatcher now holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The job, in state `starting`, leased to the claimant.
    pub job: Job,
    /// When an earlier `POST /jobs` for it may have gone out (unix ms):
    /// its answer was lost or its dispatcher died, so the claimant looks
    /// for the Airbyte job it may have created before sending another.
    pub earlier_request: Option<i64>,
}

/// How a job goes back to the queue.
#[derive(Debug, Clone)]
pub struct Requeue<'a> {
    /// Not dispatched again before this (unix ms).
    pub run_after: i64,
    /// False when Airbyte refused for a reason that is not the job's fault
    /// (a sync already running there).
    pub count_attempt: bool,
    /// Why, in a few words (shown as the job's `error`).
    pub error: &'a str,
    /// True when a `POST /jobs` for it may have created an Airbyte job
    /// (an ambiguous answer): the next dispatcher reconciles first.
    pub start_may_exist: bool,
}

/// What Airbyte reported of one of its jobs.
#[derive(Debug, Clone, Copy)]
pub struct AirbyteReport<'a> {
    pub airbyte_job_id: i64,
    pub state: JobState,
    pub rows_synced: Option<i64>,
    pub bytes_synced: Option<i64>,
    pub duration: Option<&'a str>,
}

/// One entry of a job's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobEvent {
    pub seq: i64,
    pub state: JobState,
    pub at: i64,
    pub detail: Option<String>,
}

/// A job's move to a new state, with what Airbyte reported about it; what
/// is `None` keeps its stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobChange<'a> {
    pub state: JobState,
    pub rows_synced: Option<i64>,
    pub bytes_synced: Option<i64>,
    /// ISO 8601, as Airbyte sends it (`PT5S`).
    pub duration: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl JobChange<'_> {
    /// A move to `state`, with nothing else to record.
    pub fn to(state: JobState) -> Self {
        Self {
            state,
            rows_synced: None,
            bytes_synced: None,
            duration: None,
            error: None,
        }
    }
}

impl Store {
    /// One job by id (a finished job from memory when it was read before:
    /// see [`super::finished`]).
    pub async fn get_job(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        if let Some(job) = self.finished.get(id.as_str()) {
            return Ok(Some(job));
        }
        if let Some(reader) = &self.inline {
            match reader.get_job(id.as_str()) {
                Ok(job) => {
                    if let Some(job) = &job {
                        self.finished.offer(job);
                    }
                    return Ok(job);
                }
                Err(error) => {
                    tracing::debug!(%error, "inline read failed; reading through the pool")
                }
            }
        }
        let row = sqlx::query(AssertSqlSafe(JOB_BY_ID.as_str()))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let job = row.as_ref().map(decode).transpose()?;
        if let Some(job) = &job {
            self.finished.offer(job);
        }
        Ok(job)
    }

    /// The Airlock job of `connection_id` that started Airbyte job
    /// `airbyte_job_id` as one of its attempts, the current one or an
    /// earlier, failed one (its timeline keeps every attempt), if any.
    pub async fn job_of_airbyte_attempt(
        &self,
        connection_id: &str,
        airbyte_job_id: i64,
    ) -> Result<Option<JobId>, StoreError> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT j.id FROM jobs j WHERE j.connection_id = $1 AND (j.airbyte_job_id = $2 \
             OR EXISTS (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.detail = $3)) LIMIT 1",
        )
        .bind(connection_id)
        .bind(airbyte_job_id)
        .bind(attempt_detail(airbyte_job_id))
        .fetch_optional(&self.pool)
        .await?;
        id.map(|id| id.parse().map_err(StoreError::Corrupt))
            .transpose()
    }

    /// The job Airlock recorded for an Airbyte job id, if any.
    pub async fn get_job_by_airbyte_id(
        &self,
        airbyte_job_id: i64,
    ) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE airbyte_job_id = $1"
        )))
        .bind(airbyte_job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Jobs matching `filter`, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut q = Where::new(format!("SELECT {COLUMNS} FROM jobs WHERE 1 = 1"));
        if let Some(ids) = &filter.connection_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let placeholders: Vec<String> = ids
                .iter()
                .map(|id| q.bind(Bind::Text(id.clone())))
                .collect();
            q.sql.push_str(&format!(
                " AND connection_id IN ({})",
                placeholders.join(", ")
            ));
        }
        if let Some(state) = filter.state {
            q.and("state =", Bind::Text(state.as_str().to_owned()));
        }
        if let Some(job_type) = filter.job_type {
            q.and("job_type =", Bind::Text(job_type.as_str().to_owned()));
        }
        if let Some(who) = &filter.requested_by {
            q.and("requested_by =", Bind::Text(who.clone()));
        }
        if let Some(since) = filter.since {
            q.and("created_at >=", Bind::Int(since));
        }
        if let Some(before) = &filter.before {
            q.and("id <", Bind::Text(before.as_str().to_owned()));
        }
        let limit = q.bind(Bind::Int(filter.limit.clamp(1, 1000)));
        q.sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let mut query = sqlx::query(AssertSqlSafe(q.sql));
        for bind in q.binds {
            query = match bind {
                Bind::Text(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// The jobs of a connection that are not finished, oldest first.
    pub async fn unfinished_jobs_of(&self, connection_id: &str) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE connection_id = $1 \
             AND state IN ('queued', 'starting', 'pending', 'running') ORDER BY id"
        )))
        .bind(connection_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Jobs that Airbyte has and that have not finished: what the tracker follows.
    pub async fn jobs_in_airbyte(&self) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE state IN ('pending', 'running') AND airbyte_job_id IS NOT NULL"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Jobs whose cancel was asked for and is not done yet.
    pub async fn cancels_pending(&self) -> Result<Vec<Job>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE cancel_requested = 1 AND state IN ('pending', 'running') \
             AND airbyte_job_id IS NOT NULL"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// A job's timeline after `after_seq`, oldest first.
    pub async fn job_events(
        &self,
        id: &JobId,
        after_seq: i64,
    ) -> Result<Vec<JobEvent>, StoreError> {
        let rows = sqlx::query("SELECT seq, state, at, detail FROM job_events WHERE job_id = $1 AND seq > $2 ORDER BY seq")
            .bind(id.as_str())
            .bind(after_seq)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// Counts of jobs by state (for metrics and the queue depth).
    pub async fn count_jobs_by_state(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok((
                    state.parse().map_err(StoreError::Corrupt)?,
                    row.try_get("n")?,
                ))
            })
            .collect()
    }
}

/// A value for a placeholder of a query built at run time.
enum Bind {
    Text(String),
    Int(i64),
}

/// A `WHERE` clause built at run time, numbering its `$N` placeholders.
struct Where {
    sql: String,
    binds: Vec<Bind>,
}

impl Where {
    fn new(sql: String) -> Self {
        Self {
            sql,
            binds: Vec::new(),
        }
    }

    /// Adds a value; returns its placeholder.
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Adds ` AND {condition} $N`.
    fn and(&mut self, condition: &str, value: Bind) {
        let placeholder = self.bind(value);
        self.sql
            .push_str(&format!(" AND {condition} {placeholder}"));
    }
}
