//! The job queue under stress: an unreliable Airbyte, a killed process,
//! and the cost of tracking many running jobs. Each runs on SQLite and on
//! Postgres.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use airbyte_sim::{FaultSpec, Faults, SimConfig};
use airlock_domain::clock::{ManualClock, SystemClock};
use airlock_domain::jobs::{JobState, JobsConfig};
use airlock_services::connections::Catalog;
use airlock_services::queue::tracker::{KnownConnections, Tracker};
use airlock_store::Store;
use serde_json::{Value, json};

use crate::harness::Harness;
use crate::support::{
    self, Db, assert_exactly_once, both_backends, reliable_connections, wait_all_terminal,
};

async fn an_unreliable_airbyte_gets_exactly_one_job_per_trigger(db: Db) {
    // Black holes resolve after a second.
    let stack = Harness::fast(db).airbyte_timeout(1).start().await;
    let connections = stack
        .add_connections(reliable_connections("reliability", 8, 1))
        .await
        .connection_ids;
    // A fifth of `POST /jobs` answers never arrive (the connection drops
    // before Airbyte sees the request, or Airbyte starts the job and the
    // answer is lost); a fifth of every other call fails with a 5xx.
    stack.sim.sim.set_faults(
        Faults {
            default: FaultSpec {
                error_rate: 0.2,
                ..FaultSpec::default()
            },
            ..Faults::default()
        }
        .with_route(
            "POST /jobs",
            FaultSpec {
                drop_rate: 0.1,
                blackhole_rate: 0.12,
                ..FaultSpec::default()
            },
        ),
    );
    let mut ids = Vec::new();
    let mut triggers: HashMap<String, usize> = HashMap::new();
    for i in 0..200 {
        let connection = &connections[i % connections.len()];
        ids.push(stack.accepted_sync(connection).await);
        *triggers.entry(connection.clone()).or_default() += 1;
    }
    let jobs = wait_all_terminal(&stack, &ids, Duration::from_secs(240)).await;
    let counters = stack.sim.sim.counters();
    assert_exactly_once(&jobs, &triggers, &counters);
    let drops = counters.faults_on("POST /jobs", "drop");
    let blackholes = counters.faults_on("POST /jobs", "blackhole");
    eprintln!(
        "fault test ({db:?}): 200 triggers, {} POST /jobs, {drops} dropped, {blackholes} black-holed, {} Airbyte jobs",
        counters.requests_to("POST /jobs"),
        counters.total_jobs_created()
    );
    assert!(drops > 0 && blackholes > 0, "the faults were exercised");
    stack.stop().await;
}

