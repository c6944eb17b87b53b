//! `/jobs`: trigger, read, cancel and list jobs.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::api::error::{ApiError, json_response};
use crate::api::paging::{Query, origin, page, window};
use crate::clock::{format_duration, format_utc};
use crate::jobs::{CancelError, JobFilter, JobKind, JobStatus, JobView, OrderField, Origin};
use crate::state::{Shared, StartError, lock};

/// A job in the public API's JSON, as Airbyte's mapper builds it: `lastUpdatedAt`
/// only once finished, `duration` (updated minus created, whole seconds) unless
/// pending, stats from the last attempt once one has started.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobJson {
    job_id: i64,
    status: &'static str,
    job_type: &'static str,
    start_time: String,
    connection_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_synced: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_synced: Option<i64>,
}

pub(crate) fn job_json(v: &JobView) -> JobJson {
    JobJson {
        job_id: v.id,
        status: v.status.as_str(),
        job_type: v.kind.as_str(),
        start_time: format_utc(v.created),
        connection_id: v.connection_id,
        last_updated_at: v.status.is_terminal().then(|| format_utc(v.updated)),
        duration: (v.status != JobStatus::Pending)
            .then(|| format_duration(v.updated.div_euclid(1_000) - v.created.div_euclid(1_000))),
        bytes_synced: v.bytes,
        rows_synced: v.rows,
    }
}

fn ok(body: impl Serialize) -> Response {
    json_response(StatusCode::OK, body)
}

fn binding(path: &str, message: impl Into<String>) -> ApiError {
    ApiError::Binding {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// `POST /jobs` `{"connectionId", "jobType"}`.
pub(crate) async fn create_job(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| binding(path, format!("Invalid JSON: {e}")))?;
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let job_type = field("jobType")
        .ok_or_else(|| binding(path, "Missing required creator property 'jobType'"))?;
    let raw_connection = field("connectionId")
        .ok_or_else(|| binding(path, "Missing required creator property 'connectionId'"))?;
    let kind = match job_type {
        "sync" => JobKind::Sync,
        // Airbyte runs a clear as a reset and reports it as one.
        "reset" | "clear" => JobKind::Reset,
        "refresh" => {
            return Err(ApiError::Unprocessable(
                "Refreshes are not supported in the public API".to_owned(),
            ));
        }
        other => {
            return Err(binding(
                path,
                format!(
                    "Cannot deserialize value of type `JobTypeEnum` from String \"{other}\": not one of the values accepted for Enum class: [sync, reset, refresh, clear]"
                ),
            ));
        }
    };
    let connection_id = Uuid::parse_str(raw_connection)
        .map_err(|_| binding(path, format!("Invalid UUID string: {raw_connection}")))?;
    match shared.start_job(connection_id, kind, Origin::Api) {
        Ok(view) => Ok(ok(job_json(&view))),
        Err(StartError::UnknownConnection) => Err(shared.not_found("connection", connection_id)),
        Err(StartError::SyncRunning) => Err(ApiError::SyncRunning(connection_id)),
    }
}

fn parse_job_id(raw: &str, path: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        binding(
            path,
            format!("Failed to convert argument [jobId] for value [{raw}] due to: For input string: \"{raw}\""),
        )
    })
}

/// `GET /jobs/{jobId}`
pub(crate) async fn get_job(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw, uri.path())?;
    let now = shared.now();
    let view = lock(&shared.jobs).get(id).map(|j| j.view(now));
    let view = view.ok_or_else(|| shared.not_found("job", id))?;
    Ok(ok(job_json(&view)))
}

/// `DELETE /jobs/{jobId}`: cancels; a finished job is a `state-conflict`.
pub(crate) async fn cancel_job(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_job_id(&raw, uri.path())?;
    let now = shared.now();
    let result = lock(&shared.jobs).cancel(id, now);
    match result {
        Ok(view) => {
            lock(&shared.counters).jobs_cancelled += 1;
            Ok(ok(job_json(&view)))
        }
        Err(CancelError::NotFound) => Err(shared.not_found("job", id)),
        Err(CancelError::NotRunning) => Err(ApiError::NotRunning),
    }
}

fn parse_filter(q: &Query, path: &str) -> Result<JobFilter, ApiError> {
    let kind = match q.get("jobType") {
        None => None,
        Some("sync") => Some(JobKind::Sync),
        Some("reset") => Some(JobKind::Reset),
        Some("clear" | "refresh") => {
            return Err(ApiError::Unprocessable(
                "The body of the request was not understood".to_owned(),
            ));
        }
        Some(other) => {
            return Err(binding(
                path,
                format!("Failed to convert argument [jobType] for value [{other}]"),
            ));
        }
    };
    let status = q
        .get("status")
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                binding(
                    path,
                    format!("Failed to convert argument [status] for value [{s}]"),
                )
            })
        })
        .transpose()?;
    let (order, ascending) = match q.get("orderBy") {
        None => (OrderField::CreatedAt, true),
        Some(raw) => {
            let (field, method) = raw.split_once('|').unwrap_or((raw, "ASC"));
            let order = match field {
                "createdAt" => OrderField::CreatedAt,
                "updatedAt" => OrderField::UpdatedAt,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "Invalid order by clause provided: {raw}"
                    )));
                }
            };
            let ascending = match method.to_ascii_uppercase().as_str() {
                "ASC" => true,
                "DESC" => false,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "Invalid order by clause provided: {raw}"
                    )));
                }
            };
            (order, ascending)
        }
    };
    Ok(JobFilter {
        connection_id: q.uuid("connectionId")?,
        workspace_ids: q.uuids("workspaceIds")?,
        kind,
        status,
        created_start: q.instant("createdAtStart")?,
        created_end: q.instant("createdAtEnd")?,
        updated_start: q.instant("updatedAtStart")?,
        updated_end: q.instant("updatedAtEnd")?,
        order,
        ascending,
    })
}

/// `GET /jobs` with every filter of the real server; oldest first by default.
pub(crate) async fn list_jobs(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let filter = parse_filter(&q, uri.path())?;
    let req = q.page()?;
    let now = shared.now();
    let views = lock(&shared.jobs).list(&filter, now);
    let data: Vec<JobJson> = window(&views, req).iter().map(job_json).collect();
    Ok(ok(page(data, req, &origin(&headers), &q)))
}
