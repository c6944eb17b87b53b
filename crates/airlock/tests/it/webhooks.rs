//! Webhooks on both backends: a real receiver checks the signature with its
//! own HMAC, failures are retried with a record per attempt, and restarts or
//! concurrent deliverers neither lose nor repeat an event.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airlock_domain::clock::{Clock, ManualClock, SharedClock};
use airlock_domain::jobs::{Channel, Job, JobState, JobType, NewJob};
use airlock_services::webhooks::{Deliverer, IdsOnly, WebhookConfig};
use airlock_store::Store;
use airlock_store::jobs::{Inserted, JobChange};
use airlock_store::webhooks::{list_attempts, list_deliveries};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::harness::{Harness, secret_env};
use crate::support::{Db, both_backends, fresh_database, http_client};

pub(crate) const SECRET: &str = "whsec-test-3f9a";

/// A request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// An HTTP receiver on port 0 that records what it gets and answers 500
/// to the first `fail_first` requests.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    pub(crate) async fn start(fail_first: usize) -> Self {
        let received = Arc::new(Mutex::new(Vec::<Received>::new()));
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let log = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let log = Arc::clone(&log);
                let failures = Arc::clone(&failures);
                async move {
                    log.lock().expect("lock").push(Received { headers, body });
                    let failing = failures
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if failing {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            url,
            received,
            _stop: stop,
        }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

/// The receiver's side of the signature: recomputes the HMAC with the
/// shared secret (independently of Airlock's code) and compares.
pub(crate) fn assert_signed(request: &Received, secret: &str) -> i64 {
    use aws_lc_rs::hmac;
    let header = request
        .headers
        .get("airlock-signature")
        .and_then(|v| v.to_str().ok())
        .expect("an Airlock-Signature header");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("malformed signature header {header}"));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{t}.{}", request.body).as_bytes());
    let expected: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(v1, expected, "the signature matches the body");
    t.parse().expect("t is unix seconds")
}

pub(crate) fn header<'a>(request: &'a Received, name: &str) -> &'a str {
    request
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a {name} header"))
}

pub(crate) fn webhook(url: &str, extra: &str) -> WebhookConfig {
    toml::from_str(&format!("url = \"{url}\"\nsecret = \"{SECRET}\"\n{extra}")).expect("webhook")
}

pub(crate) async fn store(kind: Db) -> Store {
    Store::connect(&fresh_database(kind).await)
        .await
        .expect("store connects and migrates")
}

pub(crate) fn deliverer(
    store: &Store,
    clock: &ManualClock,
    webhooks: &[WebhookConfig],
) -> Deliverer {
    let clock: SharedClock = Arc::new(clock.clone());
    Deliverer::new(webhooks, &|_| None, store.clone(), clock, Arc::new(IdsOnly)).expect("deliverer")
}

/// A job on `connection` taken through queued → starting → running → `end`.
pub(crate) async fn run_job(store: &Store, connection: &str, end: JobState, now: i64) -> Job {
    let new = NewJob {
        connection_id: connection.to_owned(),
        workspace_id: "w1".to_owned(),
        job_type: JobType::Sync,
        max_attempts: 3,
        requested_by: "alice".to_owned(),
        requester: serde_json::json!({"sub": "alice"}),
        channel: Channel::Api,
        retry_of: None,
        trace_parent: None,
    };
    let Inserted::New { job, .. } = store
        .insert_job(
            &new,
            None,
            now,
            &airlock_domain::audit::Entry {
                channel: "api".to_owned(),
                action: "jobs.sync".to_owned(),
                decision: "allow".to_owned(),
                ..airlock_domain::audit::Entry::default()
            },
        )
        .await
        .expect("insert")
    else {
        panic!("a new job");
    };
    let claimed = store
        .claim_job("test", 60_000, now)
        .await
        .expect("claim")
        .expect("the job is claimable")
        .job;
    assert_eq!(claimed.id, job.id);
    static AIRBYTE_IDS: AtomicI64 = AtomicI64::new(1);
    let airbyte_id = AIRBYTE_IDS.fetch_add(1, Ordering::SeqCst);
    assert!(
        store
            .mark_started(&job.id, "test", airbyte_id, JobState::Pending, now)
            .await
            .expect("started")
    );
    for state in [JobState::Running, end] {
        let error = (state == JobState::Failed).then_some("it broke");
        assert!(
            store
                .update_job(
                    &job.id,
                    &JobChange {
                        state,
                        rows_synced: Some(10),
                        bytes_synced: Some(100),
                        duration: None,
                        error
                    },
                    now
                )
                .await
                .expect("update")
        );
    }
    store.get_job(&job.id).await.expect("get").expect("job")
}

