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

/// A service account of the `reader` role, its secret hashed.
fn service_account(client: &str, secret: &str) -> toml::Table {
    let hash = airlock_domain::secret::hash::hash_secret(secret, 10_000).expect("hash");
    let mut account = toml::Table::new();
    account.insert("client_id".to_owned(), client.into());
    account.insert("secret_hash".to_owned(), hash.into());
    account.insert("roles".to_owned(), vec!["reader"].into());
    account
}

/// A service-account token from `replica`'s token endpoint.
async fn account_token(replica: &Served) -> String {
    let (status, body) = support::send(
        replica
            .client
            .http
            .post(replica.client.url("/applications/token"))
            .form(&[("client_id", "ci"), ("client_secret", "ci-secret")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().expect("a token").to_owned()
}

/// `GET /v1/whoami` at `replica` with `token`: the subject it sees.
async fn subject_at(replica: &Served, token: &str) -> Value {
    let (status, body) = support::send(
        replica
            .client
            .http
            .get(replica.client.url("/v1/whoami"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["subject"].clone()
}

const SEAL_SECRET: &str = "the-replicas-share-this-long-random-secret";

/// Replicas on one Postgres with service accounts and `[front]
/// signing_key_secret` sign with one key, kept sealed in the database: a
/// token from one is accepted by the other, and by a replica started
/// later; a replica given another secret refuses to start, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_from_one_replica_is_accepted_by_another() {
    let sim = airbyte_sim::spawn(SimConfig::default())
        .await
        .expect("the simulator starts");
    let deployment = Harness::fast(Db::Postgres)
        .airbyte(&sim)
        .entry("service_accounts", service_account("ci", "ci-secret"))
        .set("front", "public_url", "https://airlock.example")
        .set("front", "signing_key_secret", SEAL_SECRET)
        .deploy()
        .await;
    // Both start at once on an empty database: they race to make the key.
    let starting = (0..2).map(|_| {
        let launch = deployment.launch();
        tokio::task::spawn_blocking(move || launch.serve())
    });
    let mut replicas: Vec<Served> = join_all(starting)
        .await
        .into_iter()
        .map(|started| started.expect("join"))
        .collect();
    let (a, b) = (&replicas[0], &replicas[1]);
    let from_a = account_token(a).await;
    let from_b = account_token(b).await;
    assert_eq!(subject_at(b, &from_a).await, "ci", "B accepts A's token");
    assert_eq!(subject_at(a, &from_b).await, "ci", "A accepts B's token");

    // The key is in the database, sealed: nothing there is a key in clear.
    let store = Store::connect(&deployment.storage_url)
        .await
        .expect("store");
    let sealed = store
        .sealed_value("front.signing_key")
        .await
        .expect("read")
        .expect("the key is stored");
    store.pool().close().await;
    assert!(sealed.starts_with("aes256gcm$"), "{sealed}");
    assert!(!sealed.contains("PRIVATE KEY"));

    // Both go; a replica started later accepts their tokens.
    replicas.drain(..).for_each(Served::kill);
    let later = deployment.serve();
    assert_eq!(
        subject_at(&later, &from_a).await,
        "ci",
        "a restart keeps the key"
    );
    later.kill();

    // Another secret does not open the stored key: that replica stops.
    let mut config = deployment.config.clone();
    config.set("front", "signing_key_secret", "another-secret-altogether");
    deployment.rewrite(&config);
    let mut refused = std::process::Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(deployment.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("airlock serve runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = refused.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = refused.kill();
            panic!("a replica with another secret kept running");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().expect("stderr"), &mut stderr)
        .expect("its log");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("front.signing_key_secret"), "{stderr}");
    assert!(!stderr.contains(SEAL_SECRET) && !stderr.contains("another-secret"));
    sim.shutdown().await;
}
