//! Four-eyes approvals' events on both backends: signed webhooks
//! (`approval.requested`, `approval.approved`, `approval.denied`) for the
//! webhooks that name them and whose filters match, and the same events on
//! `GET /v1/events` for the requester and whoever may decide, and nobody
//! else. Through the deliverer alone: a job's and a request's event of the
//! same number are two deliveries, a restart repeats neither, and expiry
//! raises `approval.expired`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use airlock_domain::approvals::{Action, Approval, ApprovalsConfig, NewApproval, Party};
use airlock_domain::audit::Entry;
use airlock_domain::clock::{Clock, ManualClock};
use airlock_domain::jobs::{Channel, JobState, JobType};
use airlock_domain::policy::Permission;
use airlock_store::webhooks::list_deliveries;

use crate::harness::{Harness, Stack};
use crate::support::{Db, both_backends, send};
use crate::webhooks::{self as hooks, Received, Receiver, SECRET, assert_signed, header};

const CONNECTION: &str = "postgres-snowflake";

/// A harness whose resets wait for approval.
fn harness(kind: Db) -> Harness {
    Harness::fast(kind).approving_resets()
}

/// A `[[webhooks]]` entry to `url` for `events` (`None`: the default set),
/// on `connections` when given.
fn webhook(url: &str, events: Option<&[&str]>, connections: Option<&[&str]>) -> toml::Table {
    let mut webhook = toml::Table::new();
    webhook.insert("url".to_owned(), url.into());
    webhook.insert("secret".to_owned(), SECRET.into());
    if let Some(events) = events {
        webhook.insert("events".to_owned(), events.to_vec().into());
    }
    if let Some(connections) = connections {
        webhook.insert("connections".to_owned(), connections.to_vec().into());
    }
    webhook
}

/// A reset by the editor that waits: its job id and its request's id.
async fn waiting_reset(stack: &Stack) -> (String, String) {
    let (status, job) = stack
        .post(&format!("/v1/connections/{CONNECTION}/reset"), "editor")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["state"], "awaiting_approval", "{job}");
    let approval = job["approval"]["id"].as_str().expect("an approval id");
    (
        job["id"].as_str().expect("a job id").to_owned(),
        approval.to_owned(),
    )
}

