//! Jobs as a caller acts on them: trigger (sync, reset), read, list,
//! cancel and retry. Each decision goes through the guard, and each change
//! is stored in one transaction with its audit record.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::ServiceError;
use super::approvals::{self, Gate};
use super::connections::resolve;
use crate::web::auth::action_of;
use crate::web::{AppState, Caller};
use airlock_domain::approvals::Party;
use airlock_domain::jobs::{Job, JobId, JobState, JobType, JobsConfig, NewJob};
use airlock_domain::policy::{ConnectionResource, Decision, Permission, Resource, Scope};
use airlock_services::connections::{ConnectionInfo, Snapshot};
use airlock_store::approvals::{Change, Granted};
use airlock_store::jobs::{IdempotencyKey, Inserted, JobChange, JobFilter};

/// How often a waiting request looks at the job.
pub const WATCH_EVERY: Duration = Duration::from_millis(200);

/// What to do when the connection already has a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IfRunning {
    /// Run the new job after it (the default).
    #[default]
    Queue,
    /// Return the job already there instead of a new one.
    Attach,
    /// Refuse with 409.
    Reject,
}

impl IfRunning {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Attach => "attach",
            Self::Reject => "reject",
        }
    }
}

/// A trigger, as a door parsed it.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub job_type: JobType,
    pub if_running: IfRunning,
    /// `None`: `[jobs] max_attempts`.
    pub max_attempts: Option<u32>,
    /// The caller's `Idempotency-Key`, well-formed.
    pub idempotency_key: Option<String>,
    /// Why, shown to approvers when the action waits for approval.
    pub reason: Option<String>,
    /// Break glass: skip the approval (needs `approvals:bypass`).
    pub bypass_reason: Option<String>,
}

/// What a trigger did.
#[derive(Debug)]
pub enum Triggered {
    /// A new job (or, for a repeated idempotency key, the one it made).
    Queued(Job),
    /// `if_running = attach` found this unfinished job.
    Attached(Job),
}

/// The permission a trigger of `job_type` needs.
pub fn permission_for(job_type: JobType) -> Permission {
    match job_type {
        JobType::Sync => Permission::JobsSync,
        JobType::Reset => Permission::JobsReset,
    }
}

/// Queues a job on the connection `reference` names, as `caller`.
pub async fn trigger(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    trigger: Trigger,
) -> Result<Triggered, ServiceError> {
    let permission = permission_for(trigger.job_type);
    let max_attempts = max_attempts(state, trigger.max_attempts)?;
    let connection = resolve(state, reference).await?;
    let decision = caller
        .authorize(state, permission, &connection.resource())
        .await?;
    if let Some(existing) = running_job(state, &connection, &trigger).await? {
        caller.note_job(&existing);
        return Ok(Triggered::Attached(existing));
    }
    let bypass = approvals::break_glass(
        state,
        caller,
        &connection,
        permission,
        trigger.bypass_reason.clone(),
    )
    .await?;
    let gate = match bypass {
        Some(_) => Gate::Open,
        None => {
            approvals::gate(
                state,
                caller,
                &connection.id,
                trigger.job_type,
                trigger.reason.clone(),
            )
            .await?
        }
    };
    let new = NewJob {
        connection_id: connection.id.clone(),
        workspace_id: connection.workspace_id.clone(),
        job_type: trigger.job_type,
        max_attempts: i64::from(max_attempts),
        requested_by: caller.principal.subject.clone(),
        requester: caller.requester(),
        channel: approvals::channel_of(caller),
        retry_of: None,
        trace_parent: crate::telemetry::current_trace_parent(),
    };
    let key = trigger.idempotency_key.map(|key| IdempotencyKey {
        principal: format!("{}|{}", caller.principal.issuer, caller.principal.subject),
        key,
        request_hash: request_hash(
            &connection,
            trigger.job_type,
            trigger.if_running,
            max_attempts,
        ),
    });
    let mut entry = caller.entry(&action_of(permission), &decision);
    entry.detail =
        Some(json!({"if_running": trigger.if_running.as_str(), "max_attempts": max_attempts}));
    let inserted = store_gated(state, caller, &new, key.as_ref(), &entry, gate).await?;
    let fresh = matches!(inserted, Inserted::New { .. });
    let job = queued(state, caller, inserted)?;
    if let Some(reason) = bypass
        && fresh
    {
        approvals::record_bypass(state, caller, &decision, &job, &reason).await;
    }
    caller.note_job(&job);
    Ok(Triggered::Queued(job))
}