async fn a_signed_terminal_event_reaches_the_receiver(kind: Db) {
    let store = store(kind).await;
    let receiver = Receiver::start(0).await;
    let clock = ManualClock::new(1_700_000_000_000);
    let mut deliverer = deliverer(&store, &clock, &[webhook(&receiver.url, "")]);
    let job = run_job(&store, "c1", JobState::Succeeded, clock.now_ms()).await;

    let report = deliverer.pass().await.expect("pass");
    assert_eq!((report.enqueued, report.delivered), (1, 1), "{report:?}");
    let received = receiver.received();
    assert_eq!(received.len(), 1, "only the terminal event, by default");
    let request = &received[0];
    let t = assert_signed(request, SECRET);
    assert_eq!(t, 1_700_000_000, "t is the send time");
    assert_eq!(header(request, "airlock-event"), "job.succeeded");
    assert_eq!(
        header(request, "content-type"),
        "application/json",
        "JSON body"
    );
    let body: Value = serde_json::from_str(&request.body).expect("JSON body");
    assert_eq!(body["event"], "job.succeeded");
    assert_eq!(body["job"]["id"], job.id.as_str());
    assert_eq!(body["job"]["state"], "succeeded");
    assert_eq!(body["job"]["rows_synced"], 10);
    assert_eq!(body["sent_at"], "2023-11-14T22:13:20Z");

    let deliveries = list_deliveries(&store, Some(job.id.as_str()), 10)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(header(request, "airlock-delivery"), deliveries[0].id);
    assert_eq!(deliveries[0].delivered_at, Some(clock.now_ms()));
    assert_eq!(deliveries[0].next_attempt_at, None);
    let attempts = list_attempts(&store, &deliveries[0].id)
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(204));

    // Nothing more to do; a wrong secret would not verify.
    assert!(deliverer.pass().await.expect("pass").is_idle());
    assert!(
        airlock_services::webhooks::signature::verify(
            b"another secret",
            header(request, "airlock-signature"),
            request.body.as_bytes(),
            t,
            300
        )
        .is_err()
    );
}

async fn a_failing_receiver_is_retried_with_a_record_per_attempt(kind: Db) {
    let store = store(kind).await;
    let receiver = Receiver::start(2).await;
    let clock = ManualClock::new(1_700_000_000_000);
    let mut deliverer = deliverer(&store, &clock, &[webhook(&receiver.url, "")]);
    let job = run_job(&store, "c1", JobState::Failed, clock.now_ms()).await;

    let first = deliverer.pass().await.expect("pass");
    assert_eq!((first.enqueued, first.retrying), (1, 1), "{first:?}");
    // Not due yet: the backoff holds it.
    clock.advance_ms(1_000);
    assert!(deliverer.pass().await.expect("pass").is_idle());
    assert_eq!(receiver.received().len(), 1);
    clock.advance_ms(60 * 60 * 1000);
    assert_eq!(deliverer.pass().await.expect("pass").retrying, 1);
    clock.advance_ms(60 * 60 * 1000);
    assert_eq!(deliverer.pass().await.expect("pass").delivered, 1);
    clock.advance_ms(60 * 60 * 1000);
    assert!(deliverer.pass().await.expect("pass").is_idle());

    let deliveries = list_deliveries(&store, None, 10).await.expect("deliveries");
    assert_eq!(deliveries.len(), 1, "one delivery");
    let delivery = &deliveries[0];
    assert_eq!(delivery.job_id, job.id.as_str());
    assert_eq!(delivery.event, "job.failed");
    assert_eq!(delivery.attempts, 3);
    assert_eq!(delivery.last_status, Some(204));
    assert!(delivery.delivered_at.is_some());
    let attempts = list_attempts(&store, &delivery.id).await.expect("attempts");
    let statuses: Vec<_> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(
        statuses,
        [(1, Some(500)), (2, Some(500)), (3, Some(204))],
        "three attempt records"
    );
    assert!(attempts[0].error.is_some() && attempts[2].error.is_none());
    assert!(
        attempts[1].at - attempts[0].at >= 60 * 60 * 1000,
        "retried later"
    );
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        assert_signed(request, SECRET);
        assert_eq!(header(request, "airlock-delivery"), delivery.id, "one id");
    }

    // A receiver that never answers well is given up after max_attempts.
    let down = Receiver::start(usize::MAX).await;
    let mut deliverer2 = deliverer_with_events(&store, &clock, &down.url, "max_attempts = 2");
    run_job(&store, "c2", JobState::Cancelled, clock.now_ms()).await;
    assert_eq!(deliverer2.pass().await.expect("pass").retrying, 1);
    clock.advance_ms(60 * 60 * 1000);
    assert_eq!(deliverer2.pass().await.expect("pass").given_up, 1);
    let gone = list_deliveries(&store, None, 10).await.expect("deliveries");
    let gave_up = gone
        .iter()
        .find(|d| d.event == "job.cancelled")
        .expect("the cancelled job's delivery");
    assert!(gave_up.failed_at.is_some() && gave_up.next_attempt_at.is_none());
    assert_eq!(gave_up.attempts, 2);
}

