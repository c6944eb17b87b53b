//! `GET /v1/events`: every job change and approval request's event the
//! caller may see, as Server-Sent Events, for live views (the console's job
//! board).
//!
//! It follows the same timeline as a job's own stream (`job_events`, read
//! every [`WATCH_EVERY`]), across all jobs, and sends each change only when
//! the caller may read the job (`jobs:read` on its connection, decided with
//! the policy in force at that moment). It follows the approvals' timeline
//! (`approval_events`) too, and sends `approval.requested`,
//! `approval.approved`, `approval.denied` and `approval.expired` to the
//! request's requester and to whoever may decide it (`approvals:decide` on
//! its connection), as `GET /v1/approvals/{id}` would show it to them.
//!
//! Ids: a job event's is its `seq`, as it always was; an approval event's is
//! `a<approval seq>.<job seq>`, both timelines' places, so that resuming
//! after it misses neither. Resuming after a job event's id resumes the
//! jobs exactly, and the approvals from the present (a bare number cannot
//! carry their place). It starts at the present (or after `Last-Event-ID`)
//! and ends when the caller's credential does: the token's `exp`, or the
//! console session's end.

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

use super::approvals::render;
use crate::service::approvals::{resource_in, visible_to};
use crate::web::auth::StreamPlace;
use crate::web::problem::responses::{Forbidden, Unauthorized, Unavailable, Unprocessable};
use crate::web::session::Session;
use crate::web::{ApiError, AppState, Caller};
use airlock_domain::approvals::{Approval, ApprovalId};
use airlock_domain::identity::Principal;
use airlock_domain::jobs::view::JobView;
use airlock_domain::jobs::view::rfc3339;
use airlock_domain::jobs::{Job, JobId, JobState};
use airlock_domain::policy::Permission;
use airlock_store::approvals::ApprovalEvent;

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
    /// The approvals' timeline's place.
    approvals_after: i64,
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
    summary = "Changes of the jobs and approval requests the caller may see, as Server-Sent Events",
    description = "One `job` event (its `data` is a `JobChange`, its `id` the change's `seq`) per \
        state change of any job the caller may read (`jobs:read` on its connection). And one \
        `approval.requested`, `approval.approved`, `approval.denied` or `approval.expired` event \
        (its `data` is the `Approval` as it stands when sent, its `id` `a<approval seq>.<job seq>`) \
        per such change of any approval request the caller made or may decide \
        (`approvals:decide` on its connection). From now, or after `Last-Event-ID`: after an \
        approval event's id both resume exactly; after a job event's id the jobs resume exactly \
        and the approval events from now. Open to callers with `jobs:read` or \
        `approvals:decide` somewhere. The stream ends when the caller's token expires or its \
        console session ends.",
    params(
        ("Last-Event-ID" = Option<String>, Header, nullable = false,
            pattern = "^([0-9]{1,18}|a[0-9]{1,18}\\.[0-9]{1,18})$",
            description = "Resume after this event: a job event's id (`42`) or an approval \
            event's (`a7.42`); anything else is refused"),
    ),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream",
            body = super::sse::ChangeStream),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if !state
        .policy()
        .can_anywhere(&caller.principal, Permission::ApprovalsDecide)
    {
        caller
            .require_somewhere(&state, Permission::JobsRead)
            .await?;
    }
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|id| Resume::parse(id.trim()))
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "must be an id the stream sent")
                })?,
        ),
    };
    let place = caller.open_stream(&state)?;
    let after = match resume.and_then(|r| r.jobs) {
        Some(seq) => seq,
        None => state.store().latest_event_seq().await?,
    };
    let approvals_after = match resume.and_then(|r| r.approvals) {
        Some(seq) => seq,
        None => state.store().latest_approval_event_seq().await?,
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
        approvals_after,
        until,
        session_checked_at: now,
        _place: place,
    };
    // The caller (and its place under the per-identity cap) is released
    // here: an open stream is not a request in flight.
    drop(caller);
    let events = futures_util::stream::unfold(follow, |mut follow| async move {
        let out = follow.next_events().await?;
        Some((futures_util::stream::iter(out.into_iter().map(Ok)), follow))
    });
    Ok(Sse::new(events.flatten()).keep_alive(KeepAlive::default()))
}

/// Where `Last-Event-ID` says to resume: each timeline's place, when it
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resume {
    jobs: Option<i64>,
    approvals: Option<i64>,
}

