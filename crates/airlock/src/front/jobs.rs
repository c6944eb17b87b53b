//! `POST /jobs` through the front: decided on the body's connection and job
//! type, sent to Airbyte, and a job Airbyte accepts recorded as Airlock's
//! own (channel `front`), so that it is tracked, audited and notified like
//! any other.

use super::public::resolve_connection;
use super::references::{json_body, uuid_field};
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
