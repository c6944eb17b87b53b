//! The client against the simulator: token single-flight and 401 recovery, retries
//! through injected faults, the ambiguous `POST /jobs`, conflicts, paging, the raw
//! passthrough and the absence of secrets in logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use airbyte_client::{
    AirbyteClient, Auth, ClientConfig, ConflictKind, Error, HeaderMap, JobFilter, JobOrder,
    JobStatus, JobType, ListParams, ManualClock, Method, RetryPolicy, StatusCode,
};
use airbyte_sim::{FaultSpec, Faults, RunningSim, SimConfig};
use tokio::task::JoinSet;
use uuid::Uuid;

const TOKEN_ROUTE: &str = "POST /applications/token";

async fn start(config: SimConfig) -> RunningSim {
    captured_logs();
    airbyte_sim::spawn(config)
        .await
        .expect("the simulator starts")
}

/// A client for `sim` with fast test settings; `tweak` adjusts the config.
fn client_for(sim: &RunningSim, tweak: impl FnOnce(&mut ClientConfig)) -> AirbyteClient {
    let (client_id, client_secret) = sim.sim.credentials();
    let mut config = ClientConfig::new(
        sim.base_url().parse().expect("a URL"),
        Auth::ClientCredentials {
            client_id,
            client_secret: client_secret.into(),
        },
    );
    config.timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        max_retries: 8,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
    };
    tweak(&mut config);
    AirbyteClient::new(config).expect("the client builds")
}

fn token_requests(sim: &RunningSim) -> u64 {
    sim.sim.counters().requests_to(TOKEN_ROUTE)
}

/// The ids of `n` distinct active connections.
async fn active_connections(client: &AirbyteClient, n: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = client
        .list_all_connections(&ListParams::default())
        .await
        .expect("connections list")
        .into_iter()
        .filter(|c| c.status == Some(airbyte_client::ConnectionStatus::Active))
        .map(|c| c.connection_id)
        .take(n)
        .collect();
    assert_eq!(ids.len(), n, "the default world has {n} active connections");
    ids
}

