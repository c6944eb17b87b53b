//! Pipeline control end to end (issue 4): the simulator, real tokens from the
//! development identity provider, and Airlock on port 0 with a fresh
//! database, driven over HTTP. Every test runs on SQLite and on Postgres.

use std::time::Duration;

use airbyte_sim::SimConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::Harness;
use crate::support::{self, Db, both_backends, id_of, reliable_connections, send, uuid};

/// The position of a state in a job's life (`queued` may come back after a
/// failed attempt; the others only move forward within an attempt).
fn life_order(state: &str) -> usize {
    [
        "queued",
        "starting",
        "pending",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ]
    .iter()
    .position(|s| *s == state)
    .unwrap_or_else(|| panic!("unknown state {state}"))
}

/// Checks a timeline: increasing `seq`, each attempt moving forward, one
/// terminal state, last.
fn assert_timeline(events: &[(i64, String, i64)]) {
    assert!(!events.is_empty(), "no events");
    assert_eq!(events[0].1, "queued", "{events:?}");
    for pair in events.windows(2) {
        let ((seq_a, a, at_a), (seq_b, b, at_b)) = (&pair[0], &pair[1]);
        assert!(seq_a < seq_b, "{events:?}");
        assert!(at_a <= at_b, "{events:?}");
        assert!(
            b == "queued" || life_order(a) < life_order(b),
            "{a} then {b}: {events:?}"
        );
    }
    let terminal: Vec<_> = events
        .iter()
        .filter(|(_, s, _)| life_order(s) >= life_order("succeeded"))
        .collect();
    assert_eq!(terminal.len(), 1, "{events:?}");
    assert_eq!(events.last().map(|e| &e.1), Some(&terminal[0].1));
}

async fn a_sync_is_tracked_to_success(db: Db) {
    let stack = Harness::fast(db).start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 30))
        .await;
    let (status, job) = stack.sync(&connection, "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["state"], "queued");
    assert_eq!(job["channel"], "api");
    assert_eq!(job["requested_by"], "runner");
    assert_eq!(job["airbyte_job_id"], Value::Null);
    let id = id_of(&job);

    // The event stream, opened now, replays the timeline from the start
    // and ends with the terminal state.
    let events = stack.events(&id).await;
    assert_timeline(&events);
    let states: Vec<&str> = events.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(states.last(), Some(&"succeeded"), "{states:?}");

    let done = stack.job(&id).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["error"], Value::Null);
    assert!(done["airbyte_job_id"].is_i64(), "{done:#}");
    assert!(
        done["rows_synced"].as_i64().is_some_and(|n| n > 0),
        "{done:#}"
    );
    assert!(
        done["bytes_synced"].as_i64().is_some_and(|n| n > 0),
        "{done:#}"
    );
    assert!(
        done["duration"]
            .as_str()
            .is_some_and(|d| d.starts_with("PT")),
        "{done:#}"
    );
    assert!(done["finished_at"].is_string(), "{done:#}");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        1
    );
    stack.stop().await;
}

