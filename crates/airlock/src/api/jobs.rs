//! Jobs over HTTP: triggers (sync, reset), listing, one job, its event
//! stream, cancel and retry.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::connections::{resolve, resource_of};
use crate::connections::ConnectionInfo;
use crate::jobs::view::JobView;
use crate::jobs::{Channel, Job, JobId, JobState, JobType, JobsConfig, NewJob};
use crate::policy::{ConnectionResource, Permission, Resource};
use crate::store::jobs::{IdempotencyKey, Inserted, JobChange, JobFilter};
use crate::web::problem::responses::{
    BadRequest, Conflict, Forbidden, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use crate::web::{ApiError, AppState, Caller};

/// Longest `?wait=` honoured.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// How often a waiting request or an event stream looks at the job.
const WATCH_EVERY: Duration = Duration::from_millis(200);

pub(crate) use crate::jobs::view::rfc3339;

/// A job as Airlock's API shows it.
pub(crate) fn render(job: &Job) -> JobView {
    JobView::of(job)
}

/// What to do when the connection already has a job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum IfRunning {
    /// Run the new job after it (the default).
    #[default]
    Queue,
    /// Return the job already there instead of a new one.
    Attach,
    /// Refuse with 409.
    Reject,
}

impl IfRunning {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Attach => "attach",
            Self::Reject => "reject",
        }
    }
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
    /// How long to hold the answer until the job ends, e.g. `30s`, `5m`.
    wait: Option<String>,
    /// Overrides `[jobs] max_attempts` for this job.
    max_attempts: Option<u32>,
}

impl TriggerOptions {
    /// Query options win over body options, field by field.
    fn merge(self, body: Self) -> Self {
        Self {
            if_running: self.if_running.or(body.if_running),
            wait: self.wait.or(body.wait),
            max_attempts: self.max_attempts.or(body.max_attempts),
        }
    }
}

/// Parses `500ms`, `30s`, `5m`, `1h` (or plain seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 30s or 5m"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{text}` is not a duration such as 30s or 5m")),
    };
    Ok(duration)
}

/// The body of a trigger: empty, or a JSON object of [`TriggerOptions`].
fn parse_body(body: &[u8]) -> Result<TriggerOptions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(TriggerOptions::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
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
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
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
        ("Idempotency-Key" = Option<String>, Header,
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
        stored. With `wait`, holds the answer until the job ends (then 200) or the wait runs \
        out (202). A repeated `Idempotency-Key` with the same request returns the same job.",
    params(
        ("reference" = String, Path, description = "The Airbyte connection id or its slug"),
        ("Idempotency-Key" = Option<String>, Header,
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

fn permission_for(job_type: JobType) -> Permission {
    match job_type {
        JobType::Sync => Permission::JobsSync,
        JobType::Reset => Permission::JobsReset,
    }
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
    let permission = permission_for(job_type);
    caller.require_somewhere(&state, permission).await?;
    let options = query.merge(parse_body(&body)?);
    let key = idempotency_key(&headers)?;
    let wait = options
        .wait
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    if wait.is_some_and(|w| w > MAX_WAIT) {
        return Err(ApiError::BadRequest("wait is at most 15m".into()));
    }
    let max_attempts = match options.max_attempts {
        Some(0) => {
            return Err(ApiError::BadRequest(
                "max_attempts must be at least 1".into(),
            ));
        }
        Some(n) if n > JobsConfig::MAX_ATTEMPTS_CAP => {
            return Err(ApiError::BadRequest(format!(
                "max_attempts is at most {}",
                JobsConfig::MAX_ATTEMPTS_CAP
            )));
        }
        Some(n) => n,
        None => state.config().jobs.max_attempts,
    };
    let connection = resolve(&state, &reference).await?;
    let decision = caller
        .authorize(&state, permission, &resource_of(&connection))
        .await?;
    let if_running = options.if_running.unwrap_or_default();

    if if_running != IfRunning::Queue {
        let unfinished = state.store().unfinished_jobs_of(&connection.id).await?;
        if let Some(existing) = unfinished.first() {
            if if_running == IfRunning::Reject {
                return Err(ApiError::Conflict(format!(
                    "connection {} already has job {} ({})",
                    connection.slug, existing.id, existing.state
                )));
            }
            let attached = unfinished
                .iter()
                .find(|j| j.job_type == job_type)
                .unwrap_or(existing);
            caller.note_job(attached);
            return Ok((StatusCode::OK, Json(render(attached))).into_response());
        }
    }

    let new = NewJob {
        connection_id: connection.id.clone(),
        workspace_id: connection.workspace_id.clone(),
        job_type,
        max_attempts: i64::from(max_attempts),
        requested_by: caller.principal.subject.clone(),
        requester: caller.requester(),
        channel: caller.channel.parse().unwrap_or(Channel::Api),
        retry_of: None,
    };
    let key = key.map(|key| IdempotencyKey {
        principal: format!("{}|{}", caller.principal.issuer, caller.principal.subject),
        key,
        request_hash: request_hash(&connection, job_type, if_running, max_attempts),
    });
    let mut entry = caller.entry(&crate::web::auth::action_of(permission), &decision);
    entry.detail = Some(json!({"if_running": if_running.as_str(), "max_attempts": max_attempts}));
    let inserted = state
        .store()
        .insert_job(&new, key.as_ref(), state.now_ms(), &entry)
        .await?;
    let job = match inserted {
        Inserted::New { job, ready } => {
            if ready {
                state.wake_dispatcher();
            }
            tracing::info!(
                request_id = %caller.request_id.0,
                subject = %caller.principal.subject,
                job_id = %job.id,
                connection_id = %job.connection_id,
                job_type = job.job_type.as_str(),
                "job queued"
            );
            job
        }
        Inserted::Existing(job) => job,
        Inserted::KeyReused => {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was used for a different request".into(),
            ));
        }
    };
    caller.note_job(&job);
    respond_after_wait(&state, &caller, job, wait).await
}

/// A digest of what a trigger asked for, to tell a retried request from a
/// different one reusing its idempotency key.
fn request_hash(
    connection: &ConnectionInfo,
    job_type: JobType,
    if_running: IfRunning,
    max_attempts: u32,
) -> String {
    let canonical = format!(
        "{}\n{}\n{}\n{}",
        connection.id,
        job_type.as_str(),
        if_running.as_str(),
        max_attempts
    );
    hex::encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref(),
    )
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
    let deadline = tokio::time::Instant::now() + wait;
    let mut current = job;
    while !current.state.is_terminal() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(WATCH_EVERY.min(deadline - tokio::time::Instant::now())).await;
        if let Some(fresh) = state.store().get_job(&current.id).await? {
            current = fresh;
        }
    }
    // The log line and the span name the Airbyte job the wait saw start.
    caller.note_job(&current);
    let status = if current.state.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(render(&current))).into_response())
}