impl Resume {
    /// `42` (a job event's id) or `a7.42` (an approval event's); `None`
    /// for anything else.
    fn parse(id: &str) -> Option<Self> {
        // As the document's pattern: one to eighteen digits.
        let place = |text: &str| {
            Some(text)
                .filter(|t| (1..=18).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<i64>().ok())
        };
        match id.strip_prefix('a') {
            Some(rest) => {
                let (approvals, jobs) = rest.split_once('.')?;
                Some(Self {
                    jobs: Some(place(jobs)?),
                    approvals: Some(place(approvals)?),
                })
            }
            None => Some(Self {
                jobs: Some(place(id)?),
                approvals: None,
            }),
        }
    }

    /// The id of approval event `seq` sent when the jobs' place is `jobs`.
    fn approval_id(seq: i64, jobs: i64) -> String {
        format!("a{seq}.{jobs}")
    }
}

impl Follow {
    /// The next events the caller may see, waiting for them; `None` once
    /// the stream ends.
    async fn next_events(&mut self) -> Option<Vec<Event>> {
        loop {
            let now = self.state.now_ms();
            if now >= self.until || !self.session_alive(now).await {
                return None;
            }
            let full = |n: usize| n >= usize::try_from(BATCH).unwrap_or(usize::MAX);
            let store = self.state.store().clone();
            let mut out = Vec::new();
            let mut more = false;
            match store.events_after(self.after, BATCH).await {
                Ok(batch) => {
                    more |= full(batch.len());
                    out.extend(self.visible(batch).await);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "event stream cannot read the database");
                }
            }
            match store
                .approval_events_after(self.approvals_after, BATCH)
                .await
            {
                Ok(batch) => {
                    more |= full(batch.len());
                    out.extend(self.visible_approvals(batch).await);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "event stream cannot read the database");
                }
            }
            if !out.is_empty() {
                return Some(out);
            }
            // A replay from far back reads page by page, leaving the
            // database to others between pages.
            let pause = if more { REPLAY_PAUSE } else { WATCH_EVERY };
            tokio::time::sleep(pause).await;
        }
    }

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

    /// The approval events of `batch` the caller may see (they made the
    /// request or may decide it), moving `approvals_after` past all of them.
    async fn visible_approvals(&mut self, batch: Vec<ApprovalEvent>) -> Vec<Event> {
        let policy = self.state.policy();
        let snapshot = self.state.catalog().snapshot();
        let mut approvals: HashMap<ApprovalId, Option<Approval>> = HashMap::new();
        let mut out = Vec::new();
        for event in batch {
            self.approvals_after = event.seq;
            let name = match event.event.as_str() {
                "requested" => "approval.requested",
                "approved" => "approval.approved",
                "denied" => "approval.denied",
                "expired" => "approval.expired",
                // `withdrawn` and `used`: the job's own events tell them.
                _ => continue,
            };
            if !approvals.contains_key(&event.approval_id) {
                let store = self.state.store();
                let approval = store.get_approval(&event.approval_id).await.ok().flatten();
                approvals.insert(event.approval_id.clone(), approval);
            }
            let Some(Some(approval)) = approvals.get(&event.approval_id) else {
                continue;
            };
            let resource = resource_in(&snapshot, approval);
            if !visible_to(&policy, &self.principal, approval, &resource) {
                continue;
            }
            let view = render(approval, &snapshot);
            out.push(
                Event::default()
                    .event(name)
                    .id(Resume::approval_id(event.seq, self.after))
                    .data(serde_json::to_string(&view).unwrap_or_default()),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Resume;

    #[test]
    fn last_event_ids_name_each_timelines_place() {
        assert_eq!(
            Resume::parse("42"),
            Some(Resume {
                jobs: Some(42),
                approvals: None
            })
        );
        let id = Resume::approval_id(7, 42);
        assert_eq!(
            Resume::parse(&id),
            Some(Resume {
                jobs: Some(42),
                approvals: Some(7)
            })
        );
        for bad in [
            "",
            "-1",
            "+5",
            "a",
            "a7",
            "a7.",
            "a.42",
            "a-7.42",
            "x7.42",
            "a7.42.1",
            "1234567890123456789",
        ] {
            assert_eq!(Resume::parse(bad), None, "{bad}");
        }
    }
}
