//! A chaos run: a minute of steady traffic (20 triggers and 20 reads a
//! second) against `airlock serve` on Postgres while everything around it
//! misbehaves: Airbyte answers 5xx and 429, drops connections, swallows
//! `POST /jobs` answers and expires tokens; the identity provider goes
//! away and comes back; Postgres goes down once. At the end no accepted job is lost or
//! carried out twice, Airlock answered no 5xx of its own making (a 503
//! while the database is down is the contract, and so is a 429 when the
//! requests of one identity waiting for it reach their cap; the client
//! retries both with the same idempotency key), and its memory stayed
//! within a bound.
//!
//! `scripts/chaos` runs just this test. `AIRLOCK_CHAOS_SECS` sets the
//! length of the traffic (60 s by default). The Postgres outage cuts
//! Airlock off its database through a proxy that this test owns (after
//! terminating the database's sessions, as a restart does), so that other
//! tests sharing the server are not disturbed; with
//! `AIRLOCK_CHAOS_PG_RESTART` set to a command (`scripts/chaos
//! --restart-postgres` sets it to `pg_ctlcluster ... restart`), the
//! server itself is restarted instead.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use airbyte_sim::{FaultSpec, Faults, SimConfig};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::harness::{Client, Harness};
use crate::support::{
    self, Db, TRACKS_AIRBYTE, assert_exactly_once, id_of, reliable_connections, wait_all_terminal,
};

/// Triggers a second, and as many reads.
const PER_SEC: u32 = 20;
const CONNECTIONS: u32 = 100;
/// How long Postgres stays unreachable (proxy mode).
const OUTAGE: Duration = Duration::from_secs(5);
/// The bound on the growth of Airlock's resident memory over the run.
const RSS_GROWTH_LIMIT_KIB: u64 = 50 * 1024;

/// What the traffic saw.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    /// Triggers answered 202: `(job id, connection)`.
    accepted: Vec<(String, String)>,
    /// Logical triggers (one idempotency key each) never accepted.
    given_up: u64,
    /// 503s with the problem body: the database is down.
    unavailable: u64,
    /// 429s with `Retry-After`: the identity's requests in flight are at
    /// their cap (they pile up while the database is down).
    throttled: u64,
    /// 503s and 429s away from the database outage.
    refused_outside_outage: Vec<String>,
    /// 5xx other than a 503 with its problem body.
    server_errors: Vec<String>,
    /// Answers no request should get (401, 403, 404...).
    unexpected: Vec<String>,
    transport_errors: u64,
    /// When the database outage began and, once over, ended (since the
    /// start).
    outage: Option<(Duration, Option<Duration>)>,
}

type Shared = Arc<Mutex<Tally>>;

/// An answer of Airlock's.
struct Answer {
    status: StatusCode,
    body: Value,
    /// Whether the body is `application/problem+json`.
    problem: bool,
    retry_after: Option<u64>,
}

/// Records one answer; when the client may try again, after how long.
fn record(tally: &Shared, started: Instant, what: &str, answer: &Answer) -> Option<Duration> {
    let mut tally = tally.lock().expect("tally");
    tally.requests += 1;
    let Answer {
        status,
        body,
        problem,
        retry_after,
    } = answer;
    let retry = match (*status, body["code"].as_str()) {
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")) if *problem => {
            tally.unavailable += 1;
            Duration::from_millis(500)
        }
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests"))
            if *problem && retry_after.is_some() =>
        {
            tally.throttled += 1;
            Duration::from_secs(retry_after.unwrap_or(1))
        }
        _ => {
            if status.is_server_error() {
                tally.server_errors.push(format!("{what}: {status} {body}"));
            } else if !status.is_success() {
                tally.unexpected.push(format!("{what}: {status} {body}"));
            }
            return None;
        }
    };
    // Requests wait up to 5 s for a database connection before a 503, and
    // the backlog drains after the outage.
    let at = started.elapsed();
    let during = tally.outage.is_some_and(|(from, to)| {
        at >= from && to.is_none_or(|to| at <= to + Duration::from_secs(15))
    });
    if !during {
        tally
            .refused_outside_outage
            .push(format!("{what} at {at:?}: {status} {body}"));
    }
    Some(retry)
}

/// Sends a request and reads the answer.
async fn call(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let problem = header(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.starts_with("application/problem+json"));
    let retry_after = header(reqwest::header::RETRY_AFTER).and_then(|v| v.parse().ok());
    let bytes = response.bytes().await?;
    Ok(Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        problem,
        retry_after,
    })
}

