//! `POST /jobs` through the front: decided on the body's connection and job
//! type, sent to Airbyte, and a job Airbyte accepts recorded as Airlock's
//! own (channel `front`), so that it is tracked, audited and notified like
//! any other.

use super::public::resolve_connection;
use super::references::{json_body, uuid_field};
use super::*;
use airlock_domain::approvals::Party;
use airlock_domain::jobs::JobType;
use airlock_store::approvals::Change;

/// `POST /jobs`: decided on the body's connection and job type; a job
/// Airbyte accepts is recorded with channel `front`.
pub(super) async fn create_job(
    state: &FrontState,
    caller: &Caller,
    parts: &Parts,
    body: &[u8],
) -> Result<Response, FrontError> {
    let (object, bytes) = json_body(body)?;
    let job_type = object
        .get("jobType")
        .and_then(Value::as_str)
        .ok_or_else(|| FrontError::BadRequest("jobType is required".to_owned()))?;
    let permission = job_permission(job_type)
        .ok_or_else(|| FrontError::BadRequest(format!("Unsupported jobType: {job_type}")))?;
    caller.require_somewhere(state, permission).await?;
    let connection_id = uuid_field(&object, "connectionId")?;
    let connection = resolve_connection(state, connection_id).await?;
    let resource = connection.resource();
    let decision = caller::authorize(
        caller,
        state,
        permission,
        &resource,
        "connection",
        &connection.id,
    )
    .await?;
    if permission == Permission::JobsReset {
        approval_gate(state, caller, &connection, &decision).await?;
    }
    let raw = forward(state, parts, "/jobs", bytes).await?;
    let action = action_of(permission);
    if raw.status != StatusCode::OK {
        caller
            .record(
                state,
                &action,
                Some(&decision),
                &resource,
                raw.status.as_u16().to_string(),
                None,
            )
            .await;
        return Ok(raw_response(raw));
    }
    match serde_json::from_slice::<airbyte_client::Job>(&raw.body) {
        Ok(job) => record_started(state, caller, &connection, &job, &action, &decision).await,
        Err(error) => {
            tracing::warn!(request_id = %caller.request_id.0, error = %error, "cannot read the job Airbyte started");
            caller
                .record(
                    state,
                    &action,
                    Some(&decision),
                    &resource,
                    "200 (unreadable)".to_owned(),
                    None,
                )
                .await;
        }
    }
    Ok(raw_response(raw))
}

/// Remembers the job's connection (later reads of the job need it) and
/// records the job as Airlock's own, through the service layer.
async fn record_started(
    state: &FrontState,
    caller: &Caller,
    connection: &ConnectionInfo,
    job: &airbyte_client::Job,
    action: &str,
    decision: &airlock_domain::policy::Decision,
) {
    state.front().remember_job(job.job_id, &connection.id);
    crate::service::started::record_started(state, caller, connection, job, action, decision).await;
}

/// A destructive job through the front, when resets wait for approval
/// (`[approvals]`): an Airbyte client cannot wait, so it goes through only
/// with an approval granted ahead, which this call uses up (before Airbyte
/// hears of it, so that it is used once); otherwise it is refused with a
/// message naming the caller's request, made now if there is none.
async fn approval_gate(
    state: &FrontState,
    caller: &Caller,
    connection: &ConnectionInfo,
    decision: &airlock_domain::policy::Decision,
) -> Result<(), FrontError> {
    use crate::service::approvals::{self as approvals, Gate};
    let gate = approvals::gate(state, caller, &connection.id, JobType::Reset, None).await;
    let denial = |error: crate::service::ServiceError| {
        tracing::warn!(request_id = %caller.request_id.0, error = %error, "cannot check the approval of a reset");
        FrontError::Unavailable("the database")
    };
    match gate.map_err(denial)? {
        Gate::Open => return Ok(()),
        Gate::Grant(grant) => {
            let who = Party::of(&caller.principal);
            let entry = caller.entry("approvals.use", decision);
            let used = state
                .store()
                .use_approval_grant(&grant.id, &who, &grant.action, state.now_ms(), &entry)
                .await
                .map_err(|e| denial(e.into()))?;
            if let Change::Done(_) = used {
                return Ok(());
            }
        }
        Gate::Await(_) => {}
    }
    let pending = approvals::pending_for(state, caller, connection, JobType::Reset)
        .await
        .map_err(denial)?;
    let base = state
        .site()
        .public_url
        .clone()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let approval_url = format!("{base}/v1/approvals/{}", pending.id);
    let minutes = state.approvals_config().grant_ttl_secs / 60;
    Err(FrontError::ApprovalRequired {
        message: format!(
            "resets of connection {} wait for another person's approval; request {} is {}: \
             {approval_url}. Once it is approved, run this again within {minutes} minutes.",
            connection.slug, pending.id, pending.state
        ),
        approval_id: pending.id.to_string(),
        approval_url,
    })
}
