//! Jobs over HTTP: triggers (sync, reset), listing, one job, its event
//! stream, cancel and retry.

use std::convert::Infallible;
use std::time::Duration;

use crate::web::params::Query;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::service::jobs::{self, IfRunning, Triggered};
use crate::web::problem::responses::{
    BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use crate::web::{ApiError, AppState, Caller};
use airlock_domain::jobs::view::JobView;
use airlock_domain::jobs::{Job, JobState, JobType};
use airlock_domain::policy::Permission;
use airlock_store::jobs::JobFilter;

/// Longest `?wait=` honoured.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// How often an event stream looks at the job.
const WATCH_EVERY: Duration = jobs::WATCH_EVERY;

pub(crate) use airlock_domain::jobs::view::rfc3339;

/// A job as Airlock's API shows it.
pub(crate) fn render(job: &Job) -> JobView {
    JobView::of(job)
}

/// Options of a trigger, from the query string or a JSON body (the query
/// wins, field by field).
#[derive(Debug, Clone, Default, Deserialize, IntoParams, ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TriggerOptions {
    /// When the connection already has a job: `queue` the new one after it
    /// (default), `attach` to it (200 with that job), or `reject` (409).
    if_running: Option<IfRunning>,
    /// How long to hold the answer until the job ends, e.g. `30s`, `5m`
    /// (at most 15 minutes; a longer wait is cut to that).
    #[param(pattern = "^[0-9]{1,9}(ms|s|m|h)?$")]
    #[schema(pattern = "^[0-9]{1,9}(ms|s|m|h)?$")]
    wait: Option<String>,
    /// Overrides `[jobs] max_attempts` for this job.
    #[param(minimum = 1, maximum = 10)]
    #[schema(minimum = 1, maximum = 10)]
    #[serde(default, deserialize_with = "super::attempts")]
    max_attempts: Option<u32>,
    /// Resets: why, shown to approvers when resets wait for approval
    /// (`[approvals]`); at most 1,000 characters, no control characters
    /// but line breaks.
    #[param(
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    #[schema(
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    #[serde(default, deserialize_with = "super::reason")]
    reason: Option<String>,
    /// Resets: break glass, skipping the approval (needs `approvals:bypass`
    /// on the connection; audited as `approvals.bypass` with this reason).
    #[param(
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    #[schema(
        max_length = 1000,
        pattern = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    )]
    #[serde(default, deserialize_with = "super::reason")]
    bypass_reason: Option<String>,
}

impl TriggerOptions {
    /// Query options win over body options, field by field.
    fn merge(self, body: Self) -> Self {
        Self {
            if_running: self.if_running.or(body.if_running),
            wait: self.wait.or(body.wait),
            max_attempts: self.max_attempts.or(body.max_attempts),
            reason: self.reason.or(body.reason),
            bypass_reason: self.bypass_reason.or(body.bypass_reason),
        }
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h` (or plain seconds): one to nine
/// digits and a unit.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    // At most nine digits, as the document's pattern says.
    let n: u64 = Some(number)
        .filter(|n| n.len() <= 9)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("`{text}` is not a duration such as 30s or 5m"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{text}` is not a duration such as 30s or 5m")),
    };
    Ok(duration)
}