async fn approve(stack: &Stack, approval: &str) {
    let (status, body) = stack
        .post(&format!("/v1/approvals/{approval}/approve"), "approver")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn deny(stack: &Stack, approval: &str) {
    let (status, body) = send(
        stack
            .request(
                Method::POST,
                &format!("/v1/approvals/{approval}/deny"),
                Some("approver"),
            )
            .json(&json!({"reason": "not during month-end close"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The first request `receiver` got for `event` about `id` (the approval's
/// or the job's), waiting up to 30 s.
async fn received(receiver: &Receiver, event: &str, id: &str) -> (Received, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = receiver.received().into_iter().find_map(|r| {
            let body: Value = serde_json::from_str(&r.body).ok()?;
            let subject = if event.starts_with("approval.") {
                &body["approval"]["id"]
            } else {
                &body["job"]["id"]
            };
            (header(&r, "airlock-event") == event && subject == id).then_some((r, body))
        });
        if let Some(found) = found {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {event} webhook for {id}; got {:?}",
            events_of(receiver)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `Airlock-Event` of every request `receiver` got.
fn events_of(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| header(r, "airlock-event").to_owned())
        .collect()
}

/// An approved reset raises `approval.requested` then `approval.approved`
/// (and the job's `job.queued`), a denied one `approval.denied`, signed,
/// with the request as the API shows it; a webhook with the default events
/// or a filter on another connection gets none of them.
async fn approvals_reach_the_webhooks_that_want_them(kind: Db) {
    let wanting = Receiver::start(0).await;
    let default = Receiver::start(0).await;
    let elsewhere = Receiver::start(0).await;
    let approvals = [
        "approval.requested",
        "approval.approved",
        "approval.denied",
        "approval.expired",
    ];
    let mut events = approvals.to_vec();
    events.push("queued");
    let stack = harness(kind)
        .entry(
            "webhooks",
            webhook(&wanting.url, Some(&events), Some(&[CONNECTION])),
        )
        .entry("webhooks", webhook(&default.url, None, None))
        .entry(
            "webhooks",
            webhook(
                &elsewhere.url,
                Some(&approvals),
                Some(&["00000000-0000-0000-0000-000000000000"]),
            ),
        )
        .start()
        .await;

    let (job, approval) = waiting_reset(&stack).await;
    let (request, body) = received(&wanting, "approval.requested", &approval).await;
    assert_signed(&request, SECRET);
    assert_eq!(body["event"], "approval.requested");
    assert!(body["occurred_at"].is_string() && body["sent_at"].is_string());
    assert_eq!(body["approval"]["job_id"], job.as_str());
    assert_eq!(body["approval"]["permission"], "jobs:reset");
    assert_eq!(body["approval"]["connection"], CONNECTION);

    approve(&stack, &approval).await;
    let (request, body) = received(&wanting, "approval.approved", &approval).await;
    assert_signed(&request, SECRET);
    assert_eq!(header(&request, "airlock-event"), "approval.approved");
    let (status, shown) = stack
        .get(&format!("/v1/approvals/{approval}"), "approver")
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        body["approval"], shown,
        "the webhook's request is the API's"
    );
    assert_eq!(body["approval"]["decisions"][0]["verdict"], "approve");
    let (request, _) = received(&wanting, "job.queued", &job).await;
    assert_signed(&request, SECRET);

    let (_, denied) = waiting_reset(&stack).await;
    deny(&stack, &denied).await;
    let (request, body) = received(&wanting, "approval.denied", &denied).await;
    assert_signed(&request, SECRET);
    assert_eq!(body["approval"]["state"], "denied");
    assert_eq!(
        body["approval"]["decisions"][0]["reason"],
        "not during month-end close"
    );

    // The approved reset's job ends, which the default webhook gets; by
    // then it would have had any approval's event too.
    let ended = stack.wait_terminal(&job).await;
    let end = format!("job.{}", ended["state"].as_str().expect("a state"));
    received(&default, &end, &job).await;
    let got = events_of(&wanting);
    let position = |event: &str| got.iter().position(|e| e == event);
    assert!(
        position("approval.requested") < position("approval.approved"),
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|e| e.starts_with("approval.")).count(),
        4,
        "one delivery per event (two requests, an approval, a denial): {got:?}"
    );
    for (receiver, what) in [
        (&default, "the default events"),
        (&elsewhere, "another connection"),
    ] {
        let got = events_of(receiver);
        assert!(
            !got.iter().any(|e| e.starts_with("approval.")),
            "{what}: {got:?}"
        );
    }
    stack.stop().await.shutdown().await;
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: String,
    data: Value,
}

/// Opens `/v1/events` as `role` (after `last_event_id`, when given) and
/// reads it for `within`.
async fn stream(
    stack: &Stack,
    role: &str,
    last_event_id: Option<&str>,
    within: Duration,
) -> tokio::task::JoinHandle<Vec<Sse>> {
    let mut request = stack.request(Method::GET, "/v1/events", Some(role));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let mut response = request.send().await.expect("the stream opens");
    assert_eq!(response.status(), StatusCode::OK, "{role}");
    tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::time::timeout(within, async {
            while let Ok(Some(chunk)) = response.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
        text.split("\n\n")
            .filter_map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(str::to_owned))
                };
                Some(Sse {
                    event: field("event: ")?,
                    id: field("id: ").unwrap_or_default(),
                    data: serde_json::from_str(&field("data: ")?).ok()?,
                })
            })
            .collect()
    })
}

/// The approval events of `events` about request `id`, by name.
fn approval_events(events: &[Sse], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event.starts_with("approval.") && e.data["id"] == id)
        .map(|e| e.event.clone())
        .collect()
}

/// The requester and the approver see a request's events on `/v1/events`;
/// a runner and a reader, who may neither, see its job but not the request.
/// An approval event's id resumes both timelines.
async fn the_event_stream_shows_a_request_to_whoever_may_see_it(kind: Db) {
    let stack = harness(kind).start().await;
    let window = Duration::from_secs(8);
    let mut streams = Vec::new();
    for role in ["approver", "editor", "runner", "reader"] {
        streams.push((role, stream(&stack, role, None, window).await));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (job, approval) = waiting_reset(&stack).await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    approve(&stack, &approval).await;

    let mut seen = std::collections::HashMap::new();
    for (role, reading) in streams {
        seen.insert(role, reading.await.expect("the reader"));
    }
    let both = ["approval.requested", "approval.approved"];
    for role in ["approver", "editor"] {
        assert_eq!(
            approval_events(&seen[role], &approval),
            both,
            "{role}: {:?}",
            seen[role]
        );
    }
    let requested = seen["approver"]
        .iter()
        .find(|e| e.event == "approval.requested")
        .expect("requested");
    assert!(requested.data["state"].is_string());
    assert_eq!(requested.data["job_id"], job.as_str());
    assert!(requested.id.starts_with('a'), "{}", requested.id);
    for role in ["runner", "reader"] {
        let events = &seen[role];
        assert!(
            events
                .iter()
                .any(|e| e.event == "job" && e.data["job_id"] == job.as_str()),
            "{role} sees the job: {events:?}"
        );
        assert!(
            !events.iter().any(|e| e.event.starts_with("approval.")),
            "{role} sees no request: {events:?}"
        );
    }
    // Job events keep their ids: the change's seq.
    let job_event = seen["editor"]
        .iter()
        .find(|e| e.event == "job")
        .expect("a job event");
    assert_eq!(job_event.id, job_event.data["seq"].to_string());

    // Resuming after the request's event replays the approval and the
    // job's later changes, not the request again.
    let replay = stream(
        &stack,
        "approver",
        Some(&requested.id),
        Duration::from_secs(2),
    )
    .await
    .await
    .expect("the reader");
    assert_eq!(
        approval_events(&replay, &approval),
        ["approval.approved"],
        "{replay:?}"
    );
    assert!(
        replay
            .iter()
            .any(|e| e.event == "job" && e.data["state"] == "queued"),
        "{replay:?}"
    );
    stack.stop().await.shutdown().await;
}

/// A request on `connection`, stored at `at` without a job.
async fn stored_request(store: &airlock_store::Store, connection: &str, at: i64) -> Approval {
    let new = NewApproval {
        action: Action {
            permission: Permission::JobsReset,
            connection_id: connection.to_owned(),
            job_type: JobType::Reset,
        },
        requester: Party {
            issuer: "https://id.example.com".to_owned(),
            subject: "erin".to_owned(),
            kind: "user".to_owned(),
            client_id: None,
        },
        channel: Channel::Api,
        reason: Some("the schema changed".to_owned()),
        job_id: None,
    };
    let config = ApprovalsConfig {
        require: vec![Permission::JobsReset],
        ..ApprovalsConfig::default()
    };
    let approval = Approval::request(new, &config, at);
    let entry = Entry {
        channel: "api".to_owned(),
        action: "jobs.reset".to_owned(),
        decision: "allow".to_owned(),
        ..Entry::default()
    };
    store
        .create_approval(&approval, &entry)
        .await
        .expect("stored");
    approval
}

/// Job event 1 and approval event 1 are both delivered (each timeline has
/// its cursor and its numbers); a second deliverer (a restart, a replica)
/// enqueues nothing again; an expiry is `approval.expired`; a workspace
/// filter the request's connection cannot be placed in (no catalog) gets
/// nothing.
async fn both_timelines_are_delivered_once(kind: Db) {
    let store = hooks::store(kind).await;
    let receiver = Receiver::start(0).await;
    let filtered = Receiver::start(0).await;
    let clock = ManualClock::new(1_700_000_000_000);
    let webhooks = [
        hooks::webhook(
            &receiver.url,
            "events = [\"queued\", \"succeeded\", \"approval.requested\", \"approval.expired\"]",
        ),
        hooks::webhook(
            &filtered.url,
            "events = [\"approval.requested\"]\nworkspaces = [\"w1\"]",
        ),
    ];
    let mut deliverer = hooks::deliverer(&store, &clock, &webhooks);
    let now = clock.now_ms();
    let job = hooks::run_job(&store, "c1", JobState::Succeeded, now).await;
    let approval = stored_request(&store, "c1", now).await;
    assert_eq!(deliverer.enqueue().await.expect("enqueue"), 3);
    let expired = store
        .expire_approvals(approval.expires_at)
        .await
        .expect("expire");
    assert_eq!(expired.len(), 1);
    let mut replica = hooks::deliverer(&store, &clock, &webhooks);
    assert_eq!(replica.enqueue().await.expect("enqueue"), 1);
    assert_eq!(deliverer.enqueue().await.expect("enqueue again"), 0);
    let report = deliverer.pass().await.expect("pass");
    assert_eq!(report.delivered, 4, "{report:?}");

    let deliveries = list_deliveries(&store, None, 10).await.expect("deliveries");
    let on = |timeline: &str, seq: i64| {
        deliveries
            .iter()
            .filter(|d| d.timeline == timeline && d.event_seq == seq)
            .count()
    };
    assert_eq!(
        (on("jobs", 1), on("approvals", 1)),
        (1, 1),
        "{deliveries:?}"
    );
    let mut got: Vec<(String, Value)> = receiver
        .received()
        .iter()
        .map(|r| {
            assert_signed(r, SECRET);
            let body = serde_json::from_str(&r.body).expect("JSON");
            (header(r, "airlock-event").to_owned(), body)
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = got.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "approval.expired",
            "approval.requested",
            "job.queued",
            "job.succeeded"
        ]
    );
    assert_eq!(got[0].1["approval"]["id"], approval.id.as_str());
    assert_eq!(got[0].1["approval"]["state"], "expired");
    assert_eq!(got[2].1["job"]["id"], job.id.as_str());
    assert!(filtered.received().is_empty(), "no catalog, no workspace");
}

both_backends!(
    both_timelines_are_delivered_once,
    approvals_reach_the_webhooks_that_want_them,
    the_event_stream_shows_a_request_to_whoever_may_see_it,
);
