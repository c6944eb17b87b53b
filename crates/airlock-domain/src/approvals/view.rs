//! A request as users see it: `GET /v1/approvals/{id}`, lists, the event
//! stream, webhooks, the console and the command line show this one shape
//! (also its OpenAPI schema, `Approval`).

use serde::Serialize;
use utoipa::ToSchema;

use super::{Approval, Party, Verdict};
use crate::jobs::view::rfc3339;
use crate::jobs::{Channel, JobType};

/// An approval request as Airlock's API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Approval)]
pub struct ApprovalView {
    pub id: String,
    /// `pending` (waiting for decisions), `approved` (a grant its requester
    /// may use once until `grant_expires_at`), `used`, `denied`, `expired`
    /// or `withdrawn` (its job was cancelled while it waited).
    #[schema(example = "pending")]
    pub state: String,
    /// The permission whose action waits, e.g. `jobs:reset`.
    pub permission: String,
    /// Airbyte's connection id.
    pub connection_id: String,
    /// The connection's slug, when the catalog knows it.
    pub connection: Option<String>,
    #[serde(rename = "type")]
    pub job_type: JobType,
    pub requester: PartyView,
    /// Through which door it was requested.
    pub channel: Channel,
    /// What the requester said it is for.
    pub reason: Option<String>,
    /// The job waiting for it (or that used it), if any.
    pub job_id: Option<String>,
    /// In the order they were taken.
    pub decisions: Vec<DecisionView>,
    /// How many different people have approved.
    pub approvals: usize,
    /// How many must.
    pub min_approvals: u32,
    /// RFC 3339.
    pub requested_at: String,
    /// RFC 3339: a pending request expires then.
    pub expires_at: String,
    /// RFC 3339.
    pub approved_at: Option<String>,
    /// RFC 3339: an unused approval expires then.
    pub grant_expires_at: Option<String>,
    /// RFC 3339.
    pub used_at: Option<String>,
    pub links: ApprovalLinks,
}

/// Who requested or decided.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PartyView {
    pub issuer: String,
    pub subject: String,
    /// `user` or `service`.
    pub kind: String,
    pub client_id: Option<String>,
}

/// One person's decision.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionView {
    pub decider: PartyView,
    /// `approve` or `deny`.
    #[schema(example = "approve")]
    pub verdict: String,
    pub reason: Option<String>,
    pub channel: Channel,
    /// RFC 3339.
    pub at: String,
}

/// Where to act on a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApprovalLinks {
    #[serde(rename = "self")]
    pub this: String,
    pub approve: String,
    pub deny: String,
    /// The job waiting for it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    pub connection: String,
}

impl PartyView {
    fn of(party: &Party) -> Self {
        Self {
            issuer: party.issuer.clone(),
            subject: party.subject.clone(),
            kind: party.kind.clone(),
            client_id: party.client_id.clone(),
        }
    }
}

impl ApprovalView {
    /// The view of `approval`; `slug` is its connection's, when known.
    pub fn of(approval: &Approval, slug: Option<&str>) -> Self {
        let base = format!("/v1/approvals/{}", approval.id);
        Self {
            id: approval.id.to_string(),
            state: approval.state.as_str().to_owned(),
            permission: approval.action.permission.as_str().to_owned(),
            connection_id: approval.action.connection_id.clone(),
            connection: slug.filter(|s| !s.is_empty()).map(str::to_owned),
            job_type: approval.action.job_type,
            requester: PartyView::of(&approval.requester),
            channel: approval.channel,
            reason: approval.reason.clone(),
            job_id: approval.job_id.as_ref().map(ToString::to_string),
            decisions: approval
                .decisions
                .iter()
                .map(|d| DecisionView {
                    decider: PartyView::of(&d.decider),
                    verdict: match d.verdict {
                        Verdict::Approve => "approve",
                        Verdict::Deny => "deny",
                    }
                    .to_owned(),
                    reason: d.reason.clone(),
                    channel: d.channel,
                    at: rfc3339(d.at),
                })
                .collect(),
            approvals: approval.approvals(),
            min_approvals: approval.min_approvals,
            requested_at: rfc3339(approval.requested_at),
            expires_at: rfc3339(approval.expires_at),
            approved_at: approval.approved_at.map(rfc3339),
            grant_expires_at: approval.grant_expires_at.map(rfc3339),
            used_at: approval.used_at.map(rfc3339),
            links: ApprovalLinks {
                this: base.clone(),
                approve: format!("{base}/approve"),
                deny: format!("{base}/deny"),
                job: approval.job_id.as_ref().map(|id| format!("/v1/jobs/{id}")),
                connection: format!("/v1/connections/{}", approval.action.connection_id),
            },
        }
    }
}