/// The `Idempotency-Key` header, when present and well-formed.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// `POST /v1/connections/{ref}/sync`.
#[utoipa::path(
    post,
    path = "/v1/connections/{reference}/sync",
    tag = "jobs",
    summary = "Start a sync",
    description = "Queues a sync job (needs `jobs:sync` on the connection) and answers 202 with it once \
        stored. With `wait`, holds the answer until the job ends (then 200) or the wait runs \
        out (202). A repeated `Idempotency-Key` with the same request returns the same job.",
    params(
        ("reference" = String, Path, description = "The Airbyte connection id or its slug"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
            description = "1 to 255 visible ASCII characters; kept 24 hours per caller"),
        TriggerOptions,
    ),
    request_body(content = Option<TriggerOptions>, content_type = "application/json",
        description = "The same options as the query string (optional; the query wins)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job ended within `wait`, or `if_running=attach` \
            found one", body = JobView),
        (status = 202, description = "The job, queued or still running", body = JobView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn trigger_sync(
    state: State<AppState>,
    caller: Caller,
    reference: Path<String>,
    query: Query<TriggerOptions>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    trigger(
        state,
        caller,
        reference,
        query,
        headers,
        body,
        JobType::Sync,
    )
    .await
}

/// `POST /v1/connections/{ref}/reset`.
#[utoipa::path(
    post,
    path = "/v1/connections/{reference}/reset",
    tag = "jobs",
    summary = "Reset (clear) a connection's data",
    description = "Queues a reset job (needs `jobs:reset` on the connection) and answers 202 with it once \
        stored. When `[approvals] require` names `jobs:reset`, the job is `awaiting_approval` \
        (with its `approval` and `links.approval`) until another person approves it, unless the \
        caller holds an approval granted earlier for this reset (used once) or breaks glass with \
        `bypass_reason`. With `wait`, holds the answer until the job ends (then 200) or the wait \
        runs out (202). A repeated `Idempotency-Key` with the same request returns the same job.",
    params(
        ("reference" = String, Path, description = "The Airbyte connection id or its slug"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
            description = "1 to 255 visible ASCII characters; kept 24 hours per caller"),
        TriggerOptions,
    ),
    request_body(content = Option<TriggerOptions>, content_type = "application/json",
        description = "The same options as the query string (optional; the query wins)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job ended within `wait`, or `if_running=attach` \
            found one", body = JobView),
        (status = 202, description = "The job, queued or still running", body = JobView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn trigger_reset(
    state: State<AppState>,
    caller: Caller,
    reference: Path<String>,
    query: Query<TriggerOptions>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    trigger(
        state,
        caller,
        reference,
        query,
        headers,
        body,
        JobType::Reset,
    )
    .await
}

async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Query(query): Query<TriggerOptions>,
    headers: HeaderMap,
    body: axum::body::Bytes,
    job_type: JobType,
) -> Result<Response, ApiError> {
    caller
        .require_somewhere(&state, jobs::permission_for(job_type))
        .await?;
    let options = query.merge(super::json_body(&body)?);
    let idempotency_key = idempotency_key(&headers)?;
    let wait = parse_wait(options.wait.as_deref())?;
    let trigger = jobs::Trigger {
        job_type,
        if_running: options.if_running.unwrap_or_default(),
        max_attempts: options.max_attempts,
        idempotency_key,
        reason: options.reason,
        bypass_reason: options.bypass_reason,
    };
    match jobs::trigger(&state, &caller, &reference, trigger).await? {
        Triggered::Attached(job) => Ok((StatusCode::OK, Json(render(&job))).into_response()),
        Triggered::Queued(job) => respond_after_wait(&state, &caller, job, wait).await,
    }
}

/// `?wait=`, cut to [`MAX_WAIT`].
fn parse_wait(text: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let wait = text
        .map(parse_duration)
        .transpose()
        .map_err(|e| ApiError::invalid("wait", e))?;
    Ok(wait.map(|w| w.min(MAX_WAIT)))
}

/// 202 with the job; with `wait`, first holds until it ends (then 200) or
/// the wait runs out (then 202 with its current state).
async fn respond_after_wait(
    state: &AppState,
    caller: &Caller,
    job: Job,
    wait: Option<Duration>,
) -> Result<Response, ApiError> {
    let Some(wait) = wait else {
        return Ok((StatusCode::ACCEPTED, Json(render(&job))).into_response());
    };
    let job = jobs::wait_for_end(state, caller, job, wait).await?;
    let status = if job.state.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(render(&job))).into_response())
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    summary = "One job",
    params(("id" = String, Path, description = "Airlock's job id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let job = jobs::get(&state, &caller, &id).await?;
    Ok(Json(render(&job)))
}

/// Filters of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// A connection id or slug.
    connection: Option<String>,
    /// `awaiting_approval`, `queued`, `starting`, `pending`, `running`, `succeeded`, `failed`,
    /// `cancelled`, `rejected` or `expired`.
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// `sync` or `reset`.
    #[serde(rename = "type")]
    #[param(value_type = Option<JobType>)]
    job_type: Option<String>,
    /// A principal's subject.
    requested_by: Option<String>,
    /// RFC 3339: jobs created at or after.
    #[param(format = DateTime)]
    since: Option<String>,
    /// From `next_cursor` of the previous page.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobPage {
    data: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    next_cursor: Option<String>,
}

