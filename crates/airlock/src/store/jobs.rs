//! Job rows: inserting triggers (with idempotency keys), claiming them for
//! dispatch under a lease, and recording what Airbyte says of them.
//!
//! Every function takes `now` (unix ms) from the caller, so that tests drive
//! leases, backoff and key expiry with their own clock.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Backend, Store, StoreError};
use crate::audit;
use crate::jobs::model::{Job, JobId, JobState, JobType, NewJob};

/// How long an idempotency key holds: 24 hours.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

pub(super) const COLUMNS: &str = "id, connection_id, workspace_id, job_type, state, airbyte_job_id, attempts, \
    max_attempts, run_after, lease_owner, lease_until, start_requested_at, cancel_requested, requested_by, requester, \
    channel, retry_of, created_at, updated_at, finished_at, rows_synced, bytes_synced, duration, error";

/// One job by id, every column (`$1`: the id).
pub(super) static JOB_BY_ID: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"));

/// The names in [`COLUMNS`], in order: the inline reader finds a column's
/// position here rather than asking SQLite for every column's name.
pub(super) const COLUMN_NAMES: [&str; 24] = [
    "id",
    "connection_id",
    "workspace_id",
    "job_type",
    "state",
    "airbyte_job_id",
    "attempts",
    "max_attempts",
    "run_after",
    "lease_owner",
    "lease_until",
    "start_requested_at",
    "cancel_requested",
    "requested_by",
    "requester",
    "channel",
    "retry_of",
    "created_at",
    "updated_at",
    "finished_at",
    "rows_synced",
    "bytes_synced",
    "duration",
    "error",
];

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

/// What [`decode`] needs of a row: its columns by name. Rows of the pool and
/// of the inline SQLite reader (`store::inline`) both have them.
pub(super) trait Columns {
    fn text(&self, name: &str) -> Result<String, StoreError>;
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
}

impl Columns for AnyRow {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(name)?)
    }
}

/// A job from a row of [`COLUMNS`].
pub(super) fn decode(row: &impl Columns) -> Result<Job, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(what);
    let text = |name: &str| row.text(name);
    let opt_text = |name: &str| row.opt_text(name);
    let int = |name: &str| row.int(name);
    let opt_int = |name: &str| row.opt_int(name);
    Ok(Job {
        id: text("id")?.parse().map_err(corrupt)?,
        connection_id: text("connection_id")?,
        workspace_id: text("workspace_id")?,
        job_type: text("job_type")?.parse().map_err(corrupt)?,
        state: text("state")?.parse().map_err(corrupt)?,
        airbyte_job_id: opt_int("airbyte_job_id")?,
        attempts: int("attempts")?,
        max_attempts: int("max_attempts")?,
        run_after: int("run_after")?,
        lease_owner: opt_text("lease_owner")?,
        lease_until: opt_int("lease_until")?,
        start_requested_at: opt_int("start_requested_at")?,
        cancel_requested: int("cancel_requested")? != 0,
        requested_by: text("requested_by")?,
        requester: serde_json::from_str(&text("requester")?).map_err(|e| corrupt(e.to_string()))?,
        channel: text("channel")?.parse().map_err(corrupt)?,
        retry_of: opt_text("retry_of")?
            .map(|s| s.parse())
            .transpose()
            .map_err(corrupt)?,
        created_at: int("created_at")?,
        updated_at: int("updated_at")?,
        finished_at: opt_int("finished_at")?,
        rows_synced: opt_int("rows_synced")?,
        bytes_synced: opt_int("bytes_synced")?,
        duration: opt_text("duration")?,
        error: opt_text("error")?,
    })
}

/// A `job_events` row (`seq`, `state`, `at`, `detail`).
pub(super) fn decode_event(row: &AnyRow) -> Result<JobEvent, StoreError> {
    Ok(JobEvent {
        seq: row.try_get("seq")?,
        state: row
            .try_get::<String, _>("state")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        at: row.try_get("at")?,
        detail: row.try_get("detail")?,
    })
}

