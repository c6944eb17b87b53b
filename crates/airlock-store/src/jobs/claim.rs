//! Claiming queued jobs for dispatch under a lease, and what the
//! dispatcher records while it holds one.

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use super::*;
use crate::{Backend, Store, StoreError};
use airlock_domain::jobs::model::{JobId, JobState};

// A claim's search. Candidates are the head of each connection's queue (when nothing
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

impl Store {
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
    ///
    /// The tracker may have recorded that Airbyte job as Airbyte's own
    /// (channel `airbyte`) a moment before: a job that ended in Airbyte
    /// before the dispatcher heard back is not active, so no index kept it
    /// out. Its row is this job's, and is taken over (removed, the takeover
    /// on this job's timeline and in the audit trail) rather than refused by
    /// the unique index, which would leave this job to start a second sync.
    pub async fn mark_started(
        &self,
        id: &JobId,
        owner: &str,
        airbyte_job_id: i64,
        state: JobState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let taken = take_over_recorded(&mut tx, id, owner, airbyte_job_id).await?;
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
            if let Some(recorded) = taken {
                audit_takeover(&mut tx, id, airbyte_job_id, &recorded, now).await?;
            }
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
}

/// The audit record of a takeover (after the job's row is locked: rows
/// before the chain's head).
async fn audit_takeover(
    conn: &mut sqlx::AnyConnection,
    id: &JobId,
    airbyte_job_id: i64,
    recorded: &str,
    now: i64,
) -> Result<(), StoreError> {
    let entry = airlock_domain::audit::Entry {
        actor: airlock_domain::audit::Actor::system(),
        channel: "airlock".to_owned(),
        action: "job.takeover".to_owned(),
        job_id: Some(id.to_string()),
        airbyte_job_id: Some(airbyte_job_id),
        decision: "system".to_owned(),
        detail: Some(serde_json::json!({
            "detail": "the tracker had recorded this job's Airbyte job as Airbyte's own; that row was removed",
            "removed_job_id": recorded,
        })),
        ..airlock_domain::audit::Entry::default()
    };
    crate::audit::append(conn, &entry, now).await?;
    Ok(())
}

/// Removes the row the tracker made for `airbyte_job_id` as Airbyte's own,
/// with its timeline, when job `id` is still held by `owner` (the job that
/// started it); the removed row's id.
async fn take_over_recorded(
    conn: &mut sqlx::AnyConnection,
    id: &JobId,
    owner: &str,
    airbyte_job_id: i64,
) -> Result<Option<String>, StoreError> {
    let recorded: Option<String> = sqlx::query_scalar(
        "DELETE FROM jobs WHERE airbyte_job_id = $1 AND channel = 'airbyte' AND id <> $2 \
         AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = $2 AND j.lease_owner = $3 AND j.state = 'starting') \
         RETURNING id",
    )
    .bind(airbyte_job_id)
    .bind(id.as_str())
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(recorded) = &recorded {
        sqlx::query("DELETE FROM job_events WHERE job_id = $1")
            .bind(recorded)
            .execute(&mut *conn)
            .await?;
        tracing::warn!(
            job_id = %id,
            airbyte_job_id,
            recorded = %recorded,
            "the tracker had recorded this job's Airbyte job as Airbyte's own; taken over"
        );
    }
    Ok(recorded)
}