/// Fires `n` concurrent `list_workspaces` calls and asserts they all succeed.
async fn concurrent_reads(client: &AirbyteClient, n: usize) {
    let mut calls = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        calls.spawn(async move { client.list_workspaces(&ListParams::default()).await });
    }
    while let Some(joined) = calls.join_next().await {
        let page = joined.expect("no panic").expect("the call succeeds");
        assert!(!page.data.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_cold_calls_make_one_token_request() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    concurrent_reads(&client, 1_000).await;
    assert_eq!(token_requests(&sim), 1);
    assert_eq!(sim.sim.counters().requests_to("GET /workspaces"), 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_calls_with_an_aging_or_stale_token_make_one_token_request() {
    // The simulator's tokens live 180 s: the client refreshes from 120 s and stops
    // using a token at 170 s, by its own clock, which the test moves.
    let sim = start(SimConfig {
        token_lifetime_secs: 180,
        ..SimConfig::default()
    })
    .await;
    let clock = ManualClock::new();
    let client = client_for(&sim, |config| config.clock = Arc::new(clock.clone()));
    client
        .list_workspaces(&ListParams::default())
        .await
        .expect("first call");
    assert_eq!(token_requests(&sim), 1);

    // Aging: one caller refreshes, the others keep using the still-valid token.
    clock.advance(Duration::from_secs(130));
    concurrent_reads(&client, 1_000).await;
    assert_eq!(token_requests(&sim), 2);

    // Stale: everyone waits for the one refresh in flight.
    clock.advance(Duration::from_secs(300));
    concurrent_reads(&client, 1_000).await;
    assert_eq!(token_requests(&sim), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_share_the_failure_of_the_one_token_request() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |config| config.retry.max_retries = 1);
    // Slow enough that every call is waiting before the flight ends: a call that
    // arrives after a failed flight asks again, by design.
    sim.sim.set_faults(Faults::none().with_route(
        TOKEN_ROUTE,
        FaultSpec {
            error_rate: 1.0,
            latency_ms: 200,
            ..FaultSpec::default()
        },
    ));
    let mut calls = JoinSet::new();
    for _ in 0..200 {
        let client = client.clone();
        calls.spawn(async move { client.list_workspaces(&ListParams::default()).await });
    }
    while let Some(joined) = calls.join_next().await {
        let error = joined.expect("no panic").unwrap_err();
        assert!(
            matches!(error, Error::Upstream { attempts: 2, .. }),
            "{error:?}"
        );
    }
    assert_eq!(
        token_requests(&sim),
        2,
        "one flight of two attempts for everyone"
    );
    assert_eq!(sim.sim.counters().requests_to("GET /workspaces"), 0);

    // The next call, after the failure, tries again and succeeds.
    sim.sim.set_faults(Faults::none());
    client
        .list_workspaces(&ListParams::default())
        .await
        .expect("recovers");
    assert_eq!(token_requests(&sim), 3);
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_the_call_succeeds() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    client
        .list_workspaces(&ListParams::default())
        .await
        .expect("first call");
    assert_eq!(token_requests(&sim), 1);

    // Through the admin API, as an operator would.
    let expired = reqwest::Client::new()
        .post(format!("{}/expire-tokens", sim.admin_url()))
        .send()
        .await
        .expect("admin call");
    assert!(expired.status().is_success());

    let page = client
        .list_connections(&ListParams::default())
        .await
        .expect("the call recovers from the 401");
    assert!(!page.data.is_empty());
    let counters = sim.sim.counters();
    assert_eq!(
        counters.requests_to(TOKEN_ROUTE),
        2,
        "exactly one extra token request"
    );
    assert_eq!(counters.responses_to("GET /connections", 401), 1);
    assert_eq!(counters.responses_to("GET /connections", 200), 1);
}

/// Lists the connections (a token, then `GET /connections`), expires the
/// token and reads one connection (a 401, a new token, the read again).
async fn read_through_a_refresh(sim: &RunningSim, client: &AirbyteClient) -> Uuid {
    let connection = active_connections(client, 1).await[0];
    sim.sim.expire_tokens();
    client
        .get_connection(connection)
        .await
        .expect("recovers from the 401");
    connection
}

/// What an observer was told, in order.
#[derive(Debug, Default)]
struct Recorded {
    calls: Mutex<Vec<(String, Option<u16>, u32)>>,
    refreshes: Mutex<Vec<bool>>,
}

impl airbyte_client::CallObserver for Recorded {
    fn on_call(&self, route: &str, status: Option<u16>, _latency: Duration, attempt: u32) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((route.to_owned(), status, attempt));
    }

    fn on_token_refresh(&self, ok: bool) {
        self.refreshes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ok);
    }
}

#[tokio::test]
async fn the_observer_sees_every_attempt_and_refresh_by_route_template() {
    let sim = start(SimConfig::default()).await;
    let recorded = Arc::new(Recorded::default());
    let observer = Arc::clone(&recorded) as Arc<dyn airbyte_client::CallObserver>;
    let client = client_for(&sim, |config| config.observer = Some(observer));
    let connection = read_through_a_refresh(&sim, &client).await;
    let refused = client.get_job(999_999_999).await.unwrap_err();
    assert!(matches!(refused, Error::NotFound { .. }), "{refused:?}");
    let calls = recorded
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let expected: Vec<(String, Option<u16>, u32)> = [
        (TOKEN_ROUTE, Some(200), 1),
        ("GET /connections", Some(200), 1),
        ("GET /connections/{connectionId}", Some(401), 1),
        (TOKEN_ROUTE, Some(200), 1),
        ("GET /connections/{connectionId}", Some(200), 2),
        ("GET /jobs/{jobId}", Some(404), 1),
    ]
    .into_iter()
    .map(|(route, status, attempt)| (route.to_owned(), status, attempt))
    .collect();
    assert_eq!(calls, expected);
    assert_eq!(
        *recorded
            .refreshes
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
        vec![true, true]
    );

    // Raw calls are named by template, not by the ids in their path.
    client
        .send_raw(
            Method::GET,
            &format!("/connections/{connection}"),
            &HeaderMap::new(),
            Vec::new(),
        )
        .await
        .expect("a raw read");
    let last = recorded
        .calls
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .last()
        .cloned();
    assert_eq!(
        last,
        Some(("GET /connections/{id}".to_owned(), Some(200), 1))
    );
}

/// A trace-context hook that numbers the attempts it is asked about.
#[derive(Debug, Default)]
struct Numbered(std::sync::atomic::AtomicU32);

impl airbyte_client::TraceContext for Numbered {
    fn inject(&self, headers: &mut HeaderMap) {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let value = format!("00-{:032x}-{:016x}-01", 1, n);
        headers.insert("traceparent", value.parse().expect("a header value"));
    }
}

#[tokio::test]
async fn every_attempt_and_token_request_carries_the_trace_context() {
    let sim = start(SimConfig::default()).await;
    let hook = Arc::new(Numbered::default());
    let tracing = Arc::clone(&hook) as Arc<dyn airbyte_client::TraceContext>;
    let client = client_for(&sim, |config| config.trace_context = Some(tracing));
    read_through_a_refresh(&sim, &client).await;
    // A caller's traceparent on a raw call is replaced by the call's own.
    let mut caller = HeaderMap::new();
    caller.insert(
        "traceparent",
        "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01"
            .parse()
            .expect("a header value"),
    );
    client
        .send_raw(Method::GET, "/jobs", &caller, Vec::new())
        .await
        .expect("a raw read");
    let traced: Vec<(String, String)> = sim
        .sim
        .counters()
        .traced
        .into_iter()
        .map(|t| (t.route, t.traceparent))
        .collect();
    let routes: Vec<&str> = traced.iter().map(|(route, _)| route.as_str()).collect();
    assert_eq!(
        routes,
        [
            TOKEN_ROUTE,
            "GET /connections",
            "GET /connections/{connectionId}",
            TOKEN_ROUTE,
            "GET /connections/{connectionId}",
            "GET /jobs",
        ]
    );
    // One context per attempt (the hook numbers them), none the caller's.
    let sent: std::collections::BTreeSet<&str> =
        traced.iter().map(|(_, parent)| parent.as_str()).collect();
    let asked: std::collections::BTreeSet<String> = (1..=6)
        .map(|n| format!("00-{:032x}-{:016x}-01", 1, n))
        .collect();
    assert_eq!(
        sent,
        asked.iter().map(String::as_str).collect(),
        "{traced:?}"
    );
}

#[tokio::test]
async fn rejected_credentials_are_auth_errors_without_retries() {
    let sim = start(SimConfig::default()).await;
    let bad_secret = client_for(&sim, |config| {
        config.auth = Auth::ClientCredentials {
            client_id: "airlock-sim".into(),
            client_secret: "wrong".into(),
        };
    });
    let error = bad_secret
        .list_workspaces(&ListParams::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(
        token_requests(&sim),
        1,
        "a 400 from the token endpoint is final"
    );

    let bad_bearer = client_for(&sim, |config| config.auth = Auth::Bearer("nope".into()));
    let error = bad_bearer.get_job(1).await.unwrap_err();
    assert!(matches!(error, Error::Auth { .. }), "{error:?}");
    assert_eq!(sim.sim.counters().requests_to("GET /jobs/{jobId}"), 1);
}

#[tokio::test]
async fn reads_retry_through_5xx_429_and_dropped_connections() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    let flaky = FaultSpec {
        error_rate: 0.25,
        rate_limit_rate: 0.25,
        drop_rate: 0.1,
        ..FaultSpec::default()
    };
    sim.sim.set_faults(
        Faults::none()
            .with_route("GET /connections", flaky)
            .with_route("GET /workspaces", flaky)
            .with_route(TOKEN_ROUTE, flaky),
    );
    for _ in 0..20 {
        client
            .list_workspaces(&ListParams::default())
            .await
            .expect("retries hide the faults");
        client
            .list_connections(&ListParams::default())
            .await
            .expect("retries hide the faults");
    }
    let counters = sim.sim.counters();
    let injected = |kind| {
        counters.faults_on("GET /workspaces", kind) + counters.faults_on("GET /connections", kind)
    };
    assert!(injected("error") > 0, "{counters:?}");
    assert!(injected("rate_limit") > 0, "{counters:?}");
    assert!(injected("drop") > 0, "{counters:?}");
    let requests =
        counters.requests_to("GET /workspaces") + counters.requests_to("GET /connections");
    assert_eq!(
        requests,
        40 + injected("error") + injected("rate_limit") + injected("drop")
    );
}

#[tokio::test]
async fn reads_give_up_with_typed_errors_when_faults_persist() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |config| {
        config.retry.max_retries = 2;
        config.timeout = Duration::from_millis(200);
    });
    client.get_job(1).await.ok(); // fetch a token first
    let always = |spec| Faults::none().with_route("GET /workspaces", spec);

    sim.sim.set_faults(always(FaultSpec {
        error_rate: 1.0,
        ..FaultSpec::default()
    }));
    let error = client
        .list_workspaces(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Upstream { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());

    sim.sim.set_faults(always(FaultSpec {
        rate_limit_rate: 1.0,
        ..FaultSpec::default()
    }));
    let error = client
        .list_workspaces(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::RateLimited { attempts: 3 }),
        "{error:?}"
    );

    sim.sim.set_faults(always(FaultSpec {
        blackhole_rate: 1.0,
        ..FaultSpec::default()
    }));
    let error = client
        .list_workspaces(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Timeout { attempts: 3, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn create_job_retries_429_and_creates_exactly_one_job() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    let connections = active_connections(&client, 3).await;
    sim.sim.set_faults(Faults::none().with_route(
        "POST /jobs",
        FaultSpec {
            rate_limit_rate: 0.5,
            ..FaultSpec::default()
        },
    ));
    for &connection in &connections {
        let job = client
            .create_job(connection, JobType::Sync)
            .await
            .expect("429s are retried");
        assert_eq!(job.connection_id, connection);
        assert!(job.status.is_active(), "{:?}", job.status);
    }
    let counters = sim.sim.counters();
    assert!(counters.faults_on("POST /jobs", "rate_limit") > 0);
    for connection in connections {
        assert_eq!(counters.jobs_created_for(connection), 1);
    }
}

#[tokio::test]
async fn create_job_answered_with_5xx_is_ambiguous_and_not_retried() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    let connection = active_connections(&client, 1).await[0];
    sim.sim.set_faults(Faults::none().with_route(
        "POST /jobs",
        FaultSpec {
            error_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let error = client
        .create_job(connection, JobType::Sync)
        .await
        .unwrap_err();
    match &error {
        Error::Ambiguous {
            status: Some(status),
            ..
        } => assert!((500..600).contains(status)),
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    assert!(!error.is_retryable());
    assert_eq!(
        sim.sim.counters().requests_to("POST /jobs"),
        1,
        "never resent"
    );
}

#[tokio::test]
async fn a_dropped_create_job_is_ambiguous_but_a_refused_connection_is_not() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    let connection = active_connections(&client, 1).await[0];
    // The simulator drops before processing, but the client cannot know that.
    sim.sim.set_faults(Faults::none().with_route(
        "POST /jobs",
        FaultSpec {
            drop_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let error = client
        .create_job(connection, JobType::Sync)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Ambiguous { status: None, .. }),
        "{error:?}"
    );
    assert_eq!(
        sim.sim.counters().requests_to("POST /jobs"),
        1,
        "never resent"
    );

    // Nothing listens here: nothing can have been sent, so retrying was safe and
    // the final error is a plain, retryable transport error.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let mut config = ClientConfig::new(
        format!("http://{addr}/api/public/v1")
            .parse()
            .expect("a URL"),
        Auth::Bearer("static".into()),
    );
    config.retry = RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    let nowhere = AirbyteClient::new(config).expect("client");
    let error = nowhere
        .create_job(connection, JobType::Sync)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Transport { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable() && !error.is_ambiguous());
}

#[tokio::test]
async fn a_blackholed_create_job_is_ambiguous_and_the_job_exists() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |config| config.timeout = Duration::from_millis(500));
    let connection = active_connections(&client, 1).await[0];
    sim.sim.set_faults(Faults::none().with_route(
        "POST /jobs",
        FaultSpec {
            blackhole_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let error = client
        .create_job(connection, JobType::Sync)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Ambiguous { status: None, .. }),
        "{error:?}"
    );
    let counters = sim.sim.counters();
    assert_eq!(counters.requests_to("POST /jobs"), 1, "never resent");
    assert_eq!(
        counters.jobs_created_for(connection),
        1,
        "the job was created"
    );

    // Reconciling finds it.
    sim.sim.set_faults(Faults::none());
    let jobs = client
        .list_jobs(&JobFilter {
            connection_id: Some(connection),
            order_by: Some(JobOrder::CreatedAtDesc),
            ..JobFilter::default()
        })
        .await
        .expect("jobs list");
    assert_eq!(jobs.data.len(), 1);
    assert!(jobs.data[0].status.is_active());
}

#[tokio::test]
async fn a_running_sync_and_a_finished_job_are_recognised_conflicts() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    let connection = active_connections(&client, 1).await[0];
    let job = client
        .create_job(connection, JobType::Sync)
        .await
        .expect("first sync starts");

    let error = client
        .create_job(connection, JobType::Sync)
        .await
        .unwrap_err();
    assert_eq!(
        error.conflict_kind(),
        Some(ConflictKind::SyncRunning),
        "{error:?}"
    );
    assert!(!error.is_retryable() && !error.is_ambiguous());

    let cancelled = client.cancel_job(job.job_id).await.expect("cancel");
    assert_eq!(cancelled.job_id, job.job_id);
    let again = client.cancel_job(job.job_id).await.unwrap_err();
    assert_eq!(
        again.conflict_kind(),
        Some(ConflictKind::StateConflict),
        "{again:?}"
    );
    assert_eq!(
        client.get_job(job.job_id).await.expect("get").status,
        JobStatus::Cancelled
    );
    assert!(matches!(
        client.get_job(987_654_321).await.unwrap_err(),
        Error::NotFound { .. }
    ));
}

#[tokio::test]
async fn a_400_resource_not_found_is_not_found() {
    // Real servers answer 400 (with a resource-not-found body) for unknown ids.
    let sim = start(SimConfig {
        not_found_status: 400,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, |_| {});
    let error = client.get_job(987_654_321).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let error = client.get_connection(Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let error = client
        .create_job(Uuid::new_v4(), JobType::Sync)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    let error = client
        .create_job(active_connections(&client, 1).await[0], JobType::Refresh)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::BadRequest { status: 422, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_cancel_retried_after_a_lost_answer_reports_the_cancelled_job() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |config| config.timeout = Duration::from_millis(500));
    let connection = active_connections(&client, 1).await[0];
    let job = client
        .create_job(connection, JobType::Sync)
        .await
        .expect("sync starts");

    // The first DELETE is processed and never answered; the retry meets a 409.
    sim.sim.set_faults(Faults::none().with_route(
        "DELETE /jobs/{jobId}",
        FaultSpec {
            blackhole_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let watcher = {
        let sim = sim.sim.clone();
        tokio::spawn(async move {
            while sim.counters().requests_to("DELETE /jobs/{jobId}") == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            sim.set_faults(Faults::none());
        })
    };
    let cancelled = client
        .cancel_job(job.job_id)
        .await
        .expect("the cancel is reconciled");
    watcher.await.expect("watcher");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    let counters = sim.sim.counters();
    assert_eq!(counters.requests_to("DELETE /jobs/{jobId}"), 2);
    assert_eq!(counters.responses_to("DELETE /jobs/{jobId}", 409), 1);
}

#[tokio::test]
async fn pagers_follow_pages_to_the_end() {
    let sim = start(SimConfig {
        history_jobs: 3,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, |_| {});
    let all = client
        .list_connections(&ListParams {
            limit: Some(100),
            ..ListParams::default()
        })
        .await
        .expect("one big page");
    let paged = client
        .list_all_connections(&ListParams {
            limit: Some(2),
            ..ListParams::default()
        })
        .await
        .expect("small pages");
    assert!(all.data.len() > 2);
    assert_eq!(paged, all.data);
    let pages = all.data.len().div_ceil(2) as u64;
    let exact = u64::from(all.data.len() % 2 == 0);
    assert_eq!(
        sim.sim.counters().requests_to("GET /connections"),
        1 + pages + exact,
        "stops on a short page, or on the empty one after a full page"
    );

    // Workspace filter, repeated ids.
    let workspace = all.data[0].workspace_id;
    let in_workspace = client
        .list_all_connections(&ListParams {
            workspace_ids: vec![workspace],
            ..ListParams::default()
        })
        .await
        .expect("filtered");
    assert!(!in_workspace.is_empty());
    assert!(in_workspace.iter().all(|c| c.workspace_id == workspace));

    let connection = all.data[0].connection_id;
    let filter = JobFilter {
        connection_id: Some(connection),
        limit: Some(2),
        ..JobFilter::default()
    };
    let mut pager = client.list_jobs_pages(&filter);
    let mut jobs = Vec::new();
    while let Some(page) = pager.next_page().await.expect("a page") {
        assert!(page.len() <= 2);
        jobs.extend(page);
    }
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter()
            .all(|job| job.connection_id == connection && job.status.is_terminal())
    );
    assert_eq!(client.list_all_jobs(&filter).await.expect("all"), jobs);
}

#[tokio::test]
async fn queued_jobs_parse() {
    let sim = start(SimConfig {
        emit_queued: true,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim, |_| {});
    let connection = active_connections(&client, 1).await[0];
    let job = client
        .create_job(connection, JobType::Sync)
        .await
        .expect("sync starts");
    assert_eq!(job.status, JobStatus::Queued);
    assert!(job.status.is_active());
}

#[tokio::test]
async fn raw_passthrough_uses_airlocks_credential() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        "Bearer the-callers-own-token".parse().expect("header"),
    );
    let response = client
        .send_raw(Method::GET, "/workspaces?limit=1", &headers, Vec::new())
        .await
        .expect("raw GET");
    assert_eq!(response.status, StatusCode::OK);
    assert!(
        response
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/json"))
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));

    // A 401 is cured by a refresh, even for a raw POST.
    sim.sim.expire_tokens();
    let connection = active_connections(&client, 1).await[0];
    sim.sim.expire_tokens();
    let created = client
        .send_raw(
            Method::POST,
            "/jobs",
            &HeaderMap::new(),
            serde_json::to_vec(&serde_json::json!({"connectionId": connection, "jobType": "sync"}))
                .expect("JSON"),
        )
        .await
        .expect("raw POST");
    assert_eq!(created.status, StatusCode::OK);
    let counters = sim.sim.counters();
    assert_eq!(counters.jobs_created_for(connection), 1);
    assert_eq!(counters.responses_to("POST /jobs", 401), 1);
    let posts_before = counters.requests_to("POST /jobs");

    // Non-2xx answers pass through as they are; a 5xx on a POST is not retried.
    sim.sim.set_faults(Faults::none().with_route(
        "POST /jobs",
        FaultSpec {
            error_rate: 1.0,
            ..FaultSpec::default()
        },
    ));
    let failed = client
        .send_raw(Method::POST, "/jobs", &HeaderMap::new(), b"{}".to_vec())
        .await
        .expect("a raw 5xx is an answer");
    assert!(failed.status.is_server_error());
    assert_eq!(
        sim.sim.counters().requests_to("POST /jobs"),
        posts_before + 1
    );

    let missing = client
        .send_raw(
            Method::GET,
            "/jobs/987654321",
            &HeaderMap::new(),
            Vec::new(),
        )
        .await
        .expect("a 404 is an answer");
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    assert!(matches!(
        client
            .send_raw(Method::GET, "/../api/v1/x", &HeaderMap::new(), Vec::new())
            .await,
        Err(Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn health_and_the_configuration_api() {
    let sim = start(SimConfig::default()).await;
    let client = client_for(&sim, |_| {});
    client.health().await.expect("healthy");
    assert_eq!(token_requests(&sim), 0, "health needs no token");
    assert_eq!(client.config_api_url(), Some(sim.config_api_url().as_str()));

    let connection = active_connections(&client, 1).await[0];
    let fetched = client.get_connection(connection).await.expect("get");
    assert_eq!(fetched.connection_id, connection);
    let config = client
        .get_connection_config(connection)
        .await
        .expect("Configuration API read");
    assert_eq!(config["connectionId"], serde_json::json!(connection));
    assert_eq!(config["name"], serde_json::json!(fetched.name));
}

/// A `MakeWriter` that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// True when `text` holds a run of 64 hex digits: the shape of the simulator's tokens.
fn has_token_shape(text: &str) -> bool {
    let mut run = 0;
    for ch in text.chars() {
        run = if ch.is_ascii_hexdigit() { run + 1 } else { 0 };
        if run >= 64 {
            return true;
        }
    }
    false
}

/// Every log line of this test binary, at TRACE, `log` records included: one
/// global subscriber (per-test thread-local ones miss events when tests run in
/// parallel), installed by the first test to start a simulator.
fn captured_logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only global subscriber");
        captured
    })
}

#[tokio::test]
async fn no_secret_or_token_appears_in_trace_logs() {
    const SECRET: &str = "very-secret-client-secret-4c1d";
    let sim = start(SimConfig {
        client_secret: SECRET.to_owned(),
        ..SimConfig::default()
    })
    .await;
    let clock = ManualClock::new();
    let client = client_for(&sim, |config| config.clock = Arc::new(clock.clone()));
    tracing::debug!(?client, "client under test");

    // A session: reads, an early refresh, a 401 refresh, a job, faults, errors.
    let connection = active_connections(&client, 1).await[0];
    clock.advance(Duration::from_secs(130));
    client.get_connection(connection).await.expect("get");
    sim.sim.expire_tokens();
    let job = client
        .create_job(connection, JobType::Sync)
        .await
        .expect("create");
    client.get_job(job.job_id).await.expect("get job");
    client
        .create_job(connection, JobType::Sync)
        .await
        .unwrap_err();
    sim.sim.set_faults(Faults::none().with_route(
        "GET /jobs/{jobId}",
        FaultSpec {
            error_rate: 0.5,
            ..FaultSpec::default()
        },
    ));
    client.get_job(job.job_id).await.expect("retried");
    client.cancel_job(job.job_id).await.expect("cancel");
    client
        .send_raw(Method::GET, "/jobs?limit=1", &HeaderMap::new(), Vec::new())
        .await
        .expect("raw");
    let wrong = client_for(&sim, |config| {
        config.auth = Auth::ClientCredentials {
            client_id: "airlock-sim".into(),
            client_secret: format!("{SECRET}-wrong").into(),
        };
    });
    wrong.get_job(job.job_id).await.unwrap_err();
    assert!(token_requests(&sim) >= 3, "the session refreshed tokens");

    // Every test's lines so far, not only this session's.
    let logs = captured_logs().text();
    assert!(logs.contains("airbyte.call"), "spans were logged");
    assert!(
        logs.contains("airbyte.token"),
        "token refreshes were logged"
    );
    assert!(
        logs.contains("GET /jobs/{jobId}"),
        "route templates were logged"
    );
    assert!(
        !logs.contains(SECRET),
        "the client secret leaked into the logs"
    );
    assert!(
        !has_token_shape(&logs),
        "an access token leaked into the logs"
    );
    assert!(
        !logs.to_ascii_lowercase().contains("bearer "),
        "an authorization header leaked"
    );
}