/// True when `error` is a unique-constraint violation (a lost race).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Appends a state to a job's timeline, without an audit record (the
/// caller writes a richer one).
async fn insert_event(
    conn: &mut AnyConnection,
    job_id: &JobId,
    state: JobState,
    now: i64,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_events (job_id, state, at, detail) VALUES ($1, $2, $3, $4)")
        .bind(job_id.as_str())
        .bind(state.as_str())
        .bind(now)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

/// Appends a state to a job's timeline and records the change in the audit
/// trail, in the caller's transaction.
async fn record_event(
    conn: &mut AnyConnection,
    job_id: &JobId,
    state: JobState,
    now: i64,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    insert_event(conn, job_id, state, now, detail).await?;
    let row = sqlx::query(
        "SELECT connection_id, workspace_id, airbyte_job_id, channel FROM jobs WHERE id = $1",
    )
    .bind(job_id.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let channel: String = row.try_get("channel")?;
    let entry = audit::Entry {
        actor: audit::Actor::system(),
        // Jobs Airbyte started by itself: the change was seen there.
        channel: if channel == "airbyte" {
            "airbyte".to_owned()
        } else {
            "airlock".to_owned()
        },
        action: "job.state".to_owned(),
        workspace_id: row.try_get("workspace_id")?,
        connection_id: row.try_get("connection_id")?,
        job_id: Some(job_id.to_string()),
        airbyte_job_id: row.try_get("airbyte_job_id")?,
        decision: "system".to_owned(),
        outcome: Some(state.as_str().to_owned()),
        detail: detail.map(|d| serde_json::json!({ "detail": d })),
        ..audit::Entry::default()
    };
    super::audit::append(conn, &entry, now).await?;
    Ok(())
}

/// The timeline detail of an attempt handed to Airbyte, which
/// [`Store::job_of_airbyte_attempt`] looks for.
fn attempt_detail(airbyte_job_id: i64) -> String {
    format!("airbyte job {airbyte_job_id}")
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

/// Rows per multi-row `INSERT` of jobs (15 parameters each).
const JOBS_PER_INSERT: usize = 64;

/// Stores triggers, in order, inside `tx` (see [`Store::insert_job`]): each
/// idempotency key is claimed on its own (its outcome decides the
/// trigger's), then the new jobs, their first events and their audit
/// records are written with a few multi-row statements, and one query
/// tells which new jobs have nothing ahead of them.
pub(super) async fn insert_batch(
    tx: &mut AnyConnection,
    inserts: &[&super::batch::Insert],
) -> Result<Vec<Inserted>, StoreError> {
    let jobs: Vec<Job> = inserts
        .iter()
        .map(|insert| new_job_row(&insert.new, insert.now))
        .collect();
    let claimed = claim_keys(tx, inserts, &jobs).await?;
    let mut outcomes: Vec<Option<Inserted>> = Vec::with_capacity(inserts.len());
    // (index in `inserts`, the job to create)
    let mut created: Vec<(usize, Job)> = Vec::new();
    for (index, (insert, job)) in inserts.iter().zip(jobs).enumerate() {
        if let Some(key) = &insert.key
            && !claimed.contains(&index)
        {
            // The key is live: it names an earlier job (of this batch or not).
            let row = sqlx::query(
                "SELECT request_hash, job_id FROM idempotency_keys WHERE principal = $1 AND key = $2",
            )
            .bind(&key.principal)
            .bind(&key.key)
            .fetch_one(&mut *tx)
            .await?;
            let hash: String = row.try_get("request_hash")?;
            let job_id: String = row.try_get("job_id")?;
            let outcome = if hash != key.request_hash {
                Inserted::KeyReused
            } else if let Some((_, job)) = created.iter().find(|(_, job)| job.id.as_str() == job_id)
            {
                // The same key twice in one batch.
                Inserted::Existing(job.clone())
            } else {
                let row = sqlx::query(AssertSqlSafe(JOB_BY_ID.as_str()))
                    .bind(&job_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("idempotency key names missing job {job_id}"))
                    })?;
                Inserted::Existing(decode(&row)?)
            };
            outcomes.push(Some(outcome));
            continue;
        }
        outcomes.push(None);
        created.push((index, job));
    }

    for chunk in created.chunks(JOBS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO jobs (id, connection_id, workspace_id, job_type, state, attempts, max_attempts, \
             run_after, cancel_requested, requested_by, requester, channel, retry_of, created_at, updated_at) \
             VALUES {}",
            placeholders(chunk.len(), 13, |p| format!(
                "(${}, ${}, ${}, ${}, ${}, 0, ${}, ${}, 0, ${}, ${}, ${}, ${}, ${}, ${})",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12]
            ))
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (_, job) in chunk {
            query = query
                .bind(job.id.as_str().to_owned())
                .bind(job.connection_id.clone())
                .bind(job.workspace_id.clone())
                .bind(job.job_type.as_str())
                .bind(job.state.as_str())
                .bind(job.max_attempts)
                .bind(job.run_after)
                .bind(job.requested_by.clone())
                .bind(job.requester.to_string())
                .bind(job.channel.as_str())
                .bind(job.retry_of.as_ref().map(|id| id.as_str().to_owned()))
                .bind(job.created_at)
                .bind(job.created_at);
        }
        query.execute(&mut *tx).await?;

        let sql = format!(
            "INSERT INTO job_events (job_id, state, at, detail) VALUES {}",
            placeholders(chunk.len(), 3, |p| format!(
                "(${}, ${}, ${}, NULL)",
                p[0], p[1], p[2]
            ))
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (_, job) in chunk {
            query = query
                .bind(job.id.as_str().to_owned())
                .bind(JobState::Queued.as_str())
                .bind(job.created_at);
        }
        query.execute(&mut *tx).await?;
    }

    let entries: Vec<audit::Entry> = created
        .iter()
        .map(|(index, job)| {
            let mut entry = inserts[*index].request.clone();
            entry.job_id = Some(job.id.to_string());
            entry.connection_id = Some(job.connection_id.clone());
            entry.workspace_id = Some(job.workspace_id.clone());
            entry.outcome = Some(JobState::Queued.as_str().to_owned());
            entry
        })
        .collect();
    let timed: Vec<(&audit::Entry, i64)> = entries
        .iter()
        .zip(&created)
        .map(|(entry, (_, job))| (entry, job.created_at))
        .collect();
    super::audit::append_many(tx, &timed).await?;

    // Which new jobs have nothing ahead of them on their connection: the
    // first new one of a connection whose unfinished jobs are all new.
    let mut connections: Vec<&str> = created
        .iter()
        .map(|(_, j)| j.connection_id.as_str())
        .collect();
    connections.sort_unstable();
    connections.dedup();
    let mut unfinished: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for chunk in connections.chunks(JOBS_PER_INSERT) {
        let sql = format!(
            "SELECT connection_id, COUNT(*) AS n FROM jobs \
             WHERE state IN ('queued', 'starting', 'pending', 'running') AND connection_id IN ({}) \
             GROUP BY connection_id",
            placeholders(chunk.len(), 1, |p| format!("${}", p[0]))
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for connection in chunk {
            query = query.bind(*connection);
        }
        for row in query.fetch_all(&mut *tx).await? {
            unfinished.insert(row.try_get("connection_id")?, row.try_get("n")?);
        }
    }
    let mut new_of: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (_, job) in &created {
        *new_of.entry(job.connection_id.as_str()).or_default() += 1;
    }
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let ready: Vec<bool> = created
        .iter()
        .map(|(_, job)| {
            let connection = job.connection_id.as_str();
            let before = unfinished.get(connection).copied().unwrap_or(0)
                - new_of.get(connection).copied().unwrap_or(0);
            seen.insert(connection) && before == 0
        })
        .collect();
    let mut created = created.into_iter().zip(ready);
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Some(outcome) => Ok(outcome),
            None => created
                .next()
                .map(|((_, job), ready)| Inserted::New { job, ready })
                .ok_or_else(|| StoreError::Corrupt("a batch lost a job".into())),
        })
        .collect()
}

