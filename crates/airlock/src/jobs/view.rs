//! The job as users see it, in one place for every channel (API, event
//! stream, webhooks, MCP).

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Job;

/// Unix milliseconds as an RFC 3339 UTC string, as the API writes times.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A job as users see it: `GET /v1/jobs/{id}`, event streams, webhooks
/// and MCP tools all show this one shape.
pub fn job_json(job: &Job) -> Value {
    let base = format!("/v1/jobs/{}", job.id);
    json!({
        "id": job.id,
        "connection_id": job.connection_id,
        "workspace_id": job.workspace_id,
        "type": job.job_type,
        "state": job.state,
        "airbyte_job_id": job.airbyte_job_id,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "requested_by": job.requested_by,
        "channel": job.channel,
        "retry_of": job.retry_of,
        "cancel_requested": job.cancel_requested,
        "created_at": rfc3339(job.created_at),
        "updated_at": rfc3339(job.updated_at),
        "finished_at": job.finished_at.map(rfc3339),
        "rows_synced": job.rows_synced,
        "bytes_synced": job.bytes_synced,
        "duration": job.duration,
        "error": job.error,
        "links": {
            "self": base,
            "events": format!("{base}/events"),
            "cancel": format!("{base}/cancel"),
            "retry": format!("{base}/retry"),
            "connection": format!("/v1/connections/{}", job.connection_id),
        },
    })
}
