//! What a webhook receives: the event, the job as `GET /v1/jobs/{id}` shows
//! it, and when the event happened.

use serde_json::{Value, json};

use super::WebhookEvent;
use airlock_domain::jobs::Job;
use airlock_domain::jobs::view::{job_json, rfc3339};

/// The stored body of a delivery; `sent_at` is added at each attempt.
pub(crate) fn body(event: WebhookEvent, job: &Job, at: i64, detail: Option<&str>) -> Value {
    json!({
        "event": event.name(),
        "occurred_at": rfc3339(at),
        "detail": detail,
        "job": job_json(job),
    })
}