fn deliverer_with_events(store: &Store, clock: &ManualClock, url: &str, extra: &str) -> Deliverer {
    deliverer(store, clock, &[webhook(url, extra)])
}

async fn restarts_and_replicas_neither_lose_nor_repeat_events(kind: Db) {
    let store = store(kind).await;
    let receiver = Receiver::start(0).await;
    let clock = ManualClock::new(1_700_000_000_000);
    let all = "events = [\"queued\", \"started\", \"succeeded\", \"failed\", \"cancelled\"]";
    let hooks = [webhook(&receiver.url, all)];

    // Events, turned into deliveries; then the process dies before sending.
    run_job(&store, "c1", JobState::Succeeded, clock.now_ms()).await;
    let mut first = deliverer(&store, &clock, &hooks);
    // queued, started (pending; running is not a second start), succeeded.
    assert_eq!(first.enqueue().await.expect("enqueue"), 3);
    drop(first);
    assert!(receiver.received().is_empty());

    // More events while it is down; then a new process.
    run_job(&store, "c2", JobState::Failed, clock.now_ms()).await;
    let mut restarted = deliverer(&store, &clock, &hooks);
    let report = restarted.pass().await.expect("pass");
    assert_eq!((report.enqueued, report.delivered), (3, 6), "{report:?}");
    assert!(restarted.pass().await.expect("pass").is_idle());

    // Two replicas reading the same events at once enqueue them once.
    run_job(&store, "c3", JobState::Cancelled, clock.now_ms()).await;
    let mut a = deliverer(&store, &clock, &hooks);
    let mut b = deliverer(&store, &clock, &hooks);
    let (x, y) = tokio::join!(a.enqueue(), b.enqueue());
    let (x, y) = (x.expect("a"), y.expect("b"));
    assert_eq!(x + y, 3, "{x} + {y}");
    let (x, y) = tokio::join!(a.pass(), b.pass());
    let (x, y) = (x.expect("a"), y.expect("b"));
    assert_eq!(x.delivered + y.delivered, 3, "{x:?} {y:?}");

    let deliveries = list_deliveries(&store, None, 100)
        .await
        .expect("deliveries");
    assert_eq!(deliveries.len(), 9);
    let seqs: BTreeSet<i64> = deliveries.iter().map(|d| d.event_seq).collect();
    assert_eq!(seqs.len(), 9, "one delivery per event");
    let received = receiver.received();
    let ids: BTreeSet<&str> = received
        .iter()
        .map(|r| header(r, "airlock-delivery"))
        .collect();
    assert_eq!(
        (received.len(), ids.len()),
        (9, 9),
        "each delivery sent once"
    );
    let mut events: Vec<&str> = received
        .iter()
        .map(|r| header(r, "airlock-event"))
        .collect();
    events.sort_unstable();
    assert_eq!(
        events,
        [
            "job.cancelled",
            "job.failed",
            "job.queued",
            "job.queued",
            "job.queued",
            "job.started",
            "job.started",
            "job.started",
            "job.succeeded"
        ]
    );
}

