//! The job store on both backends: idempotency, claiming with leases, one
//! active job per connection, the timeline.

use airlock_domain::jobs::{Channel, JobState, JobType, NewJob};
use airlock_store::Store;
use airlock_store::jobs::{IdempotencyKey, Inserted, JobChange, JobFilter, Requeue};

use crate::support::{Db, fresh_database};

fn new_job(connection: &str) -> NewJob {
    NewJob {
        connection_id: connection.to_owned(),
        workspace_id: "w1".to_owned(),
        job_type: JobType::Sync,
        max_attempts: 3,
        requested_by: "alice".to_owned(),
        requester: serde_json::json!({"sub": "alice"}),
        channel: Channel::Api,
        retry_of: None,
        trace_parent: None,
    }
}

fn key(principal: &str, key: &str, hash: &str) -> IdempotencyKey {
    IdempotencyKey {
        principal: principal.to_owned(),
        key: key.to_owned(),
        request_hash: hash.to_owned(),
    }
}

/// The audit record of the (test) request behind a change.
fn request() -> airlock_domain::audit::Entry {
    airlock_domain::audit::Entry {
        channel: "api".to_owned(),
        action: "jobs.sync".to_owned(),
        decision: "allow".to_owned(),
        ..airlock_domain::audit::Entry::default()
    }
}

/// A keyless trigger on `connection` at `at`: the new queued job.
async fn queue(store: &Store, connection: &str, at: i64) -> airlock_domain::jobs::Job {
    match store
        .insert_job(&new_job(connection), None, at, &request())
        .await
        .expect("insert")
    {
        Inserted::New { job, .. } => job,
        other => panic!("a new job: {other:?}"),
    }
}

async fn store(kind: Db) -> Store {
    Store::connect(&fresh_database(kind).await)
        .await
        .expect("store connects and migrates")
}

async fn idempotency_keys_return_the_same_job(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    let Inserted::New { job: first, .. } = store
        .insert_job(
            &new_job("c1"),
            Some(&key("alice", "k1", "h1")),
            now,
            &request(),
        )
        .await
        .expect("insert")
    else {
        panic!("first insert is new");
    };
    let again = store
        .insert_job(
            &new_job("c1"),
            Some(&key("alice", "k1", "h1")),
            now + 1,
            &request(),
        )
        .await
        .expect("insert");
    assert_eq!(again, Inserted::Existing(first.clone()));
    let reused = store
        .insert_job(
            &new_job("c1"),
            Some(&key("alice", "k1", "h2")),
            now + 2,
            &request(),
        )
        .await
        .expect("insert");
    assert_eq!(reused, Inserted::KeyReused);
    let other = store
        .insert_job(
            &new_job("c1"),
            Some(&key("bob", "k1", "h1")),
            now + 3,
            &request(),
        )
        .await
        .expect("insert");
    assert!(
        matches!(other, Inserted::New { ref job, .. } if job.id != first.id),
        "{other:?}"
    );
    // After 24 h the key is free again.
    let later = now + airlock_store::jobs::IDEMPOTENCY_TTL_MS + 1;
    let fresh = store
        .insert_job(
            &new_job("c1"),
            Some(&key("alice", "k1", "h9")),
            later,
            &request(),
        )
        .await
        .expect("insert");
    assert!(
        matches!(fresh, Inserted::New { ref job, .. } if job.id != first.id),
        "{fresh:?}"
    );
    let all = store
        .list_jobs(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 3, "exactly three jobs stored");
}