async fn a_killed_airlock_carries_out_every_accepted_job_once(db: Db) {
    let sim = airbyte_sim::spawn(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let http = support::http_client();
    let connections =
        support::sim_add_connections(&http, &sim, reliable_connections("crash", 8, 1))
            .await
            .connection_ids;
    // Slow starts, some of them with lost answers: when the process dies,
    // some jobs are on their way to Airbyte.
    sim.sim.set_faults(Faults::default().with_route(
        "POST /jobs",
        FaultSpec {
            latency_ms: 400,
            blackhole_rate: 0.2,
            ..FaultSpec::default()
        },
    ));
    // The development identity provider on its own port: `serve` finds its
    // keys through discovery, as with any issuer.
    let deployment = Harness::fast(db)
        .airbyte(&sim)
        .airbyte_timeout(1)
        .deploy()
        .await;
    let storage_url = deployment.storage_url.clone();

    let first = deployment.serve();
    let mut ids = Vec::new();
    let mut triggers: HashMap<String, usize> = HashMap::new();
    for i in 0..40 {
        let connection = &connections[i % connections.len()];
        ids.push(first.client.accepted_sync(connection).await);
        *triggers.entry(connection.clone()).or_default() += 1;
    }
    // Kill it once it is busy starting jobs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sim.sim.counters().requests_to("POST /jobs") < 12 {
        assert!(tokio::time::Instant::now() < deadline, "nothing dispatched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let at_kill = sim.sim.counters().requests_to("POST /jobs");
    // What the dead process left behind.
    let store = Store::connect(&storage_url).await.expect("store");
    let left: HashMap<JobState, i64> = store
        .count_jobs_by_state()
        .await
        .expect("counts")
        .into_iter()
        .collect();
    store.pool().close().await;
    let unsettled = [JobState::Starting, JobState::Pending, JobState::Running]
        .iter()
        .filter_map(|state| left.get(state))
        .sum::<i64>();
    assert!(unsettled > 0, "the kill interrupted nothing: {left:?}");

    let second = deployment.serve();
    let jobs = wait_all_terminal(&second.client, &ids, Duration::from_secs(120)).await;
    let counters = sim.sim.counters();
    eprintln!(
        "crash test ({db:?}): 40 accepted, {at_kill} POST /jobs before the kill, left {left:?}, {} POST /jobs in all, {} black-holed, {} Airbyte jobs",
        counters.requests_to("POST /jobs"),
        counters.faults_on("POST /jobs", "blackhole"),
        counters.total_jobs_created()
    );
    assert_exactly_once(&jobs, &triggers, &counters);
    drop(second);
    sim.shutdown().await;
}

/// Airbyte calls the simulator saw, all routes together.
fn calls(counters: &airbyte_sim::Counters) -> u64 {
    counters.requests.values().sum()
}

async fn tracking_a_thousand_running_jobs_costs_a_few_calls_per_pass(db: Db) {
    let sim = airbyte_sim::spawn(SimConfig {
        manual_clock: true,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let http = support::http_client();
    // 1,000 ten-hour syncs that Airbyte started by itself, in two workspaces.
    for workspace in ["bulk-a", "bulk-b"] {
        let mut request = reliable_connections(workspace, 500, 36_000);
        request["start_syncs"] = json!(true);
        let added = support::sim_add_connections(&http, &sim, request).await;
        assert_eq!(added.job_ids.len(), 500);
    }
    let clock_now: Value = http
        .get(format!("{}/clock", sim.admin_url()))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON");
    // Airlock's clock and Airbyte's move together.
    let clock = ManualClock::new(clock_now["now_ms"].as_i64().expect("now_ms"));
    let advance = |by: Duration| {
        sim.sim.advance(by);
        clock.advance_ms(i64::try_from(by.as_millis()).expect("small"));
    };
    let airbyte = support::airbyte_client(&sim);
    let store = Store::connect(&support::fresh_database(db).await)
        .await
        .expect("store");
    let catalog = Arc::new(Catalog::new(
        airbyte.clone(),
        store.clone(),
        BTreeMap::new(),
        Arc::new(SystemClock),
    ));
    catalog.refresh().await.expect("catalog");
    let workspaces = catalog.workspaces().len();
    let mut tracker = Tracker::new(
        store.clone(),
        airbyte,
        JobsConfig::default(),
        Arc::new(clock.clone()),
        catalog,
    );
    let mut pass = async |label: &str| {
        sim.sim.reset_counters();
        let report = tracker.pass().await.expect("a pass");
        let calls = calls(&sim.sim.counters());
        eprintln!("tracker pass ({db:?}), {label}: {calls} Airbyte calls, {report:?}");
        assert_eq!(
            u64::try_from(report.airbyte_calls).expect("small"),
            calls,
            "the report counts every call"
        );
        (report, calls)
    };

    let (report, first) = pass("first (full, discovers 1,000 pending jobs)").await;
    assert!(report.full);
    assert_eq!(report.discovered, 1_000);
    let (_, recent) = pass("every job changed within the overlap").await;
    advance(Duration::from_secs(10));
    let (report, started) = pass("1,000 jobs went from pending to running").await;
    assert_eq!(report.updated, 1_000);
    advance(Duration::from_secs(120));
    let (report, overlap) = pass("nothing changed, but within the overlap").await;
    assert_eq!((report.updated, report.discovered), (0, 0));
    advance(Duration::from_secs(5));
    let (report, steady) = pass("steady: nothing changed").await;
    assert_eq!((report.updated, report.discovered), (0, 0));
    let mut full = 0;
    for _ in 0..20 {
        advance(Duration::from_secs(5));
        let (report, calls) = pass("later").await;
        if report.full {
            full = calls;
            break;
        }
    }
    let counts = store.count_jobs_by_state().await.expect("counts");
    assert_eq!(counts, vec![(JobState::Running, 1_000)]);

    // Airlock is down for eleven hours, while every sync ends; the first
    // pass after a restart finds them all ended.
    advance(Duration::from_secs(11 * 3_600));
    let mut restarted = Tracker::new(
        store.clone(),
        support::airbyte_client(&sim),
        JobsConfig::default(),
        Arc::new(clock.clone()),
        Arc::new(Catalog::new(
            support::airbyte_client(&sim),
            store.clone(),
            BTreeMap::new(),
            Arc::new(SystemClock),
        )),
    );
    sim.sim.reset_counters();
    let report = restarted.pass().await.expect("a pass");
    let after_restart = calls(&sim.sim.counters());
    eprintln!(
        "tracker pass ({db:?}), after a restart, all 1,000 ended: {after_restart} Airbyte calls, {report:?}"
    );
    assert_eq!(report.updated, 1_000);
    let counts = store.count_jobs_by_state().await.expect("counts");
    assert_eq!(counts, vec![(JobState::Succeeded, 1_000)]);

    // One call per workspace when nothing changes; pages of 100 when
    // everything does; never one call per job.
    assert!(
        steady <= u64::try_from(workspaces).expect("small"),
        "{steady}"
    );
    for calls in [first, recent, started, overlap, steady, full, after_restart] {
        assert!((1..=40).contains(&calls), "{calls} calls in a pass");
    }
    sim.shutdown().await;
}

both_backends!(
    an_unreliable_airbyte_gets_exactly_one_job_per_trigger,
    a_killed_airlock_carries_out_every_accepted_job_once,
    tracking_a_thousand_running_jobs_costs_a_few_calls_per_pass,
);