async fn filters_pick_connections_and_workspaces(kind: Db) {
    let store = store(kind).await;
    let receiver = Receiver::start(0).await;
    let clock = ManualClock::new(1_700_000_000_000);
    let mut deliverer = deliverer(
        &store,
        &clock,
        &[
            webhook(&receiver.url, "connections = [\"c2\"]"),
            webhook(
                &format!("{}?other", receiver.url),
                "workspaces = [\"w9\"]\nevents = [\"started\"]",
            ),
        ],
    );
    run_job(&store, "c1", JobState::Succeeded, clock.now_ms()).await;
    let wanted = run_job(&store, "c2", JobState::Succeeded, clock.now_ms()).await;
    let report = deliverer.pass().await.expect("pass");
    assert_eq!(report.delivered, 1, "{report:?}");
    let received = receiver.received();
    let body: Value = serde_json::from_str(&received[0].body).expect("JSON");
    assert_eq!(body["job"]["id"], wanted.id.as_str());
}

/// Through the whole stack: a sync triggered over HTTP, run by the
/// simulator, ends in a signed webhook whose job is what the API shows.
async fn a_sync_through_airlock_ends_in_a_webhook(kind: Db) {
    let receiver = Receiver::start(0).await;
    let harness = |secret: toml::Value| {
        let mut webhook = toml::Table::new();
        webhook.insert("url".to_owned(), receiver.url.as_str().into());
        webhook.insert("secret".to_owned(), secret);
        webhook.insert("connections".to_owned(), vec!["postgres-snowflake"].into());
        let events = vec!["started", "succeeded", "failed", "cancelled"];
        webhook.insert("events".to_owned(), events.into());
        Harness::fast(kind).entry("webhooks", webhook)
    };
    // Secrets are read at start-up: an unset one stops it, naming the key.
    let missing = harness(secret_env("AIRLOCK_TEST_WEBHOOK_SECRET"))
        .try_start()
        .await
        .expect_err("an unset secret stops start-up");
    assert!(
        format!("{missing:#}").contains("webhooks[0].secret"),
        "{missing:#}"
    );

    let stack = harness(SECRET.into()).start().await;
    let base = stack.base.clone();
    let http = http_client();
    let token = stack.token("runner");
    let job: Value = http
        .post(format!(
            "{base}/v1/connections/postgres-snowflake/sync?wait=60s"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sync")
        .json()
        .await
        .expect("JSON");
    let id = job["id"].as_str().expect("job id").to_owned();
    let state = job["state"].as_str().expect("state").to_owned();
    assert!(
        ["succeeded", "failed", "cancelled"].contains(&state.as_str()),
        "{job}"
    );

    // The terminal event arrives, signed, with the job as the API shows it.
    let terminal = format!("job.{state}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let request = loop {
        if let Some(found) = receiver
            .received()
            .into_iter()
            .find(|r| header(r, "airlock-event") == terminal)
        {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {terminal} webhook; got {:?}",
            receiver.received()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_signed(&request, SECRET);
    let body: Value = serde_json::from_str(&request.body).expect("JSON");
    let shown: Value = http
        .get(format!("{base}/v1/jobs/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get job")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["job"], shown, "the webhook's job is the API's");
    let events: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| header(r, "airlock-event").to_owned())
        .collect();
    assert!(
        events.contains(&"job.started".to_owned()),
        "the start was attempted too: {events:?}"
    );

    stack.stop().await.shutdown().await;
}

both_backends!(
    a_signed_terminal_event_reaches_the_receiver,
    a_failing_receiver_is_retried_with_a_record_per_attempt,
    restarts_and_replicas_neither_lose_nor_repeat_events,
    filters_pick_connections_and_workspaces,
    a_sync_through_airlock_ends_in_a_webhook,
);