/// One trigger, with its own idempotency key: retried after a 503, a 429
/// or a lost answer until Airlock accepts it, as a careful client does.
async fn trigger(client: Client, connection: String, tally: Shared, started: Instant) {
    let key = uuid::Uuid::new_v4().to_string();
    let give_up = Instant::now() + Duration::from_secs(60);
    let path = format!("/v1/connections/{connection}/sync");
    while Instant::now() < give_up {
        let request = client
            .request(reqwest::Method::POST, &path, Some("runner"))
            .header("idempotency-key", &key);
        let wait = match call(request).await {
            Ok(answer) => {
                let retry = record(&tally, started, "trigger", &answer);
                if answer.status == StatusCode::ACCEPTED {
                    tally
                        .lock()
                        .expect("tally")
                        .accepted
                        .push((id_of(&answer.body), connection));
                    return;
                }
                match retry {
                    Some(wait) => wait,
                    None => return,
                }
            }
            Err(_) => {
                tally.lock().expect("tally").transport_errors += 1;
                Duration::from_millis(500)
            }
        };
        tokio::time::sleep(wait).await;
    }
    tally.lock().expect("tally").given_up += 1;
}

/// One read, of the kinds dashboards and orchestrators make.
async fn read(client: Client, n: u64, connection: String, tally: Shared, started: Instant) {
    let job = tally
        .lock()
        .expect("tally")
        .accepted
        .last()
        .map(|(id, _)| id.clone());
    let path = match (n % 4, job) {
        (0, _) => "/v1/jobs?limit=20".to_owned(),
        (1, Some(job)) => format!("/v1/jobs/{job}"),
        (2, _) => format!("/v1/connections/{connection}"),
        _ => "/v1/whoami".to_owned(),
    };
    match call(client.request(reqwest::Method::GET, &path, Some("reader"))).await {
        Ok(answer) => {
            record(&tally, started, "read", &answer);
        }
        Err(_) => tally.lock().expect("tally").transport_errors += 1,
    }
}

/// A TCP proxy between Airlock and Postgres that the test can cut: every
/// connection through it closed, new ones refused, until restored.
struct PgProxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    accepting: Option<JoinHandle<()>>,
}

impl PgProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listen = listener.local_addr().expect("addr");
        Self {
            listen,
            upstream,
            accepting: Some(Self::accept(listener, upstream)),
        }
    }

    fn accept(listener: TcpListener, upstream: SocketAddr) -> JoinHandle<()> {
        tokio::spawn(async move {
            // Dropped with this task: every connection ends with it.
            let mut open = JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                open.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while open.try_join_next().is_some() {}
            }
        })
    }

    /// Closes every connection and refuses new ones.
    async fn cut(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Accepts connections again, on the same port.
    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.listen)
            .await
            .expect("the proxy's port is free again");
        self.accepting = Some(Self::accept(listener, self.upstream));
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
        }
    }
}

/// How Postgres goes down.
enum Outage {
    /// Through the test's proxy, after terminating the database's sessions.
    Proxy(PgProxy),
    /// A real restart of the server, by this command.
    Restart(String),
}

/// Terminates the sessions on `database` (what a restart does first)
/// whose last query is like `query` (`%`: all of them).
async fn terminate_sessions(database: &str, query: &str) -> u64 {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&support::postgres_admin_url())
        .await
        .expect("Postgres");
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE $2 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .bind(query)
    .fetch_all(&mut admin)
    .await
    .expect("sessions terminated");
    let _ = admin.close().await;
    u64::try_from(terminated.len()).expect("small")
}

/// Whatever Airbyte may do wrong, at once; `expire_tokens` also expires
/// every token issued so far.
fn airbyte_faults(expire_tokens: bool) -> Faults {
    let mut faults = Faults {
        default: FaultSpec {
            error_rate: 0.05,
            rate_limit_rate: 0.05,
            drop_rate: 0.02,
            expire_token_rate: 0.02,
            ..FaultSpec::default()
        },
        ..Faults::default()
    }
    .with_route(
        "POST /jobs",
        FaultSpec {
            latency_ms: 50,
            error_rate: 0.05,
            rate_limit_rate: 0.05,
            drop_rate: 0.05,
            blackhole_rate: 0.05,
            expire_token_rate: 0.02,
            bad_body: None,
        },
    );
    faults.expire_tokens = expire_tokens;
    faults
}