/// Stores a trigger through its gate: queued at once, queued with the
/// grant it uses, or awaiting its new request. A grant used or expired
/// since the gate looked leaves the job awaiting a new request.
async fn store_gated(
    state: &AppState,
    caller: &Caller,
    new: &NewJob,
    key: Option<&IdempotencyKey>,
    entry: &airlock_domain::audit::Entry,
    gate: Gate,
) -> Result<Inserted, ServiceError> {
    let store = state.store();
    let now = state.now_ms();
    let approval = match gate {
        Gate::Open => return Ok(store.insert_job(new, key, now, entry).await?),
        Gate::Await(approval) => approval,
        Gate::Grant(grant) => {
            let who = Party::of(&caller.principal);
            match store
                .insert_job_with_grant(new, key, now, entry, (&grant.id, &who, &grant.action))
                .await?
            {
                Granted::Stored(inserted) => return Ok(*inserted),
                Granted::Refused(_) | Granted::Missing => {
                    approvals::new_request(state, caller, grant.action, grant.reason)
                }
            }
        }
    };
    Ok(store
        .insert_job_awaiting(new, key, now, entry, &approval)
        .await?)
}

/// The attempts a trigger asked for, within bounds, or the configured ones.
fn max_attempts(state: &AppState, asked: Option<u32>) -> Result<u32, ServiceError> {
    match asked {
        Some(0) => Err(ServiceError::Invalid(
            "max_attempts must be at least 1".into(),
        )),
        Some(n) if n > JobsConfig::MAX_ATTEMPTS_CAP => Err(ServiceError::Invalid(format!(
            "max_attempts is at most {}",
            JobsConfig::MAX_ATTEMPTS_CAP
        ))),
        Some(n) => Ok(n),
        None => Ok(state.jobs_config().max_attempts),
    }
}

/// With `if_running` other than `queue`: the connection's unfinished job to
/// attach to (one of the same type first), or a conflict.
async fn running_job(
    state: &AppState,
    connection: &ConnectionInfo,
    trigger: &Trigger,
) -> Result<Option<Job>, ServiceError> {
    if trigger.if_running == IfRunning::Queue {
        return Ok(None);
    }
    let unfinished = state.store().unfinished_jobs_of(&connection.id).await?;
    let Some(existing) = unfinished.first() else {
        return Ok(None);
    };
    if trigger.if_running == IfRunning::Reject {
        return Err(ServiceError::Conflict(format!(
            "connection {} already has job {} ({})",
            connection.slug, existing.id, existing.state
        )));
    }
    let attached = unfinished
        .iter()
        .find(|j| j.job_type == trigger.job_type)
        .unwrap_or(existing);
    Ok(Some(attached.clone()))
}

/// The job an insert stored or found; a new one wakes the dispatcher when
/// it can start at once.
fn queued(state: &AppState, caller: &Caller, inserted: Inserted) -> Result<Job, ServiceError> {
    match inserted {
        Inserted::New { job, ready } => {
            if ready {
                state.wake_dispatcher();
            }
            tracing::info!(
                request_id = %caller.request_id.0,
                subject = %caller.principal.subject,
                job_id = %job.id,
                connection_id = %job.connection_id,
                job_type = job.job_type.as_str(),
                "job queued"
            );
            Ok(job)
        }
        Inserted::Existing(job) => Ok(job),
        Inserted::KeyReused => Err(ServiceError::Unprocessable(
            "this Idempotency-Key was used for a different request".into(),
        )),
    }
}

/// A digest of what a trigger asked for, to tell a retried request from a
/// different one reusing its idempotency key.
fn request_hash(
    connection: &ConnectionInfo,
    job_type: JobType,
    if_running: IfRunning,
    max_attempts: u32,
) -> String {
    let canonical = format!(
        "{}\n{}\n{}\n{}",
        connection.id,
        job_type.as_str(),
        if_running.as_str(),
        max_attempts
    );
    hex::encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref(),
    )
}

