//! `GET /v1/events`: every job change the caller may see, as Server-Sent
//! Events, for live views (the console's job board).
//!
//! It follows the same timeline as a job's own stream (`job_events`, read
//! every [`WATCH_EVERY`]), across all jobs, and sends each change only when
//! the caller may read the job (`jobs:read` on its connection, decided with
//! the policy in force at that moment). It starts at the present (or after
//! `Last-Event-ID`) and ends when the caller's credential does: the token's
//! `exp`, or the console session's end.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::auth::StreamPlace;
use crate::web::problem::responses::{Forbidden, Unauthorized, Unavailable};
use crate::web::session::Session;
use crate::web::{ApiError, AppState, Caller};
use airlock_domain::identity::Principal;
use airlock_domain::jobs::view::JobView;
use airlock_domain::jobs::view::rfc3339;
use airlock_domain::jobs::{Job, JobId, JobState};
use airlock_domain::policy::Permission;

/// How often the stream looks for new changes.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// How often a stream opened by a console session checks that the session
/// still exists (a logout ends the stream).
const SESSION_CHECK_MS: i64 = 5_000;

/// Timeline entries read per round.
const BATCH: i64 = 200;

/// The pause between two pages of a replay in which the caller could see
/// nothing (`Last-Event-ID` far back, in a timeline of others' jobs).
const REPLAY_PAUSE: Duration = Duration::from_millis(20);

/// One `job` event (its `data`, as JSON).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JobChange {
    /// Also the event's `id` (resume with `Last-Event-ID`).
    seq: i64,
    /// Airlock's job id.
    job_id: String,
    /// The state the job entered.
    state: JobState,
    /// RFC 3339.
    at: String,
    detail: Option<String>,
    /// The job as it stands when the event is sent.
    job: JobView,
}

/// What the stream carries from one round to the next.
struct Follow {
    state: AppState,
    principal: std::sync::Arc<Principal>,
    session: Option<Arc<Session>>,
    after: i64,
    /// Unix ms at which the credential ends (and so the stream).
    until: i64,
    session_checked_at: i64,
    /// The stream's place under its identity's bound.
    _place: StreamPlace,
}

/// `GET /v1/events`.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "job_changes",
    tag = "jobs",
    summary = "Changes of the jobs the caller may read, as Server-Sent Events",
    description = "One `job` event (its `data` is a `JobChange`) per state change of any job \
        the caller may read (`jobs:read` on its connection), from now or after `Last-Event-ID`. \
        The stream ends when the caller's token expires or its console session ends.",
    params(
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event"),
    ),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream",
            body = JobChange),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller
        .require_somewhere(&state, Permission::JobsRead)
        .await?;
    let place = caller.open_stream(&state)?;
    let after = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
    {
        Some(seq) if seq >= 0 => seq,
        _ => state.store().latest_event_seq().await?,
    };
    let token_exp = caller
        .principal
        .claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .map_or(i64::MAX, |exp| exp.saturating_mul(1000));
    let until = caller
        .session
        .as_ref()
        .map_or(token_exp, |session| session.expires_at);
    let now = state.now_ms();
    let follow = Follow {
        principal: caller.principal.clone(),
        session: caller.session.clone(),
        state,
        after,
        until,
        session_checked_at: now,
        _place: place,
    };
    // The caller (and its place under the per-identity cap) is released
    // here: an open stream is not a request in flight.
    drop(caller);
    let events = futures_util::stream::unfold(follow, |mut follow| async move {
        loop {
            let now = follow.state.now_ms();
            if now >= follow.until || !follow.session_alive(now).await {
                return None;
            }
            match follow.state.store().events_after(follow.after, BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    let full = batch.len() >= usize::try_from(BATCH).unwrap_or(usize::MAX);
                    let out = follow.visible(batch).await;
                    if !out.is_empty() {
                        return Some((futures_util::stream::iter(out.into_iter().map(Ok)), follow));
                    }
                    // A replay from far back reads page by page, leaving
                    // the database to others between pages.
                    if full {
                        tokio::time::sleep(REPLAY_PAUSE).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "event stream cannot read the database");
                }
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
    });
    Ok(Sse::new(events.flatten()).keep_alive(KeepAlive::default()))
}

impl Follow {
    /// False once the console session the stream was opened with is gone.
    async fn session_alive(&mut self, now: i64) -> bool {
        let Some(session) = &self.session else {
            return true;
        };
        if now - self.session_checked_at < SESSION_CHECK_MS {
            return true;
        }
        self.session_checked_at = now;
        match self
            .state
            .sessions()
            .find_by_hash(&session.id_hash, now)
            .await
        {
            Ok(found) => found.is_some(),
            // The database is down: keep the stream, check again later.
            Err(_) => true,
        }
    }

    /// The events of `batch` the caller may see, moving `after` past all
    /// of them.
    async fn visible(&mut self, batch: Vec<(JobId, airlock_store::jobs::JobEvent)>) -> Vec<Event> {
        let policy = self.state.policy();
        let snapshot = self.state.catalog().snapshot();
        let mut jobs: HashMap<JobId, Option<Job>> = HashMap::new();
        let mut out = Vec::new();
        for (job_id, event) in batch {
            self.after = event.seq;
            if !jobs.contains_key(&job_id) {
                let job = self.state.store().get_job(&job_id).await.ok().flatten();
                jobs.insert(job_id.clone(), job);
            }
            let Some(Some(job)) = jobs.get(&job_id) else {
                continue;
            };
            let resource = crate::service::jobs::job_resource_in(&snapshot, job);
            if !policy.allows(&self.principal, Permission::JobsRead, &resource) {
                continue;
            }
            let change = JobChange {
                seq: event.seq,
                job_id: job.id.to_string(),
                state: event.state,
                at: rfc3339(event.at),
                detail: event.detail,
                job: JobView::of(job),
            };
            out.push(
                Event::default()
                    .event("job")
                    .id(change.seq.to_string())
                    .data(serde_json::to_string(&change).unwrap_or_default()),
            );
        }
        out
    }
}
