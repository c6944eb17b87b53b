//! `POST /jobs` through the front: decided on the body's connection and job
//! type, sent to Airbyte, and a job Airbyte accepts recorded as Airlock's
//! own (channel `front`), so that it is tracked, audited and notified like
//! any other.

use super::public::{json_body, resolve_connection, uuid_field};
use super::*;

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

/// Records a job Airbyte accepted. A failure is logged, not answered: the
/// job runs, and an error would make the caller start another; the tracker
/// records it as Airbyte's own at worst.
async fn record_started(
    state: &FrontState,
    caller: &Caller,
    connection: &ConnectionInfo,
    job: &airbyte_client::Job,
    action: &str,
    decision: &airlock_domain::policy::Decision,
) {
    state.front().remember_job(job.job_id, &connection.id);
    let job_type = match job.job_type {
        airbyte_client::JobType::Sync => JobType::Sync,
        airbyte_client::JobType::Reset | airbyte_client::JobType::Clear => JobType::Reset,
        _ => return,
    };
    let Some(job_state) = airlock_domain::jobs::map_status(&job.status) else {
        return;
    };
    let requester = caller.requester();
    let started = StartedJob {
        connection_id: &connection.id,
        workspace_id: &connection.workspace_id,
        job_type,
        airbyte_job_id: job.job_id,
        state: job_state,
        requested_by: &caller.principal.subject,
        requester: &requester,
        channel: Channel::Front,
    };
    let entry = caller.entry(action, decision);
    match state
        .store()
        .insert_started_job(&started, state.now_ms(), &entry)
        .await
    {
        Ok(Recorded::ConnectionBusy) => tracing::warn!(
            request_id = %caller.request_id.0,
            airbyte_job_id = job.job_id,
            connection_id = %connection.id,
            "Airbyte started a job while Airlock thinks another is active on the connection"
        ),
        Ok(_) => tracing::info!(
            request_id = %caller.request_id.0,
            subject = %caller.principal.subject,
            airbyte_job_id = job.job_id,
            "job started through the front"
        ),
        Err(error) => {
            tracing::error!(
                request_id = %caller.request_id.0,
                airbyte_job_id = job.job_id,
                error = %error,
                "cannot record a job started through the front"
            );
            // The start must still be in the trail, if the database lets it.
            let mut entry = entry;
            entry.connection_id = Some(connection.id.clone());
            entry.workspace_id = Some(connection.workspace_id.clone());
            entry.airbyte_job_id = Some(job.job_id);
            entry.outcome = Some("started; not recorded".to_owned());
            state.audit(&entry).await;
        }
    }
}