/// The job once it ended, or as it stands when `wait` runs out.
pub async fn wait_for_end(
    state: &AppState,
    caller: &Caller,
    job: Job,
    wait: Duration,
) -> Result<Job, ServiceError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut current = job;
    while !current.state.is_terminal() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(WATCH_EVERY.min(deadline - tokio::time::Instant::now())).await;
        // The job is stored: a read that fails while waiting (the database
        // away for a moment) leaves the state last seen, never a 503 for a
        // trigger that was accepted (its client would trigger again).
        match state.store().get_job(&current.id).await {
            Ok(Some(fresh)) => current = fresh,
            Ok(None) => {}
            Err(error) => tracing::debug!(
                request_id = %caller.request_id.0,
                job_id = %current.id,
                error = %error,
                "cannot read a job while waiting for its end"
            ),
        }
    }
    // The log line and the span name the Airbyte job the wait saw start.
    caller.note_job(&current);
    Ok(current)
}

/// The policy's view of a job's connection (from the catalog when it still
/// knows the connection).
pub fn job_resource(state: &AppState, job: &Job) -> Resource {
    job_resource_in(&state.catalog().snapshot(), job)
}

/// [`job_resource`] with a catalog snapshot already at hand (a stream
/// deciding on many jobs takes one snapshot for all of them).
pub fn job_resource_in(snapshot: &Snapshot, job: &Job) -> Resource {
    match snapshot.resolve(&job.connection_id) {
        Some(connection) => connection.resource(),
        None => Resource::Connection(ConnectionResource {
            id: job.connection_id.clone(),
            slug: String::new(),
            workspace_id: job.workspace_id.clone(),
            workspace_names: snapshot.bound_names(&job.workspace_id),
            tags: Vec::new(),
        }),
    }
}

/// Loads a job the caller may act on with `permission`, with the guard's
/// decision; unknown ids and ids outside the caller's scope are both "not
/// found", so ids cannot be probed. Seeing the job but not acting on it is
/// a refusal.
pub async fn load(
    state: &AppState,
    caller: &Caller,
    id: &str,
    permission: Permission,
) -> Result<(Job, Decision), ServiceError> {
    caller.require_somewhere(state, permission).await?;
    let id: JobId = id.parse().map_err(|_| ServiceError::NotFound("job"))?;
    let job = state
        .store()
        .get_job(&id)
        .await?
        .ok_or(ServiceError::NotFound("job"))?;
    let resource = job_resource(state, &job);
    let decision = if permission == Permission::JobsRead {
        caller
            .authorize_hidden(state, permission, &resource)
            .await
            .map_err(|_| ServiceError::NotFound("job"))?
    } else {
        if !caller.may(state, Permission::JobsRead, &resource) {
            return Err(ServiceError::NotFound("job"));
        }
        caller.authorize(state, permission, &resource).await?
    };
    caller.note_job(&job);
    Ok((job, decision))
}

