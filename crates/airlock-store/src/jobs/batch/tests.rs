//! The group-commit writer when a commit's answer is lost, on SQLite and
//! Postgres: faults injected through [`super::faults`].

use std::sync::atomic::Ordering;

use sqlx::Connection;

use crate::Store;
use crate::jobs::{IdempotencyKey, Inserted};
use airlock_domain::audit;
use airlock_domain::jobs::model::{Channel, Job, JobId, JobType, NewJob};

#[derive(Debug, Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// A store on a fresh database of `kind`. Postgres is the machine's (or
/// `AIRLOCK_TEST_POSTGRES`); a missing one fails the test.
async fn store(kind: Db) -> Store {
    let name = format!(
        "airlock_test_{}",
        JobId::generate().as_str().replace('-', "")
    );
    let url = match kind {
        Db::Sqlite => {
            let dir = std::env::temp_dir().join("airlock-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}", dir.join(format!("{name}.db")).display())
        }
        Db::Postgres => {
            let admin = std::env::var("AIRLOCK_TEST_POSTGRES")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("Postgres is required for these tests ({admin}): {e}"));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            format!("{base}/{name}")
        }
    };
    Store::connect(&url).await.expect("store")
}

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

fn key(name: &str) -> IdempotencyKey {
    IdempotencyKey {
        principal: "issuer|alice".to_owned(),
        key: name.to_owned(),
        request_hash: "h".to_owned(),
    }
}

async fn trigger(
    store: &Store,
    connection: &str,
    key: Option<&IdempotencyKey>,
) -> Result<Inserted, crate::StoreError> {
    store
        .insert_job(&new_job(connection), key, 1_000, &audit::Entry::default())
        .await
}

fn new(inserted: Inserted) -> Job {
    match inserted {
        Inserted::New { job, .. } => job,
        other => panic!("a new job: {other:?}"),
    }
}

/// Every job id stored, sorted.
async fn stored_ids(store: &Store) -> Vec<String> {
    let mut ids: Vec<String> = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(store.pool())
        .await
        .expect("jobs");
    ids.sort();
    ids
}

/// The commit happened and its answer was lost: every trigger of the batch
/// (however the writer grouped them) is answered with its job, stored
/// once, and none is stored twice.
async fn a_commit_whose_answer_is_lost_answers_the_jobs_it_stored(kind: Db) {
    let store = store(kind).await;
    store.inserts.faults.lose_answer.store(1, Ordering::SeqCst);
    let triggers = (0..8).map(|n| {
        let store = store.clone();
        async move { trigger(&store, &format!("c{n}"), None).await }
    });
    let answers = futures_util::future::join_all(triggers).await;
    let mut answered: Vec<String> = answers
        .into_iter()
        .map(|answer| new(answer.expect("no 503 for a stored job")).id.to_string())
        .collect();
    answered.sort();
    assert_eq!(
        store.inserts.faults.lose_answer.load(Ordering::SeqCst),
        0,
        "the fault ran"
    );
    assert_eq!(stored_ids(&store).await, answered);
}

/// The same with an idempotency key: the answer is the job, and the
/// client's retry with the key returns that job, not a second one.
async fn a_keyed_trigger_whose_commit_answer_is_lost_is_the_job_its_retry_finds(kind: Db) {
    let store = store(kind).await;
    store.inserts.faults.lose_answer.store(1, Ordering::SeqCst);
    let job = new(trigger(&store, "c1", Some(&key("k1")))
        .await
        .expect("the job"));
    let again = trigger(&store, "c1", Some(&key("k1")))
        .await
        .expect("the retry");
    assert_eq!(again, Inserted::Existing(job.clone()));
    assert_eq!(stored_ids(&store).await, vec![job.id.to_string()]);
}

/// The commit did not happen: the caller hears 503 and nothing is stored,
/// so its retry stores the job once.
async fn a_commit_that_did_not_happen_answers_503_and_stores_nothing(kind: Db) {
    let store = store(kind).await;
    store.inserts.faults.roll_back.store(1, Ordering::SeqCst);
    let error = trigger(&store, "c1", Some(&key("k1")))
        .await
        .expect_err("not stored");
    assert!(error.is_unavailable(), "{error}");
    assert!(stored_ids(&store).await.is_empty());
    let job = new(trigger(&store, "c1", Some(&key("k1")))
        .await
        .expect("stored"));
    assert_eq!(stored_ids(&store).await, vec![job.id.to_string()]);
}

/// The database is away for a moment after the lost answer: the writer
/// asks again until it answers.
async fn the_writer_asks_again_while_the_database_is_away(kind: Db) {
    let store = store(kind).await;
    store.inserts.faults.lose_answer.store(1, Ordering::SeqCst);
    store.inserts.faults.fail_looks.store(3, Ordering::SeqCst);
    let job = new(trigger(&store, "c1", None)
        .await
        .expect("no 503 for a stored job"));
    assert_eq!(
        store.inserts.faults.fail_looks.load(Ordering::SeqCst),
        0,
        "the looks failed"
    );
    assert_eq!(stored_ids(&store).await, vec![job.id.to_string()]);
}

/// The database stays away: the caller hears 503 (it cannot be told
/// otherwise), and its retry with the key finds the job that was stored.
async fn when_the_database_cannot_say_the_retry_with_the_key_finds_the_job(kind: Db) {
    let store = store(kind).await;
    store.inserts.faults.lose_answer.store(1, Ordering::SeqCst);
    store
        .inserts
        .faults
        .fail_looks
        .store(usize::MAX, Ordering::SeqCst);
    let error = trigger(&store, "c1", Some(&key("k1")))
        .await
        .expect_err("unknown");
    assert!(error.is_unavailable(), "{error}");
    store.inserts.faults.fail_looks.store(0, Ordering::SeqCst);
    let stored = stored_ids(&store).await;
    assert_eq!(stored.len(), 1);
    let again = trigger(&store, "c1", Some(&key("k1")))
        .await
        .expect("the retry");
    match again {
        Inserted::Existing(job) => assert_eq!(job.id.to_string(), stored[0]),
        other => panic!("the stored job: {other:?}"),
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Db::Postgres).await;
                }
            )*
        }
    };
}

both_backends!(
    a_commit_whose_answer_is_lost_answers_the_jobs_it_stored,
    a_keyed_trigger_whose_commit_answer_is_lost_is_the_job_its_retry_finds,
    a_commit_that_did_not_happen_answers_503_and_stores_nothing,
    the_writer_asks_again_while_the_database_is_away,
    when_the_database_cannot_say_the_retry_with_the_key_finds_the_job,
);
