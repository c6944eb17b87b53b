//! Storing triggers: batches of new jobs with their idempotency keys and
//! audit records in one transaction, and jobs Airbyte started by itself.

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::*;
use crate::params::Placeholders;
use crate::{Store, StoreError};
use airlock_domain::audit;
use airlock_domain::jobs::model::{Job, JobId, JobState, JobType, NewJob};

/// True when `error` is a unique-constraint violation (a lost race).
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Rows per multi-row `INSERT` of jobs (16 parameters each).
pub(super) const JOBS_PER_INSERT: usize = 64;

/// Stores triggers, in order, inside `tx` (see [`Store::insert_job`]): each
/// idempotency key is claimed on its own (its outcome decides the
/// trigger's), then the new jobs, their first events and their audit
/// records are written with a few multi-row statements, and one query
/// tells which new jobs have nothing ahead of them.
pub(crate) async fn insert_batch(
    tx: &mut AnyConnection,
    inserts: &[&super::batch::Insert],
) -> Result<Vec<Inserted>, StoreError> {
    let jobs: Vec<Job> = inserts
        .iter()
        .map(|insert| {
            let mut job = new_job_row(&insert.new, insert.now);
            if let Some(approval) = &insert.approval {
                job.state = JobState::AwaitingApproval;
                job.approval_id = Some(approval.id.to_string());
                job.approval_state = Some(approval.state.as_str().to_owned());
            }
            job
        })
        .collect();
    let claimed = claim_keys(tx, inserts, &jobs).await?;
    let (outcomes, created) = sort_out(tx, inserts, jobs, &claimed).await?;
    insert_rows(tx, &created).await?;
    audit_created(tx, inserts, &created).await?;
    request_approvals(tx, inserts, &created).await?;
    let ready = ready_to_start(tx, &created).await?;
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

/// A new job to create: its index in the batch, and its row.
type Created = (usize, Job);

/// Each insert's outcome when its key is live (`None` for the ones to
/// create), and the jobs to create.
async fn sort_out(
    tx: &mut AnyConnection,
    inserts: &[&super::batch::Insert],
    jobs: Vec<Job>,
    claimed: &std::collections::HashSet<usize>,
) -> Result<(Vec<Option<Inserted>>, Vec<Created>), StoreError> {
    let mut outcomes: Vec<Option<Inserted>> = Vec::with_capacity(inserts.len());
    let mut created: Vec<Created> = Vec::new();
    for (index, (insert, job)) in inserts.iter().zip(jobs).enumerate() {
        if let Some(key) = &insert.key
            && !claimed.contains(&index)
        {
            outcomes.push(Some(earlier(tx, key, &created).await?));
            continue;
        }
        outcomes.push(None);
        created.push((index, job));
    }
    Ok((outcomes, created))
}

/// What a live key answers: the job it named (of this batch or not), or
/// `KeyReused` when it was used for a different request.
async fn earlier(
    tx: &mut AnyConnection,
    key: &IdempotencyKey,
    created: &[Created],
) -> Result<Inserted, StoreError> {
    let row = sqlx::query(
        "SELECT request_hash, job_id FROM idempotency_keys WHERE principal = $1 AND key = $2",
    )
    .bind(&key.principal)
    .bind(&key.key)
    .fetch_one(&mut *tx)
    .await?;
    let hash: String = row.try_get("request_hash")?;
    let job_id: String = row.try_get("job_id")?;
    if hash != key.request_hash {
        return Ok(Inserted::KeyReused);
    }
    if let Some((_, job)) = created.iter().find(|(_, job)| job.id.as_str() == job_id) {
        // The same key twice in one batch.
        return Ok(Inserted::Existing(job.clone()));
    }
    let row = sqlx::query(AssertSqlSafe(JOB_BY_ID.as_str()))
        .bind(&job_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::Corrupt(format!("idempotency key names missing job {job_id}"))
        })?;
    Ok(Inserted::Existing(decode(&row)?))
}