/// One job the caller may read; the read is audited when asked for.
pub async fn get(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ServiceError> {
    let (job, _) = load(state, caller, id, Permission::JobsRead).await?;
    caller
        .read(state, "jobs.get", &job_resource(state, &job))
        .await;
    Ok(job)
}

/// A page of the jobs the caller may read, newest first, and the cursor of
/// the next page. `connection` narrows it to one connection.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    connection: Option<&str>,
    mut filter: JobFilter,
) -> Result<(Vec<Job>, Option<String>), ServiceError> {
    let policy = state.policy();
    let everywhere = policy
        .effective(&caller.principal)
        .iter()
        .any(|(p, scope)| *p == Permission::JobsRead && *scope == Scope::All);
    let snapshot = state.catalog().snapshot();
    if let Some(reference) = connection {
        let connection = resolve(state, reference).await?;
        filter.connection_ids = Some(vec![connection.id]);
    } else if !everywhere {
        filter.connection_ids = Some(
            snapshot
                .all()
                .iter()
                .filter(|c| policy.allows(&caller.principal, Permission::JobsRead, &c.resource()))
                .map(|c| c.id.clone())
                .collect(),
        );
    }
    let jobs = state.store().list_jobs(&filter).await?;
    let next_cursor = (i64::try_from(jobs.len()).unwrap_or(0) == filter.limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    let visible = jobs
        .into_iter()
        .filter(|job| {
            everywhere
                || policy.allows(
                    &caller.principal,
                    Permission::JobsRead,
                    &job_resource(state, job),
                )
        })
        .collect();
    caller.read(state, "jobs.list", &Resource::Global).await;
    Ok((visible, next_cursor))
}

/// Cancels a job: at once while it is queued, otherwise by asking Airbyte
/// (the tracker keeps asking while Airbyte is unreachable).
pub async fn cancel(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ServiceError> {
    let (job, decision) = load(state, caller, id, Permission::JobsCancel).await?;
    if job.state.is_terminal() {
        return Err(ServiceError::Conflict(format!(
            "job {} already {}",
            job.id, job.state
        )));
    }
    let mut entry = caller.entry("jobs.cancel", &decision);
    entry.job_id = Some(job.id.to_string());
    entry.connection_id = Some(job.connection_id.clone());
    entry.workspace_id = Some(job.workspace_id.clone());
    entry.airbyte_job_id = job.airbyte_job_id;
    entry.outcome = Some("cancel_requested".to_owned());
    if let (JobState::AwaitingApproval, Some(approval)) = (job.state, &job.approval_id) {
        let approval = approval
            .parse()
            .map_err(|e: String| ServiceError::Internal(anyhow::anyhow!(e)))?;
        let change = state
            .store()
            .withdraw_approval(&approval, state.now_ms(), &entry)
            .await?;
        if let Change::Done(_) = change {
            tracing::info!(request_id = %caller.request_id.0, subject = %caller.principal.subject, job_id = %job.id, "cancelled while awaiting approval");
            return state
                .store()
                .get_job(&job.id)
                .await?
                .ok_or(ServiceError::NotFound("job"));
        }
        // Decided meanwhile: the job is queued or ended; cancel it as such.
    }
    let job = state
        .store()
        .request_cancel(&job.id, state.now_ms(), &entry)
        .await?
        .ok_or(ServiceError::NotFound("job"))?;
    tracing::info!(request_id = %caller.request_id.0, subject = %caller.principal.subject, job_id = %job.id, "cancel requested");
    cancel_in_airbyte(state, job).await
}

/// Asks Airbyte to cancel a job it runs; the job as it then stands.
async fn cancel_in_airbyte(state: &AppState, job: Job) -> Result<Job, ServiceError> {
    let (Some(airbyte_id), true) = (
        job.airbyte_job_id,
        matches!(job.state, JobState::Pending | JobState::Running),
    ) else {
        return Ok(job);
    };
    match state.airbyte().cancel_job(airbyte_id).await {
        Ok(_) => {
            state
                .store()
                .update_job(&job.id, &JobChange::to(JobState::Cancelled), state.now_ms())
                .await?;
        }
        Err(error) => {
            // Already ended in Airbyte, or Airbyte unreachable: the tracker
            // records the end, or retries the cancel.
            tracing::info!(job_id = %job.id, error = %error, "cancel not confirmed by Airbyte yet");
        }
    }
    Ok(state.store().get_job(&job.id).await?.unwrap_or(job))
}

/// Queues a new job for a failed or cancelled one's connection and type,
/// linked by `retry_of`.
pub async fn retry(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ServiceError> {
    let (job, decision) = load(state, caller, id, Permission::JobsRetry).await?;
    if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
        return Err(ServiceError::Conflict(format!(
            "job {} is {}; only failed or cancelled jobs are retried",
            job.id, job.state
        )));
    }
    let new = NewJob {
        connection_id: job.connection_id.clone(),
        workspace_id: job.workspace_id.clone(),
        job_type: job.job_type,
        max_attempts: job.max_attempts,
        requested_by: caller.principal.subject.clone(),
        requester: caller.requester(),
        channel: approvals::channel_of(caller),
        retry_of: Some(job.id.clone()),
        trace_parent: crate::telemetry::current_trace_parent(),
    };
    let mut entry = caller.entry("jobs.retry", &decision);
    entry.detail = Some(json!({"retry_of": job.id}));
    // A retried reset waits for approval as the first one did.
    let gate = approvals::gate(state, caller, &job.connection_id, job.job_type, None).await?;
    let Inserted::New {
        job: created,
        ready,
    } = store_gated(state, caller, &new, None, &entry, gate).await?
    else {
        return Err(ServiceError::Internal(anyhow::anyhow!(
            "a retry without a key was not inserted"
        )));
    };
    if ready {
        state.wake_dispatcher();
    }
    caller.note_job(&created);
    Ok(created)
}
