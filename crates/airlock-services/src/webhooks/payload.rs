//! What a webhook receives: the event, the job (or the approval request) as
//! `GET /v1/jobs/{id}` (or `GET /v1/approvals/{id}`) shows it, and when the
//! event happened.

use serde_json::{Value, json};

use super::WebhookEvent;
use airlock_domain::approvals::Approval;
use airlock_domain::approvals::view::ApprovalView;
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

/// The stored body of an approval request's delivery, shaped like a job's:
/// `approval` is the request as it stands when the delivery is made
/// (`slug`: its connection's, when known).
pub(crate) fn approval_body(
    event: WebhookEvent,
    approval: &Approval,
    slug: Option<&str>,
    at: i64,
) -> Value {
    json!({
        "event": event.name(),
        "occurred_at": rfc3339(at),
        "approval": ApprovalView::of(approval, slug),
    })
}