/// The new jobs' rows and their first timeline event, in multi-row inserts.
async fn insert_rows(tx: &mut AnyConnection, created: &[Created]) -> Result<(), StoreError> {
    let marks = Placeholders::of(tx);
    for chunk in created.chunks(JOBS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO jobs (id, connection_id, workspace_id, job_type, state, attempts, max_attempts, \
             run_after, cancel_requested, requested_by, requester, channel, retry_of, created_at, updated_at, \
             approval_id, approval_state, trace_parent) VALUES {}",
            marks.rows(chunk.len(), 16, |p| format!(
                "({}, {}, {}, {}, {}, 0, {}, {}, 0, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                p[0],
                p[1],
                p[2],
                p[3],
                p[4],
                p[5],
                p[6],
                p[7],
                p[8],
                p[9],
                p[10],
                p[11],
                p[12],
                p[13],
                p[14],
                p[15]
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
                .bind(job.created_at)
                .bind(job.approval_id.clone())
                .bind(job.approval_state.clone())
                .bind(job.trace_parent.clone());
        }
        query.execute(&mut *tx).await?;

        let sql = format!(
            "INSERT INTO job_events (job_id, state, at, detail) VALUES {}",
            marks.rows(chunk.len(), 3, |p| format!(
                "({}, {}, {}, NULL)",
                p[0], p[1], p[2]
            ))
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (_, job) in chunk {
            query = query
                .bind(job.id.as_str().to_owned())
                .bind(job.state.as_str())
                .bind(job.created_at);
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Each new job's audit record: the trigger's, naming the job.
async fn audit_created(
    tx: &mut AnyConnection,
    inserts: &[&super::batch::Insert],
    created: &[Created],
) -> Result<(), StoreError> {
    let entries: Vec<audit::Entry> = created
        .iter()
        .map(|(index, job)| {
            let mut entry = inserts[*index].request.clone();
            entry.job_id = Some(job.id.to_string());
            entry.connection_id = Some(job.connection_id.clone());
            entry.workspace_id = Some(job.workspace_id.clone());
            entry.outcome = Some(job.state.as_str().to_owned());
            if let Some(approval) = &job.approval_id {
                let detail = entry.detail.get_or_insert_with(|| serde_json::json!({}));
                if let Some(fields) = detail.as_object_mut() {
                    fields.insert("approval_id".into(), approval.as_str().into());
                }
            }
            entry
        })
        .collect();
    let timed: Vec<(&audit::Entry, i64)> = entries
        .iter()
        .zip(created)
        .map(|(entry, (_, job))| (entry, job.created_at))
        .collect();
    crate::audit::append_many(tx, &timed).await?;
    Ok(())
}

/// The approval requests of new jobs that wait for one, each naming its
/// job, with their `approvals.request` records.
async fn request_approvals(
    tx: &mut AnyConnection,
    inserts: &[&super::batch::Insert],
    created: &[Created],
) -> Result<(), StoreError> {
    for (index, job) in created {
        let Some(approval) = &inserts[*index].approval else {
            continue;
        };
        let mut approval = approval.clone();
        approval.job_id = Some(job.id.clone());
        crate::approval_rows::insert(tx, &approval, &inserts[*index].request).await?;
    }
    Ok(())
}

/// Which new jobs have nothing ahead of them on their connection: the
/// first new one of a connection whose unfinished jobs are all new.
async fn ready_to_start(
    tx: &mut AnyConnection,
    created: &[Created],
) -> Result<Vec<bool>, StoreError> {
    let mut connections: Vec<&str> = created
        .iter()
        .map(|(_, j)| j.connection_id.as_str())
        .collect();
    connections.sort_unstable();
    connections.dedup();
    let mut unfinished: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let marks = Placeholders::of(tx);
    for chunk in connections.chunks(JOBS_PER_INSERT) {
        let sql = format!(
            "SELECT connection_id, COUNT(*) AS n FROM jobs \
             WHERE state IN ('queued', 'starting', 'pending', 'running') AND connection_id IN ({}) \
             GROUP BY connection_id",
            marks.rows(chunk.len(), 1, |p| p[0].clone())
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
    // A job awaiting approval is not in the queue: it neither waits its
    // turn nor holds anyone else's.
    let queued = |job: &Job| job.state == JobState::Queued;
    for (_, job) in created.iter().filter(|(_, job)| queued(job)) {
        *new_of.entry(job.connection_id.as_str()).or_default() += 1;
    }
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    Ok(created
        .iter()
        .map(|(_, job)| {
            if !queued(job) {
                return false;
            }
            let connection = job.connection_id.as_str();
            let before = unfinished.get(connection).copied().unwrap_or(0)
                - new_of.get(connection).copied().unwrap_or(0);
            seen.insert(connection) && before == 0
        })
        .collect())
}

/// Claims the idempotency keys of a batch, a few statements for all of them:
/// a key not stored yet, or stored more than [`IDEMPOTENCY_TTL_MS`] before
/// its trigger, now names that trigger's new job (`jobs[i]`). Returns the
/// indexes of the triggers whose key was claimed. Only the first trigger of
/// a key repeated within the batch takes part; the later ones find the key
/// live, as they would one transaction later.
pub(super) async fn claim_keys(
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
    let marks = Placeholders::of(tx);
    for chunk in candidates.chunks(JOBS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO idempotency_keys (principal, key, request_hash, job_id, created_at) VALUES {} \
             ON CONFLICT (principal, key) DO UPDATE SET request_hash = excluded.request_hash, \
               job_id = excluded.job_id, created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < excluded.created_at - {IDEMPOTENCY_TTL_MS} \
             RETURNING principal, key",
            marks.rows(chunk.len(), 5, |p| format!(
                "({}, {}, {}, {}, {})",
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
                approval: None,
            })
            .await
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
        // A row for the Airbyte job may be there, or be on its way in
        // another transaction (the dispatcher that started it, the front,
        // another replica's tracker for a moment after an election): the
        // insert then does nothing rather than fail on the unique index
        // (which Postgres logs as an error and which aborts the transaction).
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, connection_id, workspace_id, job_type, state, airbyte_job_id, attempts, \
             max_attempts, run_after, cancel_requested, requested_by, requester, channel, created_at, updated_at, \
             finished_at, rows_synced, bytes_synced, duration) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, 1, $7, 0, 'airbyte', '{\"kind\":\"airbyte\"}', 'airbyte', $7, $7, $8, $9, $10, $11) \
             ON CONFLICT DO NOTHING",
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
        .await?
        .rows_affected();
        if inserted == 0 {
            // Known already, or another job of the connection is active.
            tx.commit().await?;
            return Ok(None);
        }
        let detail = format!("started in Airbyte as job {}", seen.airbyte_job_id);
        record_event(&mut tx, &id, seen.state, now, Some(&detail)).await?;
        tx.commit().await?;
        self.get_job(&id).await
    }
}