/// `PUT /_sim/faults`, as an operator would.
async fn put_faults(http: &reqwest::Client, admin: &str, faults: &Faults) {
    let response = http
        .put(format!("{admin}/faults"))
        .json(faults)
        .send()
        .await
        .expect("the simulator answers");
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_chaos_loses_nothing_and_answers_no_500() {
    let secs: u64 = std::env::var("AIRLOCK_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let sim = airbyte_sim::spawn(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let http = support::http_client();
    let connections =
        support::sim_add_connections(&http, &sim, reliable_connections("chaos", CONNECTIONS, 1))
            .await
            .connection_ids;

    let database_url = support::fresh_database(Db::Postgres).await;
    let mut url = reqwest::Url::parse(&database_url).expect("a URL");
    let database = url.path().trim_start_matches('/').to_owned();
    let mut outage = match std::env::var("AIRLOCK_CHAOS_PG_RESTART") {
        Ok(command) if !command.trim().is_empty() => Outage::Restart(command),
        _ => {
            let host = url.host_str().expect("a host").to_owned();
            let port = url.port().unwrap_or(5432);
            let upstream = tokio::net::lookup_host((host.as_str(), port))
                .await
                .expect("Postgres's address")
                .next()
                .expect("an address");
            let proxy = PgProxy::start(upstream).await;
            url.set_host(Some("127.0.0.1")).expect("host");
            url.set_port(Some(proxy.listen.port())).expect("port");
            Outage::Proxy(proxy)
        }
    };
    let mut deployment = Harness::fast(Db::Postgres)
        .airbyte(&sim)
        .airbyte_timeout(2)
        .storage_url(url.as_str())
        // Ten attempts, so that a run of injected failures does not end a job.
        .extra("[jobs]\nmax_attempts = 10")
        .dev_issuer_key("jwks_refresh_secs", 2)
        .dev_issuer_key("unknown_kid_cooldown_secs", 1)
        .deploy()
        .await;
    let served = deployment.serve();
    let client = served.client.clone();
    let (status, body) = client.get("/v1/whoami", "reader").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rss_start = served.rss_kib();

    let admin = sim.admin_url();
    put_faults(&http, &admin, &airbyte_faults(false)).await;
    let tally: Shared = Arc::default();
    let started = Instant::now();
    let length = Duration::from_secs(secs);

    // The traffic: a trigger and a read every tick, each on its own task.
    let traffic = {
        let client = client.clone();
        let tally = Arc::clone(&tally);
        let connections = connections.clone();
        tokio::spawn(async move {
            let mut tasks = JoinSet::new();
            let mut ticks = tokio::time::interval(Duration::from_secs(1) / PER_SEC);
            let mut n: u64 = 0;
            while started.elapsed() < length {
                ticks.tick().await;
                let connection =
                    connections[usize::try_from(n).expect("small") % connections.len()].clone();
                let (client, tally) = (client.clone(), Arc::clone(&tally));
                tasks.spawn(trigger(
                    client.clone(),
                    connection.clone(),
                    Arc::clone(&tally),
                    started,
                ));
                tasks.spawn(read(client, n, connection, tally, started));
                n += 1;
                while tasks.try_join_next().is_some() {}
            }
            // Triggers still retrying finish (or give up) on their own.
            while tasks.join_next().await.is_some() {}
        })
    };

    // The script of what goes wrong, at fractions of the run.
    let at = |fraction: f64| started + length.mul_f64(fraction);
    tokio::time::sleep_until(at(0.1)).await;
    put_faults(&http, &admin, &airbyte_faults(true)).await;
    tokio::time::sleep_until(at(0.2)).await;
    deployment.idp().stop().await;
    eprintln!(
        "chaos: the identity provider is gone at {:?}",
        started.elapsed()
    );
    tokio::time::sleep_until(at(0.4)).await;
    deployment.idp().restart().await;
    eprintln!(
        "chaos: the identity provider is back at {:?}",
        started.elapsed()
    );
    tokio::time::sleep_until(at(0.5)).await;
    put_faults(&http, &admin, &airbyte_faults(true)).await;
    tokio::time::sleep_until(at(0.6)).await;
    let down = started.elapsed();
    tally.lock().expect("tally").outage = Some((down, None));
    let how = match &mut outage {
        Outage::Proxy(proxy) => {
            let terminated = terminate_sessions(&database, "%").await;
            proxy.cut().await;
            tokio::time::sleep(OUTAGE).await;
            proxy.restore().await;
            format!("{terminated} sessions terminated, then unreachable for {OUTAGE:?} (proxy)")
        }
        Outage::Restart(command) => {
            let command = command.clone();
            let output = tokio::task::spawn_blocking(move || {
                std::process::Command::new("sh")
                    .arg("-c")
                    .arg(&command)
                    .output()
            })
            .await
            .expect("join")
            .expect("the restart command runs");
            assert!(
                output.status.success(),
                "restarting Postgres failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            "restarted".to_owned()
        }
    };
    let up = started.elapsed();
    tally.lock().expect("tally").outage = Some((down, Some(up)));
    eprintln!("chaos: Postgres down at {down:?}, back at {up:?}: {how}");
    tokio::time::sleep_until(at(0.85)).await;
    put_faults(&http, &admin, &airbyte_faults(true)).await;
    traffic.await.expect("the traffic ran");
    let traffic_secs = started.elapsed().as_secs_f64();

    // Airbyte heals; everything accepted must end, once.
    put_faults(&http, &admin, &Faults::none()).await;
    let (accepted, per_connection) = {
        let tally = tally.lock().expect("tally");
        let mut per_connection: HashMap<String, usize> = HashMap::new();
        for (_, connection) in &tally.accepted {
            *per_connection.entry(connection.clone()).or_default() += 1;
        }
        let ids: Vec<String> = tally.accepted.iter().map(|(id, _)| id.clone()).collect();
        (ids, per_connection)
    };
    let jobs = wait_all_terminal(&client, &accepted, Duration::from_secs(120)).await;
    let counters = sim.sim.counters();
    let rss_end = served.rss_kib();
    let tally = std::mem::take(&mut *tally.lock().expect("tally"));
    let faults: BTreeMap<String, u64> = counters
        .faults
        .values()
        .flat_map(|kinds| kinds.iter())
        .fold(BTreeMap::new(), |mut sum, (kind, n)| {
            *sum.entry(kind.clone()).or_default() += n;
            sum
        });
    eprintln!(
        "chaos summary: {traffic_secs:.0} s of traffic, {} requests, {} triggers accepted, {} Airbyte jobs created, \
         {} given up, {} 503 (database down), {} 429 (identity at its cap while the database was down), \
         {} other 5xx, {} unexpected answers, {} transport errors; \
         Airbyte faults injected {faults:?} over {} Airbyte calls; \
         RSS start {} KiB, end {} KiB (growth {} KiB, limit {} KiB)",
        tally.requests,
        accepted.len(),
        counters.total_jobs_created(),
        tally.given_up,
        tally.unavailable,
        tally.throttled,
        tally.server_errors.len(),
        tally.unexpected.len(),
        tally.transport_errors,
        counters.requests.values().sum::<u64>(),
        rss_start,
        rss_end,
        rss_end.saturating_sub(rss_start),
        RSS_GROWTH_LIMIT_KIB,
    );

    // Nothing lost, nothing twice: Airbyte created exactly one job per
    // accepted trigger, and Airlock holds no job it did not accept.
    assert_exactly_once(&jobs, &per_connection, &counters);
    assert_eq!(jobs.len(), accepted.len(), "jobs Airlock never accepted");
    assert_eq!(tally.given_up, 0, "triggers never accepted");
    // No 5xx of Airlock's own; 503s (and 429s, as requests waiting for
    // the database pile up) only while the database was down.
    assert!(tally.server_errors.is_empty(), "{:#?}", tally.server_errors);
    assert!(
        tally.refused_outside_outage.is_empty(),
        "503s or 429s away from the outage: {:#?}",
        tally.refused_outside_outage
    );
    // Tokens kept verifying while their issuer was gone.
    assert!(tally.unexpected.is_empty(), "{:#?}", tally.unexpected);
    assert_eq!(tally.transport_errors, 0, "Airlock always answered");
    assert!(
        served.logged("cannot fetch the issuer's signing keys; keeping the last good ones") > 0,
        "the keys were refreshed while the provider was gone"
    );
    let errors = served.log_at("ERROR");
    assert!(errors.is_empty(), "errors logged: {errors:#?}");
    // The tracker's lead went with its database session, and came back.
    assert!(
        served.logged(TRACKS_AIRBYTE) >= 2,
        "the tracker was elected again"
    );
    assert!(
        rss_end.saturating_sub(rss_start) < RSS_GROWTH_LIMIT_KIB,
        "memory grew from {rss_start} KiB to {rss_end} KiB"
    );
    assert!(tally.requests >= secs * 2 * u64::from(PER_SEC) * 9 / 10);
    drop(served);
    sim.shutdown().await;
}

/// What a restart does to a query in flight (Postgres ends its session
/// with `57P01`) is the database being unavailable, a 503, not a bug; and
/// the pool recovers on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_under_a_query_is_unavailable_not_internal() {
    let url = support::fresh_database(Db::Postgres).await;
    let database = reqwest::Url::parse(&url)
        .expect("a URL")
        .path()
        .trim_start_matches('/')
        .to_owned();
    let store = airlock_store::Store::connect(&url).await.expect("store");
    let pool = store.pool().clone();
    let running = tokio::spawn(async move {
        sqlx::query("SELECT pg_sleep(30)")
            .execute(&pool)
            .await
            .map(|_| ())
    });
    // Wait until the query runs, then end its session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while terminate_sessions(&database, "SELECT pg_sleep%").await == 0 {
        assert!(Instant::now() < deadline, "the query never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the query ends with its session")
        .expect("join")
        .expect_err("the session was terminated");
    let code = match &error {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    // Postgres says why (it is not a broken connection, which was
    // already taken for unavailability).
    assert_eq!(code.as_deref(), Some("57P01"), "{error}");
    let error = airlock_store::StoreError::from(error);
    assert!(error.is_unavailable(), "{error}");
    store.ping().await.expect("the pool reconnects");
}
