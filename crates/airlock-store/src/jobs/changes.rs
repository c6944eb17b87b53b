//! A job's state changes, each recorded on its timeline (`job_events`) in
//! the transaction of the change; cancels; progress; expired keys.

use sqlx::{AnyConnection, Row};

use super::*;
use crate::{Store, StoreError};
use airlock_domain::audit;
use airlock_domain::jobs::model::{Job, JobId, JobState};

/// Appends a state to a job's timeline, without an audit record (the
/// caller writes a richer one).
pub(crate) async fn insert_event(
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
pub(super) async fn record_event(
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
    crate::audit::append(conn, &entry, now).await?;
    Ok(())
}

/// The timeline detail of an attempt handed to Airbyte, which
/// [`Store::job_of_airbyte_attempt`] looks for.
pub(super) fn attempt_detail(airbyte_job_id: i64) -> String {
    format!("airbyte job {airbyte_job_id}")
}

impl Store {
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
             WHERE id = $8 AND state NOT IN ('succeeded', 'failed', 'cancelled', 'rejected', 'expired')",
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
        // The job's row is locked before the audit chain's head, as every
        // change of a job does: two transactions never wait on each other
        // (a tracker's update of the same job deadlocked with a cancel on
        // Postgres when this took the head first).
        let cancelled_here = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = $1, updated_at = $1 \
             WHERE id = $2 AND state = 'queued' AND start_requested_at IS NULL",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if cancelled_here == 0 {
            sqlx::query(
                "UPDATE jobs SET cancel_requested = 1, updated_at = $1 \
                 WHERE id = $2 AND state IN ('queued', 'starting', 'pending', 'running')",
            )
            .bind(now)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        crate::audit::append(&mut tx, request, now).await?;
        if cancelled_here == 1 {
            record_event(
                &mut tx,
                id,
                JobState::Cancelled,
                now,
                Some("cancelled before it started"),
            )
            .await?;
        }
        tx.commit().await?;
        self.get_job(id).await
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
             WHERE id = $5 AND state NOT IN ('succeeded', 'failed', 'cancelled', 'rejected', 'expired')",
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
}