async fn a_failing_sync_is_retried_with_backoff_then_fails(db: Db) {
    let stack = Harness::fast(db).start().await;
    let connection = stack
        .add_connection(json!({
            "workspace": "analytics",
            "count": 1,
            "failure_rate": 1.0,
            "attempt_failure_rate": 0.0,
            "duration_secs": [1, 1],
        }))
        .await;
    let (status, job) = stack.sync(&connection, "?max_attempts=3").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["max_attempts"], 3);
    let id = id_of(&job);
    let events = stack.events(&id).await;
    assert_timeline(&events);
    let done = stack.job(&id).await;
    assert_eq!(done["state"], "failed", "{done:#}");
    assert_eq!(done["attempts"], 3, "{done:#}");
    assert!(
        done["error"].as_str().is_some_and(|e| e.contains("failed")),
        "{done:#}"
    );
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        3
    );

    // Three attempts, with a backoff of at least 1 s then 2 s between the
    // end of one (back to `queued`) and the start of the next.
    let states: Vec<&str> = events.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "queued").count(),
        3,
        "{states:?}"
    );
    let mut waits = Vec::new();
    for (i, (_, state, at)) in events.iter().enumerate().skip(1) {
        if state == "queued" {
            let started = events[i + 1..]
                .iter()
                .find(|(_, s, _)| s != "queued")
                .expect("a next attempt");
            waits.push(started.2 - at);
        }
    }
    assert_eq!(waits.len(), 2, "{events:?}");
    assert!(waits[0] >= 1_000 && waits[1] >= 2_000, "waits {waits:?}");

    // Retrying makes a new job linked to the failed one.
    let (status, retry) = stack.post(&format!("/v1/jobs/{id}/retry"), "runner").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retry}");
    assert_eq!(retry["retry_of"], json!(id));
    assert_ne!(retry["id"], json!(id));
    assert_eq!(retry["state"], "queued");
    // It reaches Airbyte; cancelling it then stops it before a second
    // attempt (the first fails within milliseconds in the simulator).
    let retry = id_of(&retry);
    stack
        .wait_job(&retry, Duration::from_secs(30), |j| {
            j["airbyte_job_id"].is_i64()
        })
        .await;
    let (status, _) = stack
        .post(&format!("/v1/jobs/{retry}/cancel"), "runner")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let retried = stack.wait_terminal(&retry).await;
    assert!(
        matches!(retried["state"].as_str(), Some("cancelled" | "failed")),
        "{retried:#}"
    );

    // The failed Airbyte jobs are Airlock's own attempts: none of them is
    // shown as a job that Airbyte started by itself.
    let jobs = stack.jobs(Some(&connection)).await;
    let channels: Vec<&str> = jobs.iter().filter_map(|j| j["channel"].as_str()).collect();
    assert_eq!(channels, ["api", "api"], "{jobs:#?}");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        4
    );
    stack.stop().await;
}

async fn cancelling_a_running_job_cancels_it_in_airbyte(db: Db) {
    let stack = Harness::fast(db).start().await;
    // An hour-long sync, even at the simulator's speed.
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 3_600_000))
        .await;
    let id = stack.accepted_sync(&connection).await;
    let running = stack
        .wait_job(&id, Duration::from_secs(30), |j| {
            j["airbyte_job_id"].is_i64()
        })
        .await;
    let airbyte_id = running["airbyte_job_id"].as_i64().expect("an Airbyte job");
    let (status, cancelled) = stack.post(&format!("/v1/jobs/{id}/cancel"), "runner").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    let done = stack.wait_terminal(&id).await;
    assert_eq!(done["state"], "cancelled", "{done:#}");
    assert_eq!(stack.sim.sim.counters().jobs_cancelled, 1);
    let sim_jobs: Value = stack
        .http
        .get(format!("{}/jobs", stack.sim.admin_url()))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON");
    let in_airbyte = sim_jobs["data"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["id"] == json!(airbyte_id))
        .expect("the Airbyte job");
    assert_eq!(in_airbyte["status"], "cancelled", "{in_airbyte}");
    // Cancelling again is a conflict.
    let (status, _) = stack.post(&format!("/v1/jobs/{id}/cancel"), "runner").await;
    assert_eq!(status, StatusCode::CONFLICT);
    stack.stop().await;
}

