//! Jobs started through the Airbyte-compatible front: Airbyte has already
//! accepted them when they are recorded, so they enter the table as started
//! (state `pending` or `running`, Airbyte job id known) and the tracker
//! follows them like any other.

use sqlx::AnyConnection;

use super::{Store, StoreError};
use airlock_domain::audit;
use airlock_domain::jobs::model::{Channel, Job, JobId, JobState, JobType};

/// A job Airbyte accepted for a caller of the front.
#[derive(Debug, Clone)]
pub struct StartedJob<'a> {
    pub connection_id: &'a str,
    pub workspace_id: &'a str,
    pub job_type: JobType,
    pub airbyte_job_id: i64,
    /// What Airbyte said of it (normally `pending` or `running`).
    pub state: JobState,
    /// The principal's subject.
    pub requested_by: &'a str,
    /// The principal as JSON (issuer, subject, kind, client id).
    pub requester: &'a serde_json::Value,
    pub channel: Channel,
    /// The W3C `traceparent` of the request that started it, when traced.
    pub trace_parent: Option<&'a str>,
}

/// What recording a started job did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// A new row.
    New(Job),
    /// The tracker had already seen the Airbyte job and recorded it as
    /// Airbyte's own: the row now names the caller and the channel.
    Adopted(Job),
    /// A row for this Airbyte job was already there, started by Airlock
    /// itself: left as it was.
    Existing(Job),
    /// Another job of the connection is active in Airlock's table (one not
    /// yet seen to end): the Airbyte job is not recorded, the tracker will
    /// record it once that one ends.
    ConnectionBusy,
}

/// Appends a state to a job's timeline.
async fn insert_event(
    conn: &mut AnyConnection,
    job_id: &JobId,
    state: JobState,
    now: i64,
    detail: &str,
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

impl Store {
    /// Records a job that Airbyte accepted through the front, with the
    /// request's audit record (`request`; its job fields are filled in
    /// here), in one transaction.
    ///
    /// Respects the unique indexes: one row per Airbyte job (a row the
    /// tracker made for it is adopted) and one active job per connection.
    /// Front jobs get one attempt: the caller, not Airlock, decides whether
    /// a failed sync runs again.
    pub async fn insert_started_job(
        &self,
        job: &StartedJob<'_>,
        now: i64,
        request: &audit::Entry,
    ) -> Result<Recorded, StoreError> {
        let id = JobId::generate();
        let mut tx = self.begin_write().await?;
        let inserted = insert_row(&mut tx, &id, job, now).await?;
        let mut entry = request.clone();
        entry.connection_id = Some(job.connection_id.to_owned());
        entry.workspace_id = Some(job.workspace_id.to_owned());
        entry.airbyte_job_id = Some(job.airbyte_job_id);
        let outcome = if inserted == 1 {
            let detail = format!(
                "started in Airbyte as job {} through the {} channel",
                job.airbyte_job_id,
                job.channel.as_str()
            );
            insert_event(&mut tx, &id, job.state, now, &detail).await?;
            entry.job_id = Some(id.to_string());
            Outcome::New
        } else {
            adopt_or_leave(&mut tx, job, now, &mut entry).await?
        };
        entry.outcome = Some(
            match outcome {
                Outcome::Busy => "started; not recorded (another job of the connection is active)",
                _ => "started",
            }
            .to_owned(),
        );
        super::audit::append(&mut tx, &entry, now).await?;
        tx.commit().await?;
        self.recorded(job.airbyte_job_id, outcome).await
    }

    /// What recording did, with the job's row as it now is.
    async fn recorded(
        &self,
        airbyte_job_id: i64,
        outcome: Outcome,
    ) -> Result<Recorded, StoreError> {
        let row = || async {
            self.get_job_by_airbyte_id(airbyte_job_id)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "Airbyte job {airbyte_job_id} vanished after it was recorded"
                    ))
                })
        };
        Ok(match outcome {
            Outcome::New => Recorded::New(row().await?),
            Outcome::Adopted => Recorded::Adopted(row().await?),
            Outcome::Existing => Recorded::Existing(row().await?),
            Outcome::Busy => Recorded::ConnectionBusy,
        })
    }
}

/// Inserts the row of a started job unless a unique index refuses it
/// (`ON CONFLICT DO NOTHING`); the rows inserted (0 or 1).
async fn insert_row(
    conn: &mut AnyConnection,
    id: &JobId,
    job: &StartedJob<'_>,
    now: i64,
) -> Result<u64, StoreError> {
    let finished_at = job.state.is_terminal().then_some(now);
    let inserted = sqlx::query(
        "INSERT INTO jobs (id, connection_id, workspace_id, job_type, state, airbyte_job_id, attempts, \
         max_attempts, run_after, cancel_requested, requested_by, requester, channel, created_at, updated_at, \
         finished_at, trace_parent) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, 1, $7, 0, $8, $9, $10, $7, $7, $11, $12) ON CONFLICT DO NOTHING",
    )
    .bind(id.as_str())
    .bind(job.connection_id)
    .bind(job.workspace_id)
    .bind(job.job_type.as_str())
    .bind(job.state.as_str())
    .bind(job.airbyte_job_id)
    .bind(now)
    .bind(job.requested_by)
    .bind(job.requester.to_string())
    .bind(job.channel.as_str())
    .bind(finished_at)
    .bind(job.trace_parent)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// When the row was not inserted: adopts the Airbyte job's row if the
/// tracker recorded it as Airbyte's own, and names in `entry` the row
/// there is (none when the connection's active job refused the insert).
async fn adopt_or_leave(
    conn: &mut AnyConnection,
    job: &StartedJob<'_>,
    now: i64,
    entry: &mut audit::Entry,
) -> Result<Outcome, StoreError> {
    let adopted = sqlx::query(
        "UPDATE jobs SET channel = $1, requested_by = $2, requester = $3, updated_at = $4, trace_parent = $5 \
         WHERE airbyte_job_id = $6 AND channel = 'airbyte'",
    )
    .bind(job.channel.as_str())
    .bind(job.requested_by)
    .bind(job.requester.to_string())
    .bind(now)
    .bind(job.trace_parent)
    .bind(job.airbyte_job_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM jobs WHERE airbyte_job_id = $1")
            .bind(job.airbyte_job_id)
            .fetch_optional(&mut *conn)
            .await?;
    entry.job_id.clone_from(&existing);
    Ok(match (adopted, existing) {
        (1, Some(_)) => Outcome::Adopted,
        (_, Some(_)) => Outcome::Existing,
        (_, None) => Outcome::Busy,
    })
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    New,
    Adopted,
    Existing,
    Busy,
}
