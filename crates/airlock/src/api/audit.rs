//! `GET /v1/audit`: the audit trail, for auditors.

use crate::web::params::Query;
use axum::extract::State;
use axum::response::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::web::problem::responses::{
    BadRequest, Forbidden, Unauthorized, Unavailable, Unprocessable,
};
use crate::web::{ApiError, AppState, Caller};
use airlock_domain::audit::Record;
use airlock_domain::jobs::view::rfc3339;
use airlock_domain::policy::{Permission, Resource};
use airlock_store::audit::AuditFilter;

/// Filters of the audit listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// The principal's subject.
    actor: Option<String>,
    action: Option<String>,
    /// A connection id.
    connection: Option<String>,
    /// An Airlock job id.
    job: Option<String>,
    airbyte_job_id: Option<i64>,
    /// `allow`, `deny` or `system`.
    #[param(inline, value_type = Option<DecisionFilter>)]
    decision: Option<String>,
    /// RFC 3339, inclusive.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339, exclusive.
    #[param(format = DateTime)]
    until: Option<String>,
    /// From `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// 1 to 500, default 100.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// The decisions a record may hold (the document's enum of `decision`).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(dead_code, reason = "it only describes the document")]
enum DecisionFilter {
    Allow,
    Deny,
    System,
}

fn parse_time(name: &str, text: Option<&String>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339)
            .map(|at| i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            .map_err(|_| ApiError::invalid(name, "must be an RFC 3339 time"))
    })
    .transpose()
}

/// A record as the API shows it: the stored record and its time in
/// RFC 3339.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditRecord)]
pub struct RecordView {
    #[serde(flatten)]
    record: Record,
    /// `at` in RFC 3339.
    time: String,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct AuditPage {
    data: Vec<RecordView>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    next_cursor: Option<i64>,
}

/// A record as the API shows it (also `airlock audit export`).
pub fn render(record: &Record) -> Value {
    serde_json::to_value(RecordView {
        record: record.clone(),
        time: rfc3339(record.at),
    })
    .unwrap_or_default()
}

/// Newest first; `audit:read` anywhere is required (the trail is global).
#[utoipa::path(
    get,
    path = "/v1/audit",
    operation_id = "list_audit",
    tag = "audit",
    summary = "The audit trail, newest first",
    description = "Needs `audit:read` on all workspaces (the trail is global).",
    params(AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of audit records", body = AuditPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller
        .authorize(&state, Permission::AuditRead, &Resource::Global)
        .await?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 500"));
    }
    if let Some(decision) = &query.decision
        && !["allow", "deny", "system"].contains(&decision.as_str())
    {
        return Err(ApiError::invalid(
            "decision",
            "must be allow, deny or system",
        ));
    }
    let filter = AuditFilter {
        actor: query.actor.clone(),
        action: query.action.clone(),
        connection_id: query.connection.clone(),
        job_id: query.job.clone(),
        airbyte_job_id: query.airbyte_job_id,
        decision: query.decision.clone(),
        since: parse_time("since", query.since.as_ref())?,
        until: parse_time("until", query.until.as_ref())?,
        before_seq: query.cursor,
        limit,
        ..AuditFilter::default()
    };
    let records = state.store().audit_records(&filter).await?;
    let next_cursor = (i64::try_from(records.len()).unwrap_or(0) == limit)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    let data = records
        .into_iter()
        .map(|record| RecordView {
            time: rfc3339(record.at),
            record,
        })
        .collect();
    Ok(Json(AuditPage { data, next_cursor }))
}