/// `GET /v1/jobs`: newest first, only jobs of connections the caller may read.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    summary = "List jobs, newest first",
    description = "Only jobs of connections the caller may read (`jobs:read`).",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobPage>, ApiError> {
    caller
        .require_somewhere(&state, Permission::JobsRead)
        .await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1 to 200"));
    }
    let mut filter = JobFilter {
        limit,
        requested_by: query.requested_by.clone(),
        ..JobFilter::default()
    };
    if let Some(text) = &query.state {
        filter.state = Some(text.parse().map_err(|e| ApiError::invalid("state", e))?);
    }
    if let Some(text) = &query.job_type {
        filter.job_type = Some(text.parse().map_err(|e| ApiError::invalid("type", e))?);
    }
    if let Some(text) = &query.since {
        let at = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| ApiError::invalid("since", "must be an RFC 3339 time"))?;
        filter.since = Some(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0));
    }
    if let Some(cursor) = &query.cursor {
        filter.before = Some(
            cursor
                .parse()
                .map_err(|_| ApiError::invalid("cursor", "is not one this API gave"))?,
        );
    }
    let (jobs, next_cursor) =
        jobs::list(&state, &caller, query.connection.as_deref(), filter).await?;
    Ok(Json(JobPage {
        data: jobs.iter().map(render).collect(),
        next_cursor,
    }))
}

/// One `state` event of the stream (its `data`, as JSON).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobEvent {
    /// Also the event's `id` (resume with `Last-Event-ID`).
    seq: i64,
    state: JobState,
    /// RFC 3339.
    at: String,
    detail: Option<String>,
    /// The job as it stands when the event is sent.
    job: Option<JobView>,
}

/// `GET /v1/jobs/{id}/events`: the job's states as Server-Sent Events,
/// from the first (or after `Last-Event-ID`), ending after a terminal one.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    summary = "The job's states as Server-Sent Events",
    description = "One `state` event per state change (its `data` is a `JobEvent`), from \
        the first or after `Last-Event-ID`; the stream ends after a terminal state.",
    params(
        ("id" = String, Path, description = "Airlock's job id"),
        ("Last-Event-ID" = Option<i64>, Header, nullable = false, minimum = 0,
            description = "Resume after this event (an `id` the stream sent)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream",
            body = super::sse::JobEventStream),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (job, _) = jobs::load(&state, &caller, &id, Permission::JobsRead).await?;
    let after = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be an id the stream sent"))?,
    };
    let place = caller.open_stream(&state)?;
    let stream = futures_util::stream::unfold(
        (state, job.id, after, false, place),
        |(state, id, mut after, done, place)| async move {
            if done {
                return None;
            }
            loop {
                match state.store().job_events(&id, after).await {
                    Ok(events) if !events.is_empty() => {
                        let mut terminal = false;
                        let mut out = Vec::new();
                        // The job as it stands now rides along with each
                        // state, so a client needs no second request.
                        let job = state.store().get_job(&id).await.ok().flatten();
                        for event in events {
                            after = event.seq;
                            terminal |= event.state.is_terminal();
                            let data = JobEvent {
                                seq: event.seq,
                                state: event.state,
                                at: rfc3339(event.at),
                                detail: event.detail,
                                job: job.as_ref().map(render),
                            };
                            out.push(
                                Event::default()
                                    .event("state")
                                    .id(data.seq.to_string())
                                    .data(serde_json::to_string(&data).unwrap_or_default()),
                            );
                        }
                        return Some((
                            futures_util::stream::iter(out.into_iter().map(Ok)),
                            (state, id, after, terminal, place),
                        ));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error, "event stream cannot read the database")
                    }
                }
                tokio::time::sleep(WATCH_EVERY).await;
            }
        },
    );
    use futures_util::StreamExt;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}

/// `POST /v1/jobs/{id}/cancel`: cancels now when the job is still queued,
/// otherwise asks Airbyte (and keeps asking, if Airbyte is unreachable).
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    summary = "Cancel a job",
    description = "Cancels now when the job is still queued, otherwise asks Airbyte (and keeps asking if Airbyte is unreachable). Needs `jobs:cancel`; 409 when the job already ended.",
    params(("id" = String, Path, description = "Airlock's job id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The job (for a retry, the new one)", body = JobView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = jobs::cancel(&state, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(render(&job))).into_response())
}

/// `POST /v1/jobs/{id}/retry`: a new job for the same connection and type,
/// linked to this one, which must have failed or been cancelled.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry",
    tag = "jobs",
    summary = "Retry a failed or cancelled job",
    description = "Queues a new job for the same connection and type, linked by `retry_of`. Needs `jobs:retry`; 409 unless the job failed or was cancelled.",
    params(("id" = String, Path, description = "Airlock's job id")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The job (for a retry, the new one)", body = JobView),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let created = jobs::retry(&state, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(render(&created))).into_response())
}

#[cfg(test)]
mod tests;
