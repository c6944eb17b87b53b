//! Four-eyes approvals over HTTP: the requests a caller made or may decide,
//! one request, asking ahead (a pre-approval), approving and denying.

use crate::web::params::Query;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::service::approvals;
use crate::web::problem::responses::{
    BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use crate::web::{ApiError, AppState, Caller};
use airlock_domain::approvals::view::ApprovalView;
use airlock_domain::approvals::{Approval, ApprovalState, Verdict};
use airlock_domain::jobs::JobType;
use airlock_services::connections::Snapshot;
use airlock_store::approvals::ApprovalFilter;

/// A request as the API shows it, with its connection's slug.
pub(crate) fn render(approval: &Approval, snapshot: &Snapshot) -> ApprovalView {
    let slug = snapshot
        .resolve(&approval.action.connection_id)
        .map(|c| c.slug.as_str());
    ApprovalView::of(approval, slug)
}

/// Filters of the approval list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// `pending`, `approved`, `used`, `denied`, `expired` or `withdrawn`.
    #[param(pattern = "^(pending|approved|used|denied|expired|withdrawn)$")]
    state: Option<String>,
    /// From `next_cursor` of the previous page.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A page of approval requests, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ApprovalPage {
    data: Vec<ApprovalView>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /v1/approvals`.
#[utoipa::path(
    get,
    path = "/v1/approvals",
    operation_id = "list_approvals",
    tag = "approvals",
    summary = "List approval requests",
    description = "The requests the caller made, and those they may decide (`approvals:decide` on the \
        connection), newest first. A page can hold fewer than `limit` when some were outside the \
        caller's view; follow `next_cursor` until it is null.",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of requests", body = ApprovalPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<ApprovalPage>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 200"));
    }
    let filter = ApprovalFilter {
        state: query
            .state
            .as_deref()
            .map(str::parse::<ApprovalState>)
            .transpose()
            .map_err(|e| ApiError::invalid("state", e))?,
        before: query
            .cursor
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|_| ApiError::invalid("cursor", "is not one this API gave"))?,
        limit,
        ..ApprovalFilter::default()
    };
    let (found, next_cursor) = approvals::list(&state, &caller, filter).await?;
    let snapshot = state.catalog().snapshot();
    Ok(Json(ApprovalPage {
        data: found.iter().map(|a| render(a, &snapshot)).collect(),
        next_cursor,
    }))
}

/// `GET /v1/approvals/{id}`.
#[utoipa::path(
    get,
    path = "/v1/approvals/{id}",
    operation_id = "get_approval",
    tag = "approvals",
    summary = "One approval request",
    description = "Shown to its requester and to those who may decide it; anyone else gets 404.",
    params(("id" = String, Path, description = "The request's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request", body = ApprovalView),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    let (approval, snapshot) = approvals::get(&state, &caller, &id).await?;
    Ok(Json(render(&approval, &snapshot)))
}

/// What a pre-approval asks for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestBody {
    /// The Airbyte connection id or its slug.
    #[schema(min_length = 1, max_length = 200)]
    connection: String,
    /// The job the approval will allow: `reset` (the default).
    #[serde(rename = "type")]
    #[schema(value_type = Option<Approvable>)]
    job_type: Option<JobType>,
    /// Why, shown to approvers; at most 1,000 characters, no control
    /// characters but line breaks.
    #[schema(
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    #[serde(default, deserialize_with = "super::reason")]
    reason: Option<String>,
}

/// The jobs that can wait for approval (the document's enum of `type`).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(dead_code, reason = "it only describes the document")]
enum Approvable {
    Reset,
}

/// `POST /v1/approvals`: ask ahead.
#[utoipa::path(
    post,
    path = "/v1/approvals",
    operation_id = "request_approval",
    tag = "approvals",
    summary = "Ask for an approval ahead of the action",
    description = "A pre-approval for a client that cannot wait (Airbyte's SDK, a script through the \
        Airbyte-compatible front): once another person approves it, the requester's next \
        matching reset, through any door, runs at once and uses it up (within \
        `[approvals] grant_ttl_secs`). Needs the action's own permission (`jobs:reset`) on the \
        connection. The caller's open request for the same action is answered (200) instead of \
        a second one.",
    request_body(content = RequestBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's open request for this action", body = ApprovalView),
        (status = 201, description = "The new request", body = ApprovalView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn request(
    State(state): State<AppState>,
    caller: Caller,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: RequestBody = super::json_body(&body)?;
    if body.connection.is_empty() {
        return Err(ApiError::invalid("/connection", "is required"));
    }
    let reason = body.reason;
    let job_type = body.job_type.unwrap_or(JobType::Reset);
    let (approval, created) =
        approvals::request(&state, &caller, &body.connection, job_type, reason).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let snapshot = state.catalog().snapshot();
    Ok((status, Json(render(&approval, &snapshot))).into_response())
}

/// An approval's body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionBody {
    /// Why (optional). At most 1,000 characters, no control characters but
    /// line breaks.
    #[schema(
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    #[serde(default, deserialize_with = "super::reason")]
    reason: Option<String>,
}

/// A denial's body as documented: its reason is required. The handler
/// reads it as a [`DecisionBody`], so that a missing or blank reason is a
/// 422 that names the rule rather than a parse error.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[expect(dead_code, reason = "it only describes the document")]
#[serde(deny_unknown_fields)]
pub(super) struct DenialBody {
    /// Why: at least one visible character, at most 1,000 characters, no
    /// control characters but line breaks.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    reason: String,
}

async fn decide(
    state: AppState,
    caller: Caller,
    id: String,
    body: axum::body::Bytes,
    verdict: Verdict,
) -> Result<Json<ApprovalView>, ApiError> {
    let body: DecisionBody = super::json_body(&body)?;
    if verdict == Verdict::Deny && body.reason.is_none() {
        return Err(ApiError::invalid("/reason", "is required to deny"));
    }
    let approval = approvals::decide(&state, &caller, &id, verdict, body.reason).await?;
    let snapshot = state.catalog().snapshot();
    Ok(Json(render(&approval, &snapshot)))
}

/// `POST /v1/approvals/{id}/approve`.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/approve",
    operation_id = "approve",
    tag = "approvals",
    summary = "Approve a request",
    description = "Needs `approvals:decide` on the request's connection. The requester never decides \
        their own request (admins included), and nothing is decided through `/mcp`: both are \
        403 `four_eyes`. Once `min_approvals` people have approved, a job waiting for it joins \
        the queue (the request is then `used`); a pre-approval becomes a grant (`approved`).",
    params(("id" = String, Path, description = "The request's id")),
    request_body(content = Option<DecisionBody>, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request as it now stands", body = ApprovalView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(state, caller, id, body, Verdict::Approve).await
}

/// `POST /v1/approvals/{id}/deny`.
#[utoipa::path(
    post,
    path = "/v1/approvals/{id}/deny",
    operation_id = "deny",
    tag = "approvals",
    summary = "Deny a request",
    description = "Needs `approvals:decide` on the request's connection and a `reason`. The job waiting \
        for it ends `rejected` and never reaches Airbyte.",
    params(("id" = String, Path, description = "The request's id")),
    request_body(content = DenialBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The request as it now stands", body = ApprovalView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ApprovalView>, ApiError> {
    decide(state, caller, id, body, Verdict::Deny).await
}
