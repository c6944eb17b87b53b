//! The job row: its columns, and decoding a row (from sqlx or the inline
//! reader) into a [`Job`].

use sqlx::Row;
use sqlx::any::AnyRow;

use super::super::StoreError;
use super::*;
use airlock_domain::jobs::model::{Job, JobId, JobState, NewJob};

pub(crate) const COLUMNS: &str = "id, connection_id, workspace_id, job_type, state, airbyte_job_id, attempts, \
    max_attempts, run_after, lease_owner, lease_until, start_requested_at, cancel_requested, requested_by, requester, \
    channel, retry_of, created_at, updated_at, finished_at, rows_synced, bytes_synced, duration, error, \
    approval_id, approval_state, trace_parent";

/// One job by id, every column (`$1`: the id).
pub(crate) static JOB_BY_ID: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"));

/// The names in [`COLUMNS`], in order: the inline reader finds a column's
/// position here rather than asking SQLite for every column's name.
pub(crate) const COLUMN_NAMES: [&str; 27] = [
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
    "approval_id",
    "approval_state",
    "trace_parent",
];

/// What [`decode`] needs of a row: its columns by name. Rows of the pool and
/// of the inline SQLite reader (`store::inline`) both have them.
pub(crate) trait Columns {
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
pub(crate) fn decode(row: &impl Columns) -> Result<Job, StoreError> {
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
        approval_id: opt_text("approval_id")?,
        approval_state: opt_text("approval_state")?,
        created_at: int("created_at")?,
        updated_at: int("updated_at")?,
        finished_at: opt_int("finished_at")?,
        rows_synced: opt_int("rows_synced")?,
        bytes_synced: opt_int("bytes_synced")?,
        duration: opt_text("duration")?,
        error: opt_text("error")?,
        trace_parent: opt_text("trace_parent")?,
    })
}

/// A `job_events` row (`seq`, `state`, `at`, `detail`).
pub(crate) fn decode_event(row: &AnyRow) -> Result<JobEvent, StoreError> {
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

/// The row of a new, queued job.
pub(crate) fn new_job_row(new: &NewJob, now: i64) -> Job {
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
        approval_id: None,
        approval_state: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
        rows_synced: None,
        bytes_synced: None,
        duration: None,
        error: None,
        trace_parent: new.trace_parent.clone(),
    }
}