/// The policy's view of a job's connection (from the catalog when it still
/// knows the connection).
fn job_resource(state: &AppState, job: &Job) -> Resource {
    match state.catalog().snapshot().resolve(&job.connection_id) {
        Some(connection) => resource_of(connection),
        None => Resource::Connection(ConnectionResource {
            id: job.connection_id.clone(),
            slug: String::new(),
            workspace_id: job.workspace_id.clone(),
            workspace_name: None,
            tags: Vec::new(),
        }),
    }
}

/// Loads a job the caller may act on with `permission`; unknown ids and
/// ids outside the caller's scope are both 404, so ids cannot be probed.
async fn load(
    state: &AppState,
    caller: &Caller,
    id: &str,
    permission: Permission,
) -> Result<Job, ApiError> {
    caller.require_somewhere(state, permission).await?;
    let id: JobId = id.parse().map_err(|_| ApiError::NotFound("job"))?;
    let job = state
        .store()
        .get_job(&id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    let resource = job_resource(state, &job);
    if permission == Permission::JobsRead {
        if !state
            .policy()
            .allows(&caller.principal, permission, &resource)
        {
            caller.authorize(state, permission, &resource).await.ok();
            return Err(ApiError::NotFound("job"));
        }
    } else {
        // Seeing the job but not acting on it is a 403; not seeing it a 404.
        if !state
            .policy()
            .allows(&caller.principal, Permission::JobsRead, &resource)
        {
            return Err(ApiError::NotFound("job"));
        }
        caller.authorize(state, permission, &resource).await?;
    }
    caller.note_job(&job);
    Ok(job)
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
    let job = load(&state, &caller, &id, Permission::JobsRead).await?;
    caller
        .read(&state, "jobs.get", &job_resource(&state, &job))
        .await;
    Ok(Json(render(&job)))
}

/// Filters of the job list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// A connection id or slug.
    connection: Option<String>,
    /// `queued`, `starting`, `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    state: Option<String>,
    /// `sync` or `reset`.
    #[serde(rename = "type")]
    job_type: Option<String>,
    /// A principal's subject.
    requested_by: Option<String>,
    /// RFC 3339: jobs created at or after.
    since: Option<String>,
    /// From `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 200, default 50.
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
        return Err(ApiError::BadRequest("limit must be 1 to 200".into()));
    }
    let mut filter = JobFilter {
        limit,
        requested_by: query.requested_by.clone(),
        ..JobFilter::default()
    };
    if let Some(text) = &query.state {
        filter.state = Some(text.parse().map_err(ApiError::BadRequest)?);
    }
    if let Some(text) = &query.job_type {
        filter.job_type = Some(text.parse().map_err(ApiError::BadRequest)?);
    }
    if let Some(text) = &query.since {
        let at = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|_| ApiError::BadRequest("since must be an RFC 3339 time".into()))?;
        filter.since = Some(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0));
    }
    if let Some(cursor) = &query.cursor {
        filter.before = Some(
            cursor
                .parse()
                .map_err(|_| ApiError::BadRequest("invalid cursor".into()))?,
        );
    }
    let policy = state.policy();
    let everywhere = policy
        .effective(&caller.principal)
        .iter()
        .any(|(p, scope)| *p == Permission::JobsRead && *scope == crate::policy::Scope::All);
    let snapshot = state.catalog().snapshot();
    if let Some(reference) = &query.connection {
        let connection = resolve(&state, reference).await?;
        filter.connection_ids = Some(vec![connection.id]);
    } else if !everywhere {
        filter.connection_ids = Some(
            snapshot
                .all()
                .iter()
                .filter(|c| policy.allows(&caller.principal, Permission::JobsRead, &resource_of(c)))
                .map(|c| c.id.clone())
                .collect(),
        );
    }
    let jobs = state.store().list_jobs(&filter).await?;
    let visible: Vec<&Job> = jobs
        .iter()
        .filter(|job| {
            everywhere
                || policy.allows(
                    &caller.principal,
                    Permission::JobsRead,
                    &job_resource(&state, job),
                )
        })
        .collect();
    let next_cursor = (i64::try_from(jobs.len()).unwrap_or(0) == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    caller.read(&state, "jobs.list", &Resource::Global).await;
    Ok(Json(JobPage {
        data: visible.iter().map(|j| render(j)).collect(),
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
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream",
            body = JobEvent),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = load(&state, &caller, &id, Permission::JobsRead).await?;
    let after: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stream = futures_util::stream::unfold(
        (state, job.id, after, false),
        |(state, id, mut after, done)| async move {
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
                            (state, id, after, terminal),
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
    let job = load(&state, &caller, &id, Permission::JobsCancel).await?;
    if job.state.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "job {} already {}",
            job.id, job.state
        )));
    }
    let decision = state.policy().decide(
        &caller.principal,
        Permission::JobsCancel,
        &job_resource(&state, &job),
    );
    let mut entry = caller.entry("jobs.cancel", &decision);
    entry.job_id = Some(job.id.to_string());
    entry.connection_id = Some(job.connection_id.clone());
    entry.workspace_id = Some(job.workspace_id.clone());
    entry.airbyte_job_id = job.airbyte_job_id;
    entry.outcome = Some("cancel_requested".to_owned());
    let mut job = state
        .store()
        .request_cancel(&job.id, state.now_ms(), &entry)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    tracing::info!(request_id = %caller.request_id.0, subject = %caller.principal.subject, job_id = %job.id, "cancel requested");
    if let (Some(airbyte_id), true) = (
        job.airbyte_job_id,
        matches!(job.state, JobState::Pending | JobState::Running),
    ) {
        match state.airbyte().cancel_job(airbyte_id).await {
            Ok(_) => {
                state
                    .store()
                    .update_job(&job.id, &JobChange::to(JobState::Cancelled), state.now_ms())
                    .await?;
            }
            Err(error) => {
                // Already ended in Airbyte, or Airbyte unreachable: the
                // tracker records the end, or retries the cancel.
                tracing::info!(job_id = %job.id, error = %error, "cancel not confirmed by Airbyte yet");
            }
        }
        if let Some(fresh) = state.store().get_job(&job.id).await? {
            job = fresh;
        }
    }
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
    let job = load(&state, &caller, &id, Permission::JobsRetry).await?;
    if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
        return Err(ApiError::Conflict(format!(
            "job {} is {}; only failed or cancelled jobs are retried",
            job.id, job.state
        )));
    }
    let new = NewJob {
        connection_id: job.connection_id.clone(),
        workspace_id: job.workspace_id.clone(),
        job_type: job.job_type,
        max_attempts: job.max_attempts,
        requested_by: caller.principal.subject.clone(),
        requester: caller.requester(),
        channel: caller.channel.parse().unwrap_or(Channel::Api),
        retry_of: Some(job.id.clone()),
    };
    let decision = state.policy().decide(
        &caller.principal,
        Permission::JobsRetry,
        &job_resource(&state, &job),
    );
    let mut entry = caller.entry("jobs.retry", &decision);
    entry.detail = Some(json!({"retry_of": job.id}));
    let Inserted::New {
        job: created,
        ready,
    } = state
        .store()
        .insert_job(&new, None, state.now_ms(), &entry)
        .await?
    else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "a retry without a key was not inserted"
        )));
    };
    if ready {
        state.wake_dispatcher();
    }
    caller.note_job(&created);
    Ok((StatusCode::ACCEPTED, Json(render(&created))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn times_render_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500), "1970-01-01T00:00:01.5Z");
    }
}