async fn idempotency_keys_replay_or_refuse(db: Db) {
    let stack = Harness::fast(db).start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 30))
        .await;
    let path = format!("/v1/connections/{connection}/sync");
    let keyed = |body: Value| {
        stack
            .request(Method::POST, &path, Some("runner"))
            .header("idempotency-key", "nightly-2026-05-28")
            .json(&body)
    };
    let (status, first) = send(keyed(json!({"max_attempts": 2}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = send(keyed(json!({"max_attempts": 2}))).await;
    assert!(status.is_success(), "{status} {again}");
    assert_eq!(again["id"], first["id"]);
    let (status, reused) = send(keyed(json!({"max_attempts": 3}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reused}");
    // Keys belong to their caller: another identity's same key is new.
    let (status, other) = send(
        stack
            .request(Method::POST, &path, Some("editor"))
            .header("idempotency-key", "nightly-2026-05-28")
            .json(&json!({"max_attempts": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    assert_ne!(other["id"], first["id"]);
    for job in [&first, &other] {
        let done = stack.wait_terminal(&id_of(job)).await;
        assert_eq!(done["state"], "succeeded", "{done:#}");
    }
    assert_eq!(stack.jobs(Some(&connection)).await.len(), 2);
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        2
    );
    stack.stop().await;
}

async fn if_running_queues_attaches_or_rejects(db: Db) {
    // Simulated time moves only when told: the first sync stays in Airbyte
    // until the test lets it finish.
    let stack = Harness::fast(db)
        .sim(SimConfig {
            manual_clock: true,
            ..SimConfig::default()
        })
        .start()
        .await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 30))
        .await;
    let first = stack.accepted_sync(&connection).await;
    stack
        .wait_job(&first, Duration::from_secs(30), |j| {
            j["airbyte_job_id"].is_i64()
        })
        .await;

    let (status, body) = stack.sync(&connection, "?if_running=reject").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["status"], 409);
    let (status, attached) = stack.sync(&connection, "?if_running=attach").await;
    assert_eq!(status, StatusCode::OK, "{attached}");
    assert_eq!(attached["id"], json!(first));
    let (status, second) = stack.sync(&connection, "?if_running=queue").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    let second = id_of(&second);
    assert_ne!(second, first);
    // Queued behind the first, which Airbyte still runs.
    assert_eq!(stack.job(&second).await["state"], "queued");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        1
    );

    stack.sim.sim.advance(Duration::from_secs(120));
    let first_done = stack.wait_terminal(&first).await;
    assert_eq!(first_done["state"], "succeeded", "{first_done:#}");
    let second_started = stack
        .wait_job(&second, Duration::from_secs(30), |j| {
            j["airbyte_job_id"].is_i64()
        })
        .await;
    assert!(
        second_started["airbyte_job_id"].as_i64() > first_done["airbyte_job_id"].as_i64(),
        "{second_started:#}"
    );
    stack.sim.sim.advance(Duration::from_secs(120));
    let second_done = stack.wait_terminal(&second).await;
    assert_eq!(second_done["state"], "succeeded", "{second_done:#}");
    // The second reached Airbyte only after the first had ended.
    let events = stack.events(&second).await;
    let handed_over = events
        .iter()
        .find(|(_, s, _)| s != "queued")
        .expect("the second started");
    let first_finished = stack.events(&first).await.last().expect("events").2;
    assert!(handed_over.2 >= first_finished, "{events:?}");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        2
    );
    stack.stop().await;
}

async fn wait_holds_the_answer_until_the_job_ends(db: Db) {
    let stack = Harness::fast(db).start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 30))
        .await;
    let (status, job) = stack.sync(&connection, "?wait=30s").await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "succeeded", "{job:#}");
    // The same through the JSON body.
    let (status, job) = send(
        stack
            .request(
                Method::POST,
                &format!("/v1/connections/{connection}/sync"),
                Some("runner"),
            )
            .json(&json!({"wait": "30s"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "succeeded", "{job:#}");
    stack.stop().await;
}

/// A trigger with `?wait=` is stored, then the database goes away while
/// the answer waits: the answer is the stored job as last seen (202), not
/// a 503 that would make its client trigger it again. On Postgres, whose
/// reads all go through the pool that is closed here (SQLite reads jobs
/// with connections of their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_trigger_is_answered_with_its_job_when_the_database_goes() {
    let stack = Harness::fast(Db::Postgres).start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 3_600_000))
        .await;
    let waiting = {
        let client = stack.client.clone();
        let connection = connection.clone();
        tokio::spawn(async move { client.sync(&connection, "?wait=5s").await })
    };
    let observer = stack.store().await;
    let stored = loop {
        let jobs = observer
            .list_jobs(&airlock_store::jobs::JobFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("jobs");
        if let Some(job) = jobs.into_iter().next() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stack.state.store().pool().close().await;
    let (status, job) = waiting.await.expect("join");
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(id_of(&job), stored.id.to_string());
    observer.pool().close().await;
    stack.stop().await;
}

async fn callers_need_a_token_and_the_permission(db: Db) {
    let stack = Harness::fast(db).start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 30))
        .await;
    let path = format!("/v1/connections/{connection}/sync");

    let response = stack
        .request(Method::POST, &path, None)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let response = stack
        .request(Method::POST, &path, Some("reader"))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/problem+json"))
    );
    let (status, body) = stack.post(&path, "auditor").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A reader sees a job but may not cancel or retry it.
    let id = stack.accepted_sync(&connection).await;
    let (status, _) = stack.get(&format!("/v1/jobs/{id}"), "reader").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = stack.post(&format!("/v1/jobs/{id}/cancel"), "reader").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let done = stack.wait_terminal(&id).await;
    assert_eq!(done["state"], "succeeded");
    let (status, _) = stack.post(&format!("/v1/jobs/{id}/retry"), "reader").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Only the runner's sync reached Airbyte.
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        1
    );
    stack.stop().await;
}