async fn claims_one_job_per_connection_in_order(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    let mut ids = Vec::new();
    // Only a job with nothing ahead of it on its connection is ready (worth
    // waking a dispatcher for).
    for (connection, expect_ready) in [("c1", true), ("c1", false), ("c2", true)] {
        let Inserted::New { job, ready } = store
            .insert_job(&new_job(connection), None, now, &request())
            .await
            .expect("insert")
        else {
            panic!("new");
        };
        assert_eq!(ready, expect_ready, "{connection}");
        ids.push(job.id);
    }
    let a = store
        .claim_job("d1", 60_000, now)
        .await
        .expect("claim")
        .expect("a job")
        .job;
    let b = store
        .claim_job("d2", 60_000, now)
        .await
        .expect("claim")
        .expect("a job")
        .job;
    assert_eq!(
        (a.id.clone(), b.id.clone()),
        (ids[0].clone(), ids[2].clone()),
        "oldest first, one per connection"
    );
    assert_eq!(a.state, JobState::Starting);
    assert!(
        store
            .claim_job("d3", 60_000, now)
            .await
            .expect("claim")
            .is_none(),
        "c1 is busy"
    );

    // The claim noted that a `POST /jobs` is going out.
    assert_eq!(a.start_requested_at, Some(now));
    // Airbyte accepts c1's first job; the second still waits behind it.
    assert!(
        store
            .mark_started(&a.id, "d1", 77, JobState::Pending, now)
            .await
            .expect("started")
    );
    assert!(
        store
            .claim_job("d3", 60_000, now)
            .await
            .expect("claim")
            .is_none()
    );
    let found = store
        .get_job_by_airbyte_id(77)
        .await
        .expect("get")
        .expect("found");
    assert_eq!(
        (found.id, found.attempts, found.state),
        (a.id.clone(), 1, JobState::Pending)
    );

    // It ends; the next job of c1 is free to go.
    assert!(
        store
            .update_job(
                &a.id,
                &JobChange {
                    state: JobState::Succeeded,
                    rows_synced: Some(10),
                    bytes_synced: Some(100),
                    duration: Some("PT5S"),
                    error: None
                },
                now + 5
            )
            .await
            .expect("update")
    );
    let c = store
        .claim_job("d3", 60_000, now + 5)
        .await
        .expect("claim")
        .expect("next")
        .job;
    assert_eq!(c.id, ids[1]);
    let events: Vec<JobState> = store
        .job_events(&a.id, 0)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(
        events,
        [JobState::Queued, JobState::Pending, JobState::Succeeded]
    );
    // A terminal state is final.
    assert!(
        !store
            .update_job(&a.id, &JobChange::to(JobState::Failed), now + 6)
            .await
            .expect("update")
    );
}

async fn an_expired_lease_is_taken_over_and_must_reconcile(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    store
        .insert_job(&new_job("c1"), None, now, &request())
        .await
        .expect("insert");
    let job = store
        .claim_job("dead", 10_000, now)
        .await
        .expect("claim")
        .expect("job")
        .job;
    assert!(
        store
            .claim_job("d2", 10_000, now + 5_000)
            .await
            .expect("claim")
            .is_none(),
        "lease still held"
    );
    assert!(
        store
            .heartbeat(&job.id, "dead", 10_000, now + 5_000)
            .await
            .expect("beat")
    );
    assert!(
        store
            .claim_job("d2", 10_000, now + 12_000)
            .await
            .expect("claim")
            .is_none(),
        "heartbeat extended it"
    );
    let taken = store
        .claim_job("d2", 10_000, now + 16_000)
        .await
        .expect("claim")
        .expect("taken over");
    assert_eq!(taken.job.id, job.id);
    assert_eq!(
        (taken.earlier_request, taken.job.start_requested_at),
        (Some(now), Some(now)),
        "the new owner knows a POST may have gone out, and keeps its time"
    );
    assert!(
        !store
            .heartbeat(&job.id, "dead", 10_000, now + 16_000)
            .await
            .expect("beat"),
        "the old owner lost it"
    );
    assert!(
        !store
            .mark_started(&job.id, "dead", 5, JobState::Pending, now + 16_000)
            .await
            .expect("stale owner")
    );

    // Ambiguous: back to the queue, remembering that a job may exist.
    let requeue = Requeue {
        run_after: now + 20_000,
        count_attempt: false,
        error: "lost",
        start_may_exist: true,
    };
    assert!(
        store
            .requeue(&job.id, Some("d2"), &requeue, now + 16_000)
            .await
            .expect("requeue")
    );
    assert!(
        store
            .claim_job("d3", 10_000, now + 19_000)
            .await
            .expect("claim")
            .is_none(),
        "not before run_after"
    );
    let again = store
        .claim_job("d3", 10_000, now + 20_000)
        .await
        .expect("claim")
        .expect("again");
    assert_eq!(again.earlier_request, Some(now));
}

async fn cancelling_a_queued_job_is_immediate(kind: Db) {
    let store = store(kind).await;
    let Inserted::New { job, .. } = store
        .insert_job(&new_job("c1"), None, 1, &request())
        .await
        .expect("insert")
    else {
        panic!("new");
    };
    let cancelled = store
        .request_cancel(&job.id, 2, &request())
        .await
        .expect("cancel")
        .expect("job");
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.finished_at, Some(2));
    assert!(
        store
            .claim_job("d", 1_000, 3)
            .await
            .expect("claim")
            .is_none()
    );
}

