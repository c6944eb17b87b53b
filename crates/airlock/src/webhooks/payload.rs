//! What a webhook receives: the event, the job as `GET /v1/jobs/{id}` shows
//! it, and when the event happened.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::WebhookEvent;
use crate::jobs::Job;

/// Unix milliseconds as an RFC 3339 UTC string, as the API writes times.
pub(crate) fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A job in the shape of Airlock's API (`GET /v1/jobs/{id}`).
///
/// The API's own renderer is private to `api`; this one is kept identical,
/// and the webhook end-to-end test compares the two.
pub(crate) fn job_json(job: &Job) -> Value {
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

/// The stored body of a delivery; `sent_at` is added at each attempt.
pub(crate) fn body(event: WebhookEvent, job: &Job, at: i64, detail: Option<&str>) -> Value {
    json!({
        "event": event.name(),
        "occurred_at": rfc3339(at),
        "detail": detail,
        "job": job_json(job),
    })
}
