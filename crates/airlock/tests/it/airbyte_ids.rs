//! One row per Airbyte job, whoever records it first: the tracker (a job
//! Airbyte started by itself, or one it sees before the dispatcher records
//! its answer), the dispatcher, another replica's tracker. On both
//! backends, through the store, with each interleaving made in turn.

use airlock_domain::jobs::{Channel, JobState, JobType, NewJob};
use airlock_store::Store;
use airlock_store::audit::AuditFilter;
use airlock_store::jobs::{AirbyteReport, Inserted, JobFilter};

use crate::support::{Db, both_backends, fresh_database, postgres_admin_url};

const CONNECTION: &str = "c1";

fn report(airbyte_job_id: i64, state: JobState) -> AirbyteReport<'static> {
    AirbyteReport {
        airbyte_job_id,
        state,
        rows_synced: None,
        bytes_synced: None,
        duration: None,
    }
}

fn all() -> JobFilter {
    JobFilter {
        limit: 100,
        ..JobFilter::default()
    }
}

/// A trigger on [`CONNECTION`], claimed by `owner`: the job, starting.
async fn claimed(store: &Store, owner: &str, now: i64) -> airlock_domain::jobs::Job {
    let new = NewJob {
        connection_id: CONNECTION.to_owned(),
        workspace_id: "w1".to_owned(),
        job_type: JobType::Sync,
        max_attempts: 3,
        requested_by: "alice".to_owned(),
        requester: serde_json::json!({"sub": "alice"}),
        channel: Channel::Api,
        retry_of: None,
        trace_parent: None,
    };
    let entry = airlock_domain::audit::Entry::default();
    let Inserted::New { job, .. } = store
        .insert_job(&new, None, now, &entry)
        .await
        .expect("insert")
    else {
        panic!("a new job");
    };
    let claim = store
        .claim_job(owner, 60_000, now)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(claim.job.id, job.id);
    claim.job
}

/// The tracker records what the dispatcher recorded a moment before (or
/// what another replica's tracker records at the same time): nothing is
/// recorded twice, and no statement fails in the database, which is what
/// Postgres logged as a unique violation on `jobs_airbyte_job`.
async fn the_tracker_never_records_an_airbyte_job_twice_nor_fails_on_it(kind: Db) {
    let url = fresh_database(kind).await;
    let store = Store::connect(&url).await.expect("store");
    let job = claimed(&store, "d1", 1_000).await;
    assert!(
        store
            .mark_started(&job.id, "d1", 42, JobState::Running, 1_001)
            .await
            .expect("started")
    );
    // The tracker's pass read the connection's jobs before that commit.
    let seen = report(42, JobState::Running);
    let again = store
        .insert_external_job(CONNECTION, "w1", JobType::Sync, &seen, 1_002)
        .await
        .expect("no error");
    assert_eq!(again, None, "the dispatcher's row stands");
    // Two trackers (an election's moment of overlap) on a job that ended.
    let ended = report(43, JobState::Succeeded);
    let racing = (0..8).map(|_| {
        let store = store.clone();
        async move {
            store
                .insert_external_job("c2", "w1", JobType::Sync, &ended, 1_003)
                .await
                .expect("no error")
        }
    });
    let recorded = futures_util::future::join_all(racing).await;
    assert_eq!(recorded.iter().flatten().count(), 1, "{recorded:?}");
    let rows = store.list_jobs(&all()).await.expect("jobs");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        store
            .get_job_by_airbyte_id(42)
            .await
            .expect("read")
            .map(|j| j.id),
        Some(job.id)
    );
    store.pool().close().await;
    if let Db::Postgres = kind {
        assert_eq!(rolled_back(&url).await, 0, "a statement failed in Postgres");
    }
}

/// Transactions of the database of `url` that ended in a rollback (a
/// statement that failed aborts its transaction), once every session of
/// it has ended and reported.
async fn rolled_back(url: &str) -> i64 {
    use sqlx::Connection;
    let name = url.rsplit('/').next().expect("a database name").to_owned();
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("Postgres");
    // Sessions report their counts as they end.
    for _ in 0..200 {
        let sessions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .expect("sessions");
        if sessions == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut admin)
        .await
        .expect("fresh statistics");
    sqlx::query_scalar("SELECT xact_rollback FROM pg_stat_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("statistics")
}

/// The Airbyte job a dispatcher started ended at once, and the tracker saw
/// it and recorded it as Airbyte's own before the dispatcher recorded its
/// answer (nothing active on the connection kept it out): the dispatcher's
/// job takes the row over instead of failing on the unique index, which
/// left it to start a second sync, and the tracker's row was the
/// "duplicate Airbyte job recorded as channel airbyte".
async fn the_dispatcher_takes_over_its_airbyte_job_recorded_by_the_tracker(kind: Db) {
    let store = Store::connect(&fresh_database(kind).await)
        .await
        .expect("store");
    let job = claimed(&store, "d1", 1_000).await;
    let recorded = store
        .insert_external_job(
            CONNECTION,
            "w1",
            JobType::Sync,
            &report(42, JobState::Succeeded),
            1_001,
        )
        .await
        .expect("recorded")
        .expect("a new row");
    assert_eq!(recorded.channel, Channel::Airbyte);
    assert!(
        store
            .mark_started(&job.id, "d1", 42, JobState::Running, 1_002)
            .await
            .expect("no unique violation")
    );
    let mine = store
        .get_job(&job.id)
        .await
        .expect("read")
        .expect("the job");
    assert_eq!(
        (mine.state, mine.airbyte_job_id),
        (JobState::Running, Some(42))
    );
    assert_eq!(store.get_job(&recorded.id).await.expect("read"), None);
    let rows = store.list_jobs(&all()).await.expect("jobs");
    assert_eq!(
        rows.iter().map(|j| &j.id).collect::<Vec<_>>(),
        vec![&job.id]
    );
    assert_eq!(
        store
            .job_of_airbyte_attempt(CONNECTION, 42)
            .await
            .expect("read"),
        Some(job.id.clone())
    );
    let takeover = store
        .audit_records(&AuditFilter {
            action: Some("job.takeover".to_owned()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert_eq!(takeover.len(), 1);
    assert_eq!(takeover[0].entry.job_id.as_deref(), Some(job.id.as_str()));
    assert_eq!(
        takeover[0].entry.detail.as_ref().expect("detail")["removed_job_id"],
        recorded.id.as_str()
    );
    // A job that lost its lease takes nothing over.
    let other = store
        .insert_external_job(
            "c9",
            "w1",
            JobType::Sync,
            &report(50, JobState::Succeeded),
            1_003,
        )
        .await
        .expect("recorded")
        .expect("a new row");
    assert!(
        store
            .mark_started(&job.id, "d1", 50, JobState::Running, 1_004)
            .await
            .is_ok_and(|held| !held),
        "the lease was released"
    );
    assert!(store.get_job(&other.id).await.expect("read").is_some());
}

both_backends!(
    the_tracker_never_records_an_airbyte_job_twice_nor_fails_on_it,
    the_dispatcher_takes_over_its_airbyte_job_recorded_by_the_tracker,
);
