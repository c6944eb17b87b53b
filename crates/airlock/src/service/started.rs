//! A job Airbyte started for a caller: the front forwards `POST /jobs` to
//! Airbyte as it is (unchanged clients expect Airbyte's own answer) and
//! hands what Airbyte accepted to this module.

use airlock_domain::jobs::{Channel, JobType};
use airlock_domain::policy::Decision;
use airlock_services::connections::ConnectionInfo;
use airlock_store::front::{Recorded, StartedJob};

use crate::web::{AppState, Caller};

/// Records a job Airbyte started at `caller`'s request (the front forwards
/// `POST /jobs` as it is) as Airlock's own, with channel `front` and its
/// audit record in one transaction, so that it is tracked and notified like
/// any other. A failure is logged, not answered: the job runs, and an error
/// would make the caller start another; the tracker records it as Airbyte's
/// own at worst.
pub async fn record_started(
    state: &AppState,
    caller: &Caller,
    connection: &ConnectionInfo,
    job: &airbyte_client::Job,
    action: &str,
    decision: &Decision,
) {
    let job_type = match job.job_type {
        airbyte_client::JobType::Sync => JobType::Sync,
        airbyte_client::JobType::Reset | airbyte_client::JobType::Clear => JobType::Reset,
        _ => return,
    };
    let Some(job_state) = airlock_domain::jobs::map_status(&job.status) else {
        return;
    };
    let requester = caller.requester();
    let trace_parent = crate::telemetry::current_trace_parent();
    let started = StartedJob {
        connection_id: &connection.id,
        workspace_id: &connection.workspace_id,
        job_type,
        airbyte_job_id: job.job_id,
        state: job_state,
        requested_by: &caller.principal.subject,
        requester: &requester,
        channel: Channel::Front,
        trace_parent: trace_parent.as_deref(),
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