/// Claims the idempotency keys of a batch, a few statements for all of them:
/// a key not stored yet, or stored more than [`IDEMPOTENCY_TTL_MS`] before
/// its trigger, now names that trigger's new job (`jobs[i]`). Returns the
/// indexes of the triggers whose key was claimed. Only the first trigger of
/// a key repeated within the batch takes part; the later ones find the key
/// live, as they would one transaction later.
async fn claim_keys(
    tx: &mut AnyConnection,
    inserts: &[&super::batch::Insert],
    jobs: &[Job],
) -> Result<std::collections::HashSet<usize>, StoreError> {
    let mut first: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    for (index, insert) in inserts.iter().enumerate() {
        if let Some(key) = &insert.key {
            first
                .entry((key.principal.as_str(), key.key.as_str()))
                .or_insert(index);
        }
    }
    let mut candidates: Vec<usize> = first.values().copied().collect();
    candidates.sort_unstable();
    let mut claimed = std::collections::HashSet::new();
    for chunk in candidates.chunks(JOBS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO idempotency_keys (principal, key, request_hash, job_id, created_at) VALUES {} \
             ON CONFLICT (principal, key) DO UPDATE SET request_hash = excluded.request_hash, \
               job_id = excluded.job_id, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < excluded.created_at - {IDEMPOTENCY_TTL_MS} \
             RETURNING principal, key",
            placeholders(chunk.len(), 5, |p| format!(
                "(${}, ${}, ${}, ${}, ${})",
                p[0], p[1], p[2], p[3], p[4]
            ))
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for &index in chunk {
            let insert = inserts[index];
            let key = insert.key.as_ref().ok_or_else(|| {
                StoreError::Corrupt("a keyless trigger among the keyed".to_owned())
            })?;
            query = query
                .bind(key.principal.clone())
                .bind(key.key.clone())
                .bind(key.request_hash.clone())
                .bind(jobs[index].id.as_str().to_owned())
                .bind(insert.now);
        }
        for row in query.fetch_all(&mut *tx).await? {
            let principal: String = row.try_get("principal")?;
            let key: String = row.try_get("key")?;
            let index = first
                .get(&(principal.as_str(), key.as_str()))
                .ok_or_else(|| StoreError::Corrupt(format!("claimed an unknown key {key}")))?;
            claimed.insert(*index);
        }
    }
    Ok(claimed)
}

