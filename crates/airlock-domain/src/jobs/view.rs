//! The job as users see it, in one place for every channel (API, event
//! stream, webhooks, MCP).

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::{Channel, Job, JobState, JobType};

/// Unix milliseconds as an RFC 3339 UTC string, as the API writes times.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A job as users see it: `GET /v1/jobs/{id}`, event streams, webhooks
/// and MCP tools all show this one shape (also its OpenAPI schema, `Job`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobView {
    /// Airlock's job id.
    pub id: String,
    /// Airbyte's connection id.
    pub connection_id: String,
    pub workspace_id: String,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub state: JobState,
    /// Null until Airbyte accepted the job.
    pub airbyte_job_id: Option<i64>,
    pub attempts: i64,
    pub max_attempts: i64,
    /// The subject of the principal that asked for it.
    pub requested_by: String,
    pub channel: Channel,
    /// The job this one retries.
    pub retry_of: Option<String>,
    pub cancel_requested: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// RFC 3339; null while the job runs.
    pub finished_at: Option<String>,
    pub rows_synced: Option<i64>,
    pub bytes_synced: Option<i64>,
    /// ISO 8601, as Airbyte reports it.
    pub duration: Option<String>,
    /// A short failure summary.
    pub error: Option<String>,
    /// The approval request the job waited for, when it needed one
    /// (`[approvals]`); null otherwise.
    pub approval: Option<JobApproval>,
    pub links: JobLinks,
}

/// The approval request a job waited for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobApproval {
    /// The request's id (`GET /v1/approvals/{id}`).
    pub id: String,
    /// `pending` while the job is `awaiting_approval`; `used` once approved
    /// (the job is then queued), `denied`, `expired` or `withdrawn` (the job
    /// was cancelled while it waited).
    #[schema(example = "pending")]
    pub state: String,
}

/// Where to act on a job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobLinks {
    #[serde(rename = "self")]
    pub this: String,
    pub events: String,
    pub cancel: String,
    pub retry: String,
    pub connection: String,
    /// The approval request, when the job has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

impl JobView {
    /// The view of `job`.
    pub fn of(job: &Job) -> Self {
        let base = format!("/v1/jobs/{}", job.id);
        Self {
            id: job.id.to_string(),
            connection_id: job.connection_id.clone(),
            workspace_id: job.workspace_id.clone(),
            job_type: job.job_type,
            state: job.state,
            airbyte_job_id: job.airbyte_job_id,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            requested_by: job.requested_by.clone(),
            channel: job.channel,
            retry_of: job.retry_of.as_ref().map(ToString::to_string),
            cancel_requested: job.cancel_requested,
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            finished_at: job.finished_at.map(rfc3339),
            rows_synced: job.rows_synced,
            bytes_synced: job.bytes_synced,
            duration: job.duration.clone(),
            error: job.error.clone(),
            approval: job.approval_id.as_ref().map(|id| JobApproval {
                id: id.clone(),
                state: job.approval_state.clone().unwrap_or_default(),
            }),
            links: JobLinks {
                this: base.clone(),
                events: format!("{base}/events"),
                cancel: format!("{base}/cancel"),
                retry: format!("{base}/retry"),
                connection: format!("/v1/connections/{}", job.connection_id),
                approval: job
                    .approval_id
                    .as_ref()
                    .map(|id| format!("/v1/approvals/{id}")),
            },
        }
    }
}

/// [`JobView`] as a JSON value (webhook payloads, MCP results).
pub fn job_json(job: &Job) -> Value {
    serde_json::to_value(JobView::of(job)).unwrap_or_default()
}