async fn concurrent_claims_never_share_a_connection(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    for i in 0..40 {
        store
            .insert_job(&new_job(&format!("c{}", i % 8)), None, now, &request())
            .await
            .expect("insert");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for d in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                if let Some(claim) = store
                    .claim_job(&format!("d{d}"), 60_000, now)
                    .await
                    .expect("claim")
                {
                    got.push(claim.job.connection_id);
                }
            }
            got
        });
    }
    let mut claimed = Vec::new();
    while let Some(result) = tasks.join_next().await {
        claimed.extend(result.expect("task"));
    }
    claimed.sort();
    let expected: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    assert_eq!(
        claimed, expected,
        "exactly one job per connection was claimed"
    );
}

/// Triggers that arrive together share a transaction (group commit): the
/// outcome of each must be what it would have been alone.
async fn concurrent_triggers_keep_their_own_outcomes(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    // 100 keys, each sent twice at once (same request), spread over 10
    // connections, plus 20 keyless triggers and one reused key.
    let mut calls = Vec::new();
    for i in 0..100 {
        for _ in 0..2 {
            calls.push((
                format!("c{}", i % 10),
                Some(key("alice", &format!("k{i}"), "h")),
            ));
        }
    }
    for i in 0..20 {
        calls.push((format!("c{}", i % 10), None));
    }
    calls.push(("c0".to_owned(), Some(key("alice", "k0", "different"))));
    let outcomes = futures_util::future::join_all(calls.iter().map(|(connection, key)| {
        let store = store.clone();
        async move {
            store
                .insert_job(&new_job(connection), key.as_ref(), now, &request())
                .await
                .expect("insert")
        }
    }))
    .await;

    let mut by_key: std::collections::HashMap<String, Vec<String>> = Default::default();
    let mut ready = std::collections::HashMap::<String, usize>::new();
    let mut reused = 0;
    for ((_, key), outcome) in calls.iter().zip(&outcomes) {
        match outcome {
            Inserted::New { job, ready: r } => {
                if *r {
                    *ready.entry(job.connection_id.clone()).or_default() += 1;
                }
                if let Some(key) = key {
                    by_key
                        .entry(key.key.clone())
                        .or_default()
                        .push(job.id.to_string());
                }
            }
            Inserted::Existing(job) => {
                let key = key
                    .as_ref()
                    .expect("only keyed triggers find an existing job");
                by_key
                    .entry(key.key.clone())
                    .or_default()
                    .push(job.id.to_string());
            }
            Inserted::KeyReused => reused += 1,
        }
    }
    assert_eq!(reused, 1, "the key sent with another request is refused");
    assert_eq!(by_key.len(), 100);
    for (key, ids) in &by_key {
        assert!(
            ids.len() >= 2 && ids.iter().all(|id| *id == ids[0]),
            "{key}: {ids:?}"
        );
    }
    // One job per key plus the keyless ones; exactly the first of each
    // connection was ready.
    let all = store
        .list_jobs(&JobFilter {
            limit: 1000,
            ..JobFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 120);
    assert_eq!(ready.len(), 10, "{ready:?}");
    assert!(ready.values().all(|n| *n == 1), "{ready:?}");
    // The audit chain holds one record per new job, and verifies.
    let report = airlock_store::audit::verify_store(&store, &[])
        .await
        .expect("verify");
    assert!(report.broken.is_none(), "{report:?}");
    assert_eq!(report.records, 120);
}

/// `get_job` (on SQLite, the inline reader's own connections; on Postgres,
/// the pool) sees every change as soon as it is committed, and reads a row
/// exactly as the pool's listing decodes it, whichever columns are set.
async fn a_job_read_sees_each_change_at_once(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    let job = queue(&store, "c1", now).await;
    let read = |label: &'static str| {
        let store = store.clone();
        let id = job.id.clone();
        async move {
            let got = store.get_job(&id).await.expect("get").expect("found");
            let listed = store
                .list_jobs(&JobFilter {
                    limit: 10,
                    ..JobFilter::default()
                })
                .await
                .expect("list")
                .into_iter()
                .find(|j| j.id == id)
                .expect("listed");
            assert_eq!(got, listed, "{label}: the read and the listing agree");
            got
        }
    };
    assert_eq!(read("queued").await.state, JobState::Queued);
    let claimed = store
        .claim_job("d1", 60_000, now)
        .await
        .expect("claim")
        .expect("a job")
        .job;
    let starting = read("claimed").await;
    assert_eq!(
        (starting.state, starting.lease_owner.as_deref()),
        (JobState::Starting, Some("d1"))
    );
    assert_eq!(starting, claimed);
    assert_eq!(
        starting.start_requested_at,
        Some(now),
        "the claim notes the start"
    );
    assert!(
        store
            .mark_started(&job.id, "d1", 42, JobState::Running, now + 2)
            .await
            .expect("started")
    );
    let running = read("running").await;
    assert_eq!(
        (running.state, running.airbyte_job_id, running.lease_owner),
        (JobState::Running, Some(42), None)
    );
    for rows in [10, 20] {
        store
            .update_progress(
                &job.id,
                &airlock_store::jobs::AirbyteReport {
                    airbyte_job_id: 42,
                    state: JobState::Running,
                    rows_synced: Some(rows),
                    bytes_synced: Some(rows * 100),
                    duration: Some("PT3S"),
                },
                now + 3,
            )
            .await
            .expect("progress");
        assert_eq!(
            read("progress").await.rows_synced,
            Some(rows),
            "no stale read"
        );
    }
    assert!(
        store
            .update_job(
                &job.id,
                &JobChange {
                    state: JobState::Failed,
                    rows_synced: Some(30),
                    bytes_synced: Some(3000),
                    duration: Some("PT9S"),
                    error: Some("boom")
                },
                now + 9
            )
            .await
            .expect("update")
    );
    let failed = read("failed").await;
    assert_eq!(
        (failed.state, failed.error.as_deref(), failed.finished_at),
        (JobState::Failed, Some("boom"), Some(now + 9))
    );
    let missing = airlock_domain::jobs::JobId::generate();
    assert!(store.get_job(&missing).await.expect("get").is_none());
}