/// `rows` groups of `per_row` numbered placeholders (`$1`, `$2`, ...),
/// each group rendered by `row`, joined with commas.
fn placeholders(rows: usize, per_row: usize, row: impl Fn(&[usize]) -> String) -> String {
    (0..rows)
        .map(|r| {
            let numbers: Vec<usize> = (1..=per_row).map(|c| r * per_row + c).collect();
            row(&numbers)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The row of a new, queued job.
fn new_job_row(new: &NewJob, now: i64) -> Job {
    Job {
        id: JobId::generate(),
        connection_id: new.connection_id.clone(),
        workspace_id: new.workspace_id.clone(),
        job_type: new.job_type,
        state: JobState::Queued,
        airbyte_job_id: None,
        attempts: 0,
        max_attempts: new.max_attempts,
        run_after: now,
        lease_owner: None,
        lease_until: None,
        start_requested_at: None,
        cancel_requested: false,
        requested_by: new.requested_by.clone(),
        requester: new.requester.clone(),
        channel: new.channel,
        retry_of: new.retry_of.clone(),
        created_at: now,
        updated_at: now,
        finished_at: None,
        rows_synced: None,
        bytes_synced: None,
        duration: None,
        error: None,
    }
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
    /// Stores a trigger, honouring its idempotency key, in one transaction:
    /// when this returns `New`, the job is durable.
    ///
    /// `request` is the audit record of the request that asked for it (its
    /// job id and outcome are filled in here); it is written in the same
    /// transaction, only when a new job is stored.
    ///
    /// Triggers that arrive together share a transaction (a group commit,
    /// see [`super::batch`]); each caller still hears back only after the
    /// commit that made its job durable.
    pub async fn insert_job(
        &self,
        new: &NewJob,
        key: Option<&IdempotencyKey>,
        now: i64,
        request: &audit::Entry,
    ) -> Result<Inserted, StoreError> {
        self.inserts
            .submit(super::batch::Insert {
                new: new.clone(),
                key: key.cloned(),
                now,
                request: request.clone(),
            })
            .await
    }

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

    /// Claims the next job to hand to Airbyte: the oldest queued job whose
    /// time has come on a connection with no job in Airbyte's hands (one
    /// whose cancel was asked for too: the dispatcher settles it), or a
    /// job whose dispatcher died while starting it (lease expired; the new
    /// owner must reconcile before asking Airbyte again).
    ///
    /// The claim is also the durable note that a `POST /jobs` is about to
    /// go out (`start_requested_at`), in the same write, unless a cancel
    /// was asked for: a start costs one write fewer. A job that already
    /// carries such a note from an earlier attempt keeps it, and the claim
    /// says so ([`Claim::earlier_request`]): that attempt's answer was lost
    /// or its dispatcher died, and the new owner reconciles first.
    ///
    /// No transaction stays open: a read picks the candidate, then an
    /// `UPDATE` of it re-checks it is still claimable (a lost race searches
    /// again, up to three times), and the lease (`lease_until`) is what
    /// keeps other dispatchers away.
    pub async fn claim_job(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Claim>, StoreError> {
        // Candidates are the head of each connection's queue (when nothing
        // of that connection is in Airbyte's hands) and starts whose lease
        // ran out. The connections with queued jobs are walked one by one
        // through the `jobs_queue` index, so a claim costs a few index
        // probes per connection, however many jobs wait behind the heads.
        // Every lookup is a scalar subquery, never a join: with statistics
        // of a table that was empty a moment ago, Postgres once put a scan
        // of every job outside the walk and took tens of seconds per claim.
        const CANDIDATE: &str = "WITH RECURSIVE queued(connection_id) AS ( \
               SELECT (SELECT MIN(connection_id) FROM jobs WHERE state = 'queued') \
               UNION ALL \
               SELECT (SELECT MIN(q.connection_id) FROM jobs q \
                       WHERE q.state = 'queued' AND q.connection_id > c.connection_id) \
               FROM queued c WHERE c.connection_id IS NOT NULL), \
             heads(id) AS MATERIALIZED ( \
               SELECT (SELECT MIN(h.id) FROM jobs h \
                       WHERE h.state = 'queued' AND h.connection_id = c.connection_id) \
               FROM queued c \
               WHERE c.connection_id IS NOT NULL \
                 AND (SELECT 1 FROM jobs o WHERE o.connection_id = c.connection_id \
                      AND o.state IN ('starting', 'pending', 'running') LIMIT 1) IS NULL), \
             candidates(id, run_after, expired) AS ( \
               SELECT h.id, (SELECT j.run_after FROM jobs j WHERE j.id = h.id), 0 FROM heads h \
               UNION ALL \
               SELECT s.id, s.run_after, 1 FROM jobs s WHERE s.state = 'starting' AND s.lease_until < $1) \
             SELECT id FROM candidates WHERE expired = 1 OR run_after <= $1 \
             ORDER BY run_after, id LIMIT 1";
        // The usual case first: among the oldest queued jobs (in the
        // claim's order, off the `jobs_dispatch` index) is the head of an
        // idle connection. Found there, it is exactly what the walk would
        // find; otherwise (all of them wait behind busy connections, or a
        // start's lease ran out) the walk decides.
        const OLDEST: &str = "SELECT j.id FROM ( \
               SELECT id, connection_id, run_after FROM jobs \
               WHERE state = 'queued' AND run_after <= $1 ORDER BY run_after, id LIMIT 64) j \
             WHERE j.id = (SELECT MIN(h.id) FROM jobs h \
                           WHERE h.state = 'queued' AND h.connection_id = j.connection_id) \
               AND (SELECT 1 FROM jobs o WHERE o.connection_id = j.connection_id \
                    AND o.state IN ('starting', 'pending', 'running') LIMIT 1) IS NULL \
               AND (SELECT 1 FROM jobs s WHERE s.state = 'starting' AND s.lease_until < $1 LIMIT 1) IS NULL \
             ORDER BY j.run_after, j.id LIMIT 1";
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            // On SQLite the search is a read, which in WAL mode does not
            // hold the one write lock every trigger needs; only the short
            // `UPDATE` by id does.
            let Some(candidate) = self.claim_candidate(&[OLDEST, CANDIDATE], now).await? else {
                return Ok(None);
            };
            // Usually no earlier `POST /jobs` was noted, and the first
            // `UPDATE` takes the job; the second takes one that has such a
            // note, and keeps it. Both re-check that the job is still
            // claimable: a candidate another dispatcher took in between is
            // lost (Postgres makes the second `UPDATE` wait for the first
            // and then re-check), and the search runs again.
            for earlier in [false, true] {
                let row = match self.take(owner, lease_ms, now, &candidate, earlier).await {
                    Ok(row) => row,
                    // Another dispatcher won the connection in the same instant.
                    Err(error) if is_unique_violation(&error) => return Ok(None),
                    Err(error) => return Err(error.into()),
                };
                if let Some(row) = row {
                    let job = decode(&row)?;
                    let earlier_request = if earlier {
                        job.start_requested_at
                    } else {
                        None
                    };
                    return Ok(Some(Claim {
                        job,
                        earlier_request,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Claims `id` if it is still claimable and carries a note of an
    /// earlier `POST /jobs` exactly when `earlier` is true. Without one,
    /// the claim writes the note (unless a cancel was asked for).
    async fn take(
        &self,
        owner: &str,
        lease_ms: i64,
        now: i64,
        id: &str,
        earlier: bool,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        const FRESH: &str = "UPDATE jobs SET state = 'starting', lease_owner = $1, lease_until = $2, updated_at = $3, \
               start_requested_at = CASE WHEN cancel_requested = 0 THEN $3 ELSE NULL END \
             WHERE id = $4 AND start_requested_at IS NULL \
               AND ((state = 'queued' AND run_after <= $3) OR (state = 'starting' AND lease_until < $3)) \
             RETURNING ";
        const EARLIER: &str = "UPDATE jobs SET state = 'starting', lease_owner = $1, lease_until = $2, updated_at = $3 \
             WHERE id = $4 AND start_requested_at IS NOT NULL \
               AND ((state = 'queued' AND run_after <= $3) OR (state = 'starting' AND lease_until < $3)) \
             RETURNING ";
        static STATEMENTS: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
            [format!("{FRESH}{COLUMNS}"), format!("{EARLIER}{COLUMNS}")]
        });
        let mut conn = self.turns.writer(&self.pool).await?;
        sqlx::query(AssertSqlSafe(STATEMENTS[usize::from(earlier)].as_str()))
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
    }

    /// The id the first of `searches` to find one finds, if any. On
    /// Postgres they run in one transaction, each planned for the table as
    /// it is now (an unnamed statement, not a plan cached while the table
    /// was nearly empty) and with sequential and bitmap scans off. A plan
    /// that scans the whole table at some step never ends while triggers
    /// keep inserting: such claims were seen running for tens of seconds.
    async fn claim_candidate(
        &self,
        searches: &[&str],
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        match self.backend {
            Backend::Sqlite => {
                for search in searches {
                    let found = sqlx::query_scalar(AssertSqlSafe(*search))
                        .bind(now)
                        .fetch_optional(&self.pool)
                        .await?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                Ok(None)
            }
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::Executor::execute(
                    &mut *tx,
                    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
                )
                .await?;
                let mut found = None;
                for search in searches {
                    found = sqlx::query_scalar(AssertSqlSafe(*search))
                        .persistent(false)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_some() {
                        break;
                    }
                }
                tx.commit().await?;
                Ok(found)
            }
        }
    }

    /// Gives up this replica's leases at shutdown, so that another replica
    /// (or this one, restarted) takes the jobs over at once instead of after
    /// the lease runs out. They keep `start_requested_at`: the next owner
    /// reconciles before sending anything.
    pub async fn release_leases(&self, owner: &str, now: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer().await?;
        Ok(sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE (lease_owner = $2 OR lease_owner LIKE $3) AND state = 'starting'",
        )
        .bind(now - 1)
        .bind(owner)
        .bind(format!("{owner}#%"))
        .execute(&mut *conn)
        .await?
        .rows_affected())
    }

    /// Extends the lease of a job being started; false when the lease was
    /// lost (another dispatcher took over).
    pub async fn heartbeat(
        &self,
        id: &JobId,
        owner: &str,
        lease_ms: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer().await?;
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'starting'",
        )
        .bind(now + lease_ms)
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Records that Airbyte accepted the job as `airbyte_job_id`. Counts the
    /// attempt and releases the lease: from now on the tracker follows it.
    pub async fn mark_started(
        &self,
        id: &JobId,
        owner: &str,
        airbyte_job_id: i64,
        state: JobState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, airbyte_job_id = $2, attempts = attempts + 1, lease_owner = NULL, \
             lease_until = NULL, start_requested_at = NULL, updated_at = $3, error = NULL \
             WHERE id = $4 AND lease_owner = $5 AND state = 'starting'",
        )
        .bind(state.as_str())
        .bind(airbyte_job_id)
        .bind(now)
        .bind(id.as_str())
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 1 {
            record_event(
                &mut tx,
                id,
                state,
                now,
                Some(&attempt_detail(airbyte_job_id)),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Puts a job back in the queue, releasing any lease.
    pub async fn requeue(
        &self,
        id: &JobId,
        owner: Option<&str>,
        requeue: &Requeue<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', airbyte_job_id = NULL, run_after = $1, \
             attempts = attempts + $2, lease_owner = NULL, lease_until = NULL, updated_at = $3, error = $4, \
             start_requested_at = CASE WHEN $7 = 1 THEN start_requested_at ELSE NULL END \
             WHERE id = $5 AND ($6 IS NULL OR lease_owner = $6) AND state IN ('starting', 'pending', 'running')",
        )
        .bind(requeue.run_after)
        .bind(i64::from(requeue.count_attempt))
        .bind(now)
        .bind(requeue.error)
        .bind(id.as_str())
        .bind(owner)
        .bind(i64::from(requeue.start_may_exist))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 1 {
            record_event(&mut tx, id, JobState::Queued, now, Some(requeue.error)).await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Moves a job to `change.state` with what Airbyte reported. A terminal
    /// state sets `finished_at` and is final: later updates are ignored.
    pub async fn update_job(
        &self,
        id: &JobId,
        change: &JobChange<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let JobChange {
            state,
            rows_synced,
            bytes_synced,
            duration,
            error,
        } = *change;
        let mut tx = self.begin_write().await?;
        let finished_at = state.is_terminal().then_some(now);
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, rows_synced = COALESCE($2, rows_synced), \
             bytes_synced = COALESCE($3, bytes_synced), duration = COALESCE($4, duration), \
             error = COALESCE($5, error), finished_at = $6, updated_at = $7, lease_owner = NULL, lease_until = NULL \
             WHERE id = $8 AND state NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(state.as_str())
        .bind(rows_synced)
        .bind(bytes_synced)
        .bind(duration)
        .bind(error)
        .bind(finished_at)
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 1 {
            record_event(&mut tx, id, state, now, error).await?;
        }
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Marks a cancel as asked for. Returns the job as it now stands; a job
    /// still queued is cancelled on the spot, unless an earlier `POST /jobs`
    /// for it may have started a sync (the dispatcher then reconciles, and
    /// cancels that sync or the job). `request` (the cancel's audit
    /// record) is written in the same transaction.
    pub async fn request_cancel(
        &self,
        id: &JobId,
        now: i64,
        request: &audit::Entry,
    ) -> Result<Option<Job>, StoreError> {
        let mut tx = self.begin_write().await?;
        super::audit::append(&mut tx, request, now).await?;
        let cancelled_here = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'queued' AND start_requested_at IS NULL",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if cancelled_here == 1 {
            record_event(
                &mut tx,
                id,
                JobState::Cancelled,
                now,
                Some("cancelled before it started"),
            )
            .await?;
        } else {
            sqlx::query(
                "UPDATE jobs SET cancel_requested = 1, updated_at = $1 \
                 WHERE id = $2 AND state IN ('queued', 'starting', 'pending', 'running')",
            )
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_job(id).await
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

    /// Records a job that Airbyte started by itself (its scheduler, its UI)
    /// on a known connection, so that it appears next to Airlock's own.
    /// Returns `None` when it is already known.
    pub async fn insert_external_job(
        &self,
        connection_id: &str,
        workspace_id: &str,
        job_type: JobType,
        seen: &AirbyteReport<'_>,
        now: i64,
    ) -> Result<Option<Job>, StoreError> {
        let id = JobId::generate();
        let mut tx = self.begin_write().await?;
        let result = sqlx::query(
            "INSERT INTO jobs (id, connection_id, workspace_id, job_type, state, airbyte_job_id, attempts, \
             max_attempts, run_after, cancel_requested, requested_by, requester, channel, created_at, updated_at, \
             finished_at, rows_synced, bytes_synced, duration) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, 1, $7, 0, 'airbyte', '{\"kind\":\"airbyte\"}', 'airbyte', $7, $7, $8, $9, $10, $11)",
        )
        .bind(id.as_str())
        .bind(connection_id)
        .bind(workspace_id)
        .bind(job_type.as_str())
        .bind(seen.state.as_str())
        .bind(seen.airbyte_job_id)
        .bind(now)
        .bind(seen.state.is_terminal().then_some(now))
        .bind(seen.rows_synced)
        .bind(seen.bytes_synced)
        .bind(seen.duration)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                return Ok(None);
            }
            Err(error) => return Err(error.into()),
        }
        let detail = format!("started in Airbyte as job {}", seen.airbyte_job_id);
        record_event(&mut tx, &id, seen.state, now, Some(&detail)).await?;
        tx.commit().await?;
        self.get_job(&id).await
    }

    /// Records rows, bytes and duration of a job still running (no new
    /// state, so nothing is added to its timeline).
    pub async fn update_progress(
        &self,
        id: &JobId,
        seen: &AirbyteReport<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        sqlx::query(
            "UPDATE jobs SET rows_synced = COALESCE($1, rows_synced), bytes_synced = COALESCE($2, bytes_synced), \
             duration = COALESCE($3, duration), updated_at = $4 \
             WHERE id = $5 AND state NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(seen.rows_synced)
        .bind(seen.bytes_synced)
        .bind(seen.duration)
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
        Ok(())
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

    /// Forgets idempotency keys older than their 24 hours.
    pub async fn purge_idempotency_keys(&self, now: i64) -> Result<u64, StoreError> {
        let mut conn = self.writer().await?;
        Ok(
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(now - IDEMPOTENCY_TTL_MS)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        )
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
