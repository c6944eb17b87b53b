//! Several `airlock serve` processes on one Postgres, as a platform team
//! runs them: triggers spread over the replicas, one of them killed
//! midway. Every accepted trigger is carried out once, and Airbyte is
//! polled by one replica at a time.

use std::collections::HashMap;
use std::time::Duration;

use airbyte_sim::{FaultSpec, Faults, SimConfig};
use airlock_store::Store;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Served};
use crate::support::{
    self, Db, TRACKS_AIRBYTE, assert_exactly_once, id_of, reliable_connections, wait_all_terminal,
};

const REPLICAS: usize = 3;
const TRIGGERS: usize = 300;
const CONNECTIONS: u32 = 30;
const BATCH: usize = 30;

/// Waits until `done` holds, for at most `within`; `what` names it.
async fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replicas that have logged winning the tracker election.
fn trackers(replicas: &[Served]) -> usize {
    replicas.iter().map(|r| r.logged(TRACKS_AIRBYTE)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_carry_out_each_trigger_once_and_one_polls_airbyte() {
    let sim = airbyte_sim::spawn(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let http = support::http_client();
    let connections = support::sim_add_connections(
        &http,
        &sim,
        reliable_connections("replicas", CONNECTIONS, 1),
    )
    .await
    .connection_ids;
    // Slow starts: when a replica dies, some of its jobs are on their way
    // to Airbyte.
    sim.sim.set_faults(Faults::default().with_route(
        "POST /jobs",
        FaultSpec {
            latency_ms: 150,
            ..FaultSpec::default()
        },
    ));
    let deployment = Harness::fast(Db::Postgres)
        .airbyte(&sim)
        .airbyte_timeout(2)
        .deploy()
        .await;
    let storage_url = deployment.storage_url.clone();

    // Three at once on an empty database: they race for the migrations.
    let starting = (0..REPLICAS).map(|_| {
        let launch = deployment.launch();
        tokio::task::spawn_blocking(move || launch.serve())
    });
    let mut replicas: Vec<Served> = join_all(starting)
        .await
        .into_iter()
        .map(|started| started.expect("join"))
        .collect();

    // One of them wins the tracker election; the others stand by.
    wait_until("no replica tracks Airbyte", Duration::from_secs(10), || {
        trackers(&replicas) > 0
    })
    .await;
    // Standbys try every poll interval: give them a few tries.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(trackers(&replicas), 1, "exactly one replica tracks");

    // While nothing runs, each pass lists each workspace once (every
    // twelfth pass lists four statuses): the rate of ONE tracker.
    let world: Value = http
        .get(format!("{}/world", sim.admin_url()))
        .send()
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON");
    let workspaces =
        u64::try_from(world["workspaces"].as_array().expect("workspaces").len()).expect("small");
    let window = 6;
    let before = sim.sim.counters().requests_to("GET /jobs");
    tokio::time::sleep(Duration::from_secs(window)).await;
    let listings = sim.sim.counters().requests_to("GET /jobs") - before;
    // One tracker polling every second: at most `window + 1` passes, one
    // of them full.
    let one_tracker = (window + 1) * workspaces + 3 * workspaces;
    let three_trackers = 3 * window * workspaces;
    eprintln!(
        "replicas: {listings} GET /jobs in {window} s with {REPLICAS} replicas, {workspaces} workspaces \
         (one tracker: at most {one_tracker}; three would make about {three_trackers})"
    );
    assert!(listings >= window, "the tracker polls: {listings}");
    assert!(
        listings <= one_tracker,
        "{listings} listings in {window} s: more than one replica polls Airbyte"
    );

    // Triggers, round-robin over the replicas alive, on every connection.
    let leader = replicas
        .iter()
        .position(|r| r.logged(TRACKS_AIRBYTE) > 0)
        .expect("a leader");
    let mut ids = Vec::new();
    let mut triggers: HashMap<String, usize> = HashMap::new();
    let mut killed = false;
    for batch in 0..TRIGGERS / BATCH {
        if batch == TRIGGERS / BATCH / 2 {
            // Midway, the leader dies with its starts in flight.
            replicas.remove(leader).kill();
            killed = true;
            let store = Store::connect(&storage_url).await.expect("store");
            let left = store.count_jobs_by_state().await.expect("counts");
            store.pool().close().await;
            eprintln!("replicas: jobs by state when the leader was killed: {left:?}");
            assert!(
                left.iter().any(|(state, _)| !state.is_terminal()),
                "the kill interrupted nothing: {left:?}"
            );
        }
        let sent = (batch * BATCH..(batch + 1) * BATCH).map(|i| {
            let replica = &replicas[i % replicas.len()];
            let connection = connections[i % connections.len()].clone();
            async move {
                let (status, body) = replica.client.sync(&connection, "").await;
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                (connection, id_of(&body))
            }
        });
        for (connection, id) in join_all(sent).await {
            ids.push(id);
            *triggers.entry(connection).or_default() += 1;
        }
    }
    assert!(killed);
    // A standby takes over once the leader's session is gone.
    wait_until(
        "no survivor took over the tracking",
        Duration::from_secs(15),
        || trackers(&replicas) > 0,
    )
    .await;

    let jobs = wait_all_terminal(&replicas[0].client, &ids, Duration::from_secs(120)).await;
    let counters = sim.sim.counters();
    eprintln!(
        "replicas: {} accepted over {REPLICAS} replicas (one killed midway), {} POST /jobs, {} Airbyte jobs, {} Airlock jobs",
        ids.len(),
        counters.requests_to("POST /jobs"),
        counters.total_jobs_created(),
        jobs.len()
    );
    assert_eq!(ids.len(), TRIGGERS);
    assert_eq!(jobs.len(), TRIGGERS, "no job Airlock did not accept");
    assert_exactly_once(&jobs, &triggers, &counters);
    // Through the end, one survivor tracked, and never lost the lead.
    assert_eq!(trackers(&replicas), 1, "exactly one survivor tracks");
    for replica in &replicas {
        assert_eq!(replica.logged("lost the tracker lead"), 0);
    }
    drop(replicas);
    sim.shutdown().await;
}