/// A ready job behind more than a page of older ones that all wait on a
/// busy connection is still found (the claim's quick look at the oldest
/// jobs finds nothing; the walk of every connection does), and the oldest
/// ready one goes first.
async fn a_claim_finds_a_ready_job_behind_many_waiting_ones(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    let first = queue(&store, "busy", now).await;
    let claimed = store
        .claim_job("d1", 60_000, now)
        .await
        .expect("claim")
        .expect("a job")
        .job;
    assert_eq!(claimed.id, first.id);
    for n in 0..100 {
        queue(&store, "busy", now + 1 + n).await;
    }
    assert!(
        store
            .claim_job("d2", 60_000, now + 200)
            .await
            .expect("claim")
            .is_none(),
        "everything waits behind the busy connection"
    );
    let later = queue(&store, "idle-b", now + 300).await;
    let earlier = queue(&store, "idle-a", now + 200).await;
    let next = store
        .claim_job("d2", 60_000, now + 400)
        .await
        .expect("claim")
        .expect("the ready job")
        .job;
    assert_eq!(next.id, earlier.id, "the oldest ready job first");
    let then = store
        .claim_job("d3", 60_000, now + 400)
        .await
        .expect("claim")
        .expect("the other ready job")
        .job;
    assert_eq!(then.id, later.id);
}

async fn a_claim_notes_the_start_unless_a_cancel_was_asked(kind: Db) {
    let store = store(kind).await;
    let now = 1_000_000;
    let job = queue(&store, "c1", now).await;
    let first = store
        .claim_job("d1", 60_000, now)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(
        (first.job.start_requested_at, first.earlier_request),
        (Some(now), None)
    );
    // A cancel arrives while it starts, and Airbyte refuses the start (a
    // sync of someone else's is running): back to the queue, with no POST
    // that could have started anything.
    let starting = store
        .request_cancel(&job.id, now + 1, &request())
        .await
        .expect("cancel")
        .expect("job");
    assert_eq!(
        (starting.state, starting.cancel_requested),
        (JobState::Starting, true)
    );
    let requeue = Requeue {
        run_after: now + 2,
        count_attempt: false,
        error: "busy",
        start_may_exist: false,
    };
    assert!(
        store
            .requeue(&job.id, Some("d1"), &requeue, now + 1)
            .await
            .expect("requeue")
    );
    // Its next claim is to settle the cancel: no POST goes out, so none is noted.
    let second = store
        .claim_job("d2", 60_000, now + 2)
        .await
        .expect("claim")
        .expect("the job");
    assert_eq!(
        (
            second.job.id,
            second.job.cancel_requested,
            second.job.start_requested_at,
            second.earlier_request
        ),
        (job.id, true, None, None)
    );
}

crate::support::both_backends!(
    a_claim_notes_the_start_unless_a_cancel_was_asked,
    idempotency_keys_return_the_same_job,
    claims_one_job_per_connection_in_order,
    an_expired_lease_is_taken_over_and_must_reconcile,
    cancelling_a_queued_job_is_immediate,
    concurrent_claims_never_share_a_connection,
    concurrent_triggers_keep_their_own_outcomes,
    a_job_read_sees_each_change_at_once,
    a_claim_finds_a_ready_job_behind_many_waiting_ones,
);