async fn jobs_started_by_airbyte_are_listed(db: Db) {
    let stack = Harness::fast(db).start().await;
    let mut request = reliable_connections("analytics", 2, 2_000);
    request["start_syncs"] = json!(true);
    let added = stack.add_connections(request).await;
    assert_eq!(added.job_ids.len(), 2);
    for (connection, airbyte_id) in added.connection_ids.iter().zip(&added.job_ids) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let seen = loop {
            if let Some(job) = stack.jobs(Some(connection)).await.pop() {
                break job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Airbyte's job on {connection} never appeared"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(seen["channel"], "airbyte", "{seen:#}");
        assert_eq!(seen["requested_by"], "airbyte", "{seen:#}");
        assert_eq!(seen["airbyte_job_id"], json!(airbyte_id), "{seen:#}");
        let done = stack.wait_terminal(&id_of(&seen)).await;
        assert_eq!(done["state"], "succeeded", "{done:#}");
    }
    let everything = stack.jobs(None).await;
    assert_eq!(
        everything
            .iter()
            .filter(|j| j["channel"] == "airbyte")
            .count(),
        2,
        "{everything:#?}"
    );
    // Airlock started nothing itself.
    assert_eq!(stack.sim.sim.counters().total_jobs_created(), 0);
    stack.stop().await;
}

/// A dispatcher whose lease is taken over while its `POST /jobs` waits
/// (Airbyte slow to answer; the client would go on retrying a 429 or a
/// refused connection) gives the start up at its next heartbeat, before
/// Airbyte made anything: a request of its sent after the new owner found
/// nothing to adopt would start a second sync.
async fn a_start_is_given_up_once_its_lease_is_lost(db: Db) {
    use airbyte_sim::{FaultSpec, Faults};
    use airlock_domain::clock::SystemClock;
    use airlock_domain::jobs::{Channel, JobState, JobType, JobsConfig, NewJob};
    use airlock_services::queue::dispatcher::{Dispatcher, Outcome};
    use airlock_store::Store;
    use airlock_store::jobs::Inserted;

    let sim = airbyte_sim::spawn(SimConfig::default())
        .await
        .expect("the simulator starts");
    let connection = support::sim_add_connections(
        &support::http_client(),
        &sim,
        reliable_connections("analytics", 1, 3_600),
    )
    .await
    .connection_ids
    .remove(0);
    // Airbyte answers POST /jobs after 20 s (the client waits 30 s).
    sim.sim.set_faults(Faults::default().with_route(
        "POST /jobs",
        FaultSpec {
            latency_ms: 20_000,
            ..FaultSpec::default()
        },
    ));
    let store = Store::connect(&support::fresh_database(db).await)
        .await
        .expect("store");
    let config = JobsConfig {
        lease_secs: 5,
        ..JobsConfig::default()
    };
    let clock = std::sync::Arc::new(SystemClock);
    let dispatcher = Dispatcher::new(
        store.clone(),
        support::airbyte_client(&sim),
        config,
        clock,
        "d1".to_owned(),
    );
    let new = NewJob {
        connection_id: connection.clone(),
        workspace_id: String::new(),
        job_type: JobType::Sync,
        max_attempts: 3,
        requested_by: "alice".to_owned(),
        requester: json!({"sub": "alice"}),
        channel: Channel::Api,
        retry_of: None,
        trace_parent: None,
    };
    let now = airlock_store::now_ms();
    let entry = airlock_domain::audit::Entry::default();
    let Inserted::New { job, .. } = store
        .insert_job(&new, None, now, &entry)
        .await
        .expect("insert")
    else {
        panic!("a new job");
    };
    let dispatching = tokio::spawn(async move { dispatcher.dispatch_one().await });
    while store
        .get_job(&job.id)
        .await
        .expect("read")
        .expect("the job")
        .state
        != JobState::Starting
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another dispatcher takes the job over (as after a lease that ran out).
    let now = airlock_store::now_ms();
    assert_eq!(store.release_leases("d1", now).await.expect("release"), 1);
    let taken = store
        .claim_job("d2", 60_000, now)
        .await
        .expect("claim")
        .expect("the job");
    assert_eq!(taken.job.id, job.id);
    let (_, outcome) = dispatching
        .await
        .expect("join")
        .expect("the database answers")
        .expect("a job");
    assert_eq!(outcome, Outcome::LostLease);
    assert_eq!(
        sim.sim.counters().jobs_created_for(uuid(&connection)),
        0,
        "the POST was given up before Airbyte made a job"
    );
    let held = store
        .get_job(&job.id)
        .await
        .expect("read")
        .expect("the job");
    assert_eq!(held.lease_owner.as_deref(), Some("d2"));
}

/// A job a dispatcher was starting when its cancel came, and whose start
/// was then put back in the queue (Airbyte's answer lost): the next
/// dispatcher settles it, adopting and cancelling the sync the lost answer
/// started, or cancelling the job when there is none, instead of leaving
/// it queued forever in front of the connection's other jobs.
async fn a_cancel_during_an_unsettled_start_is_carried_out(db: Db) {
    use airlock_domain::clock::SystemClock;
    use airlock_domain::jobs::{Channel, JobState, JobType, JobsConfig, NewJob};
    use airlock_services::connections::Catalog;
    use airlock_services::queue::dispatcher::{Dispatcher, Outcome};
    use airlock_services::queue::tracker::Tracker;
    use airlock_store::Store;
    use airlock_store::jobs::{Inserted, Requeue};

    // No Airlock process here: this test is the only dispatcher.
    let sim = airbyte_sim::spawn(SimConfig::default())
        .await
        .expect("the simulator starts");
    let connections = support::sim_add_connections(
        &support::http_client(),
        &sim,
        reliable_connections("analytics", 2, 3_600),
    )
    .await
    .connection_ids;
    let store = Store::connect(&support::fresh_database(db).await)
        .await
        .expect("store");
    let airbyte = support::airbyte_client(&sim);
    let clock = std::sync::Arc::new(SystemClock);
    let catalog = std::sync::Arc::new(Catalog::new(
        airbyte.clone(),
        store.clone(),
        Default::default(),
        clock.clone(),
    ));
    catalog.refresh().await.expect("catalog");
    let dispatcher = Dispatcher::new(
        store.clone(),
        airbyte.clone(),
        JobsConfig::default(),
        clock.clone(),
        "test-dispatcher".to_owned(),
    );
    let mut tracker = Tracker::new(
        store.clone(),
        airbyte.clone(),
        JobsConfig::default(),
        clock,
        catalog,
    );
    let request = airlock_domain::audit::Entry {
        channel: "api".to_owned(),
        action: "jobs.sync".to_owned(),
        decision: "allow".to_owned(),
        ..airlock_domain::audit::Entry::default()
    };
    for (connection, lost_answer_started_a_sync) in connections.iter().zip([true, false]) {
        let new = NewJob {
            connection_id: connection.clone(),
            workspace_id: String::new(),
            job_type: JobType::Sync,
            max_attempts: 3,
            requested_by: "runner".to_owned(),
            requester: json!({"subject": "runner"}),
            channel: Channel::Api,
            retry_of: None,
            trace_parent: None,
        };
        let now = airlock_store::now_ms();
        let mut ids = Vec::new();
        // The job, and another one waiting behind it.
        for _ in 0..2 {
            let Inserted::New { job, .. } = store
                .insert_job(&new, None, now, &request)
                .await
                .expect("insert")
            else {
                panic!("a new job");
            };
            ids.push(job.id);
        }
        let (job, next) = (&ids[0], &ids[1]);
        // A dispatcher claimed the job and sent `POST /jobs`, ...
        let claimed = store
            .claim_job("lost", 60_000, now)
            .await
            .expect("claim")
            .expect("the job");
        assert_eq!(&claimed.job.id, job);
        let started_by_lost_answer = if lost_answer_started_a_sync {
            let created = airbyte
                .create_job(uuid(connection), airbyte_client::JobType::Sync)
                .await
                .expect("Airbyte starts the sync");
            Some(created.job_id)
        } else {
            None
        };
        // ... the cancel came meanwhile, and the answer was lost: back to
        // the queue, to be reconciled.
        let asked = store
            .request_cancel(job, now, &request)
            .await
            .expect("cancel")
            .expect("the job");
        assert!(asked.cancel_requested);
        let requeue = Requeue {
            run_after: now,
            count_attempt: false,
            error: "Airbyte's answer was lost",
            start_may_exist: true,
        };
        assert!(
            store
                .requeue(job, Some("lost"), &requeue, now)
                .await
                .expect("requeue")
        );
        // A queued job whose start may exist is not cancelled on the spot
        // (that would leave the sync it may have started running).
        let asked = store
            .request_cancel(job, now, &request)
            .await
            .expect("cancel")
            .expect("the job");
        assert_eq!(asked.state, JobState::Queued);

        let (dispatched, outcome) = dispatcher
            .dispatch_one()
            .await
            .expect("the database answers")
            .expect("the job is settled, not left in the queue");
        assert_eq!(&dispatched.id, job);
        match started_by_lost_answer {
            Some(airbyte_job_id) => {
                assert_eq!(
                    outcome,
                    Outcome::Started {
                        airbyte_job_id,
                        adopted: true
                    }
                );
                // The tracker delivers the cancel to Airbyte.
                tracker.pass().await.expect("a pass");
            }
            None => assert_eq!(outcome, Outcome::Cancelled),
        }
        let done = store.get_job(job).await.expect("read").expect("the job");
        assert_eq!(done.state, JobState::Cancelled, "{done:?}");
        assert_eq!(done.airbyte_job_id, started_by_lost_answer);
        // The job behind it starts.
        let (dispatched, outcome) = dispatcher
            .dispatch_one()
            .await
            .expect("the database answers")
            .expect("the next job");
        assert_eq!(&dispatched.id, next);
        assert!(
            matches!(outcome, Outcome::Started { adopted: false, .. }),
            "{outcome:?}"
        );
    }
    let counters = sim.sim.counters();
    assert_eq!(counters.jobs_cancelled, 1);
    // One sync for each job behind, and the one the lost answer started.
    assert_eq!(counters.total_jobs_created(), 3);
    sim.shutdown().await;
}

both_backends!(
    a_sync_is_tracked_to_success,
    a_failing_sync_is_retried_with_backoff_then_fails,
    cancelling_a_running_job_cancels_it_in_airbyte,
    idempotency_keys_replay_or_refuse,
    if_running_queues_attaches_or_rejects,
    wait_holds_the_answer_until_the_job_ends,
    callers_need_a_token_and_the_permission,
    jobs_started_by_airbyte_are_listed,
    a_cancel_during_an_unsettled_start_is_carried_out,
    a_start_is_given_up_once_its_lease_is_lost,
);
